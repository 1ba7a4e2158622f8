"""PerpEngine funding: accrueFunding and settleFunding, their expected index and payments from
simulator/model/funding.py."""

import pytest

from simulator.model import funding
from tests.conftest import BTC, ETH, WAD
from tests.engine.helpers import BTC_PRICE, HEARTBEAT, MAX_UINT, block_time, cross_id, current_params, make_stale
from tests.reverts import events, expected_events, reverts


MAX_FUNDING_RATE = 10**12  # per second, WAD fraction
SKEW_SCALE = 10 * WAD


def _with_funding(system, engine, deployer, alice):
    """Funding on BTC; alice long 1 BTC against the vault (skew +1: rate = maxRate / 10)."""
    engine.setMarketParams(
        BTC, current_params(engine, BTC, maxFundingRate=MAX_FUNDING_RATE, skewScale=SKEW_SCALE), sender=deployer
    )
    system.fund(alice, 100_000)
    return engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)


# accrueFunding


def test_accrue_funding_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.accrueFunding(2, sender=alice)


def test_accrue_funding_stale_price(system, chain, engine, alice):
    updated_at, now = make_stale(system, chain, ETH)
    with reverts(system.router.StalePrice, marketId=ETH, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.accrueFunding(ETH, sender=alice)


@pytest.mark.parametrize("answer", [0, -5])
def test_accrue_funding_invalid_price(system, engine, alice, answer):
    system.set_price(ETH, answer)
    with reverts(system.router.InvalidPrice, marketId=ETH, answer=answer * 10**8):
        engine.accrueFunding(ETH, sender=alice)


def test_accrue_funding_success(system, chain, engine, deployer, alice):
    opened = _with_funding(system, engine, deployer, alice)
    rate = funding.rate(WAD, SKEW_SCALE, MAX_FUNDING_RATE)  # skew +1 BTC
    assert engine.marketView(BTC).fundingRate == rate == MAX_FUNDING_RATE // 10
    start_index = engine.marketView(BTC).fundingIndex
    chain.pending_timestamp = block_time(chain, opened) + 100
    receipt = engine.accrueFunding(BTC, sender=alice)
    index = funding.accrue(start_index, rate, BTC_PRICE, 100)
    assert events(receipt, engine.FundingAccrued) == expected_events(dict(marketId=BTC, index=index, rate=rate))
    assert engine.marketView(BTC).fundingIndex == index == 10**18


# settleFunding


def test_settle_funding_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.settleFunding(cross_id(alice), 2, sender=alice)


def test_settle_funding_stale_price(system, chain, engine, alice):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.settleFunding(cross_id(alice), BTC, sender=alice)


def test_settle_funding_success(system, chain, engine, deployer, alice, bob, vault):
    opened = _with_funding(system, engine, deployer, alice)
    chain.pending_timestamp = block_time(chain, opened) + 1_000
    collateral = engine.collateralOf(cross_id(alice))
    last = engine.positionOf(cross_id(alice), BTC)[2]
    receipt = engine.settleFunding(cross_id(alice), BTC, sender=bob)
    index = engine.marketView(BTC).fundingIndex
    owed = funding.owed(WAD, index, last)
    assert owed > 0
    assert events(receipt, engine.FundingSettled) == expected_events(dict(accountId=cross_id(alice), marketId=BTC, amount=owed))
    assert engine.collateralOf(cross_id(alice)) == collateral - owed
    assert engine.positionOf(cross_id(alice), BTC)[2] == index

    # the vault (short) receives
    vault_last = engine.positionOf(cross_id(vault), BTC)[2]
    receipt = engine.settleFunding(cross_id(vault), BTC, sender=bob)
    index = engine.marketView(BTC).fundingIndex
    received = funding.owed(-WAD, index, vault_last)
    assert received < 0
    assert events(receipt, engine.FundingSettled) == expected_events(
        dict(accountId=cross_id(vault), marketId=BTC, amount=received)
    )

    # an account without a position settles nothing
    chain.pending_timestamp = block_time(chain, receipt) + 1
    receipt = engine.settleFunding(cross_id(bob), BTC, sender=bob)
    assert events(receipt, engine.FundingSettled) == []
    assert len(events(receipt, engine.FundingAccrued)) == 1
