"""Engine mechanics in the model: funding, cross vs isolated margin, the margin rules, the vault's
capacity, the open-interest cap, the match band, and atomic reverts (the cases of tests/test_engine.py
and tests/engine/ that do not depend on the oracle router)."""

import pickle

import pytest

from simulator.chain.deploy import MarketSpec
from simulator.errors import PerpsimError
from simulator.model import MarketParams, Protocol
from simulator.model.errors import (
    InsufficientCollateral,
    InsufficientMargin,
    InvalidCounterparty,
    InvalidParameter,
    InvalidPrice,
    InvalidTier,
    ModelRevert,
    OpenInterestCapExceeded,
    PriceLimitExceeded,
    PriceOutsideBand,
    UnknownMarket,
    VaultCapacityExceeded,
    WorsensBadDebt,
    ZeroAmount,
)
from simulator.units import WAD, wad
from tests.model.helpers import ALICE, BOB, CAROL, check_invariants, fingerprint

BTC, ETH = 0, 1
DEFAULT_MARKETS = (
    MarketSpec("BTC", 100_000, depth2pct=10_000_000),
    MarketSpec("ETH", 4_000, depth2pct=5_000_000),
)


def test_funding_paid_equals_received():
    spec = MarketSpec("BTC", 100_000, depth2pct=10**8, max_funding_rate="0.000001", skew_scale=10)
    protocol = Protocol.from_specs([spec])
    for who in (ALICE, BOB, CAROL):
        protocol.fund(who, 100_000)
    protocol.open_position(ALICE, 0, wad(3))
    protocol.open_position(BOB, 0, -wad("1.3"))
    protocol.advance(1_000)
    protocol.open_position(CAROL, 0, wad("0.7"))
    protocol.advance(3_333)
    protocol.set_price(0, wad(97_123))
    protocol.advance(777)
    for account_id in (ALICE, BOB, CAROL, protocol.vault):
        protocol.settle_funding(account_id, 0)
    settlements = protocol.events_named("FundingSettled")
    assert {e.accountId for e in settlements} == {ALICE, BOB, CAROL, protocol.vault}
    total = sum(e.amount for e in settlements)
    since = len(protocol.events)
    protocol.settle_funding(ALICE, 0)  # same block: nothing more to settle
    assert not protocol.events_named("FundingSettled", since)
    assert protocol.market_view(0).funding_index > 0  # takers net long: longs paid
    assert 0 <= total <= len(settlements)
    check_invariants(protocol)


def test_funding_rate_follows_the_vault_inventory():
    spec = MarketSpec("BTC", 100_000, depth2pct=10**8, max_funding_rate="0.000001", skew_scale=10)
    protocol = Protocol.from_specs([spec])
    protocol.fund(ALICE, 1_000_000)
    protocol.open_position(ALICE, 0, wad(5))  # skew +5 of 10: half the max rate
    assert protocol.market_view(0).funding_rate == wad("0.0000005")
    protocol.advance(100)
    index = protocol.market_view(0).funding_index
    protocol.accrue_funding(0)
    assert protocol.market_view(0).funding_index == index + wad("0.0000005") * 100_000 * 100
    [accrued] = protocol.events_named("FundingAccrued")[-1:]
    assert accrued.rate == wad("0.0000005")


def test_cross_margin_loss_reduces_margin_for_other_positions():
    protocol = Protocol.from_specs(DEFAULT_MARKETS)
    protocol.fund(ALICE, 30_000)
    protocol.fund(BOB, 1_000_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD, wad(100_000))
    protocol.settle_matched_fill(ALICE, BOB, ETH, wad(25), wad(4_000))
    protocol.set_price(BTC, wad(95_000))
    assert protocol.account_value(ALICE) == wad(25_000)
    free = protocol.account_value(ALICE) - protocol.initial_margin(ALICE)
    with pytest.raises(InsufficientMargin):
        protocol.withdraw(ALICE, free // 10**12 + 1)
    with pytest.raises(InsufficientMargin):
        protocol.settle_matched_fill(ALICE, BOB, ETH, wad(20), wad(4_000))
    protocol.withdraw(ALICE, free // 10**12)
    check_invariants(protocol)


def test_isolated_position_loss_stays_in_its_bucket():
    protocol = Protocol.from_specs(DEFAULT_MARKETS)
    protocol.fund(ALICE, 30_000)
    protocol.fund(BOB, 1_000_000)
    protocol.transfer_margin(ALICE, BTC, wad(10_000))
    isolated = protocol.isolated_account_id(ALICE, BTC)
    assert isolated == ALICE | (1 << 160)
    protocol.open_isolated_position(ALICE, BTC, WAD // 2)
    cross_before = protocol.account_value(ALICE)
    isolated_before = protocol.health(isolated)[0]
    protocol.set_price(BTC, wad(84_000))
    assert protocol.account_value(ALICE) == cross_before == wad(20_000)
    isolated_after, mm, _ = protocol.health(isolated)
    assert isolated_after == isolated_before - wad(8_000)
    assert isolated_after < mm
    assert protocol.is_account_liquidatable(isolated)
    assert not protocol.is_liquidatable(ALICE)
    protocol.open_position(ALICE, ETH, wad(10))
    protocol.liquidate_isolated(ALICE, BTC)
    assert protocol.position_of(isolated, BTC)[0] == 0
    check_invariants(protocol)


def test_reverts_carry_the_solidity_arguments_and_leave_no_trace():
    protocol = Protocol.from_specs(DEFAULT_MARKETS, vault_collateral_usd=10_000)
    protocol.fund(ALICE, 100_000)
    before = fingerprint(protocol)
    # The trader's side is filled first, then the vault's check fails: all of it is undone.
    with pytest.raises(VaultCapacityExceeded) as info:
        protocol.open_position(ALICE, BTC, wad(2))
    assert info.value.vaultInitialMargin > info.value.vaultValue
    assert fingerprint(protocol) == before
    with pytest.raises(PriceLimitExceeded) as info:
        protocol.open_position(ALICE, BTC, WAD // 100, wad(100_000))
    assert info.value.priceLimit == wad(100_000) and info.value.fillPrice > wad(100_000)
    with pytest.raises(InvalidCounterparty) as info:
        protocol.open_position(protocol.vault, BTC, WAD // 100)
    assert info.value.account == protocol.vault
    with pytest.raises(PriceOutsideBand) as info:
        protocol.settle_matched_fill(ALICE, BOB, BTC, WAD // 100, wad(101_001))
    assert info.value.inputs == {
        "marketId": BTC, "price": wad(101_001), "oraclePrice": wad(100_000), "band": wad("0.01")
    }
    with pytest.raises(InsufficientCollateral):
        protocol.withdraw(BOB, 1)
    with pytest.raises(ZeroAmount):
        protocol.deposit(ALICE, 0)
    with pytest.raises(UnknownMarket):
        protocol.open_position(ALICE, 7, WAD)
    assert fingerprint(protocol) == before
    error = info.value
    assert isinstance(error, ModelRevert) and isinstance(error, PerpsimError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is PriceOutsideBand and copy.inputs == error.inputs
    assert "PriceOutsideBand(marketId=0" in error.user_message


def test_a_reduction_may_not_deepen_negative_equity():
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, depth2pct=1_000_000)])
    protocol.fund(ALICE, 10_000)
    protocol.fund(BOB, 100_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD, wad(100_000))
    protocol.set_price(BTC, wad(85_000))  # AV -$5,000
    with pytest.raises(WorsensBadDebt) as info:
        protocol.open_position(ALICE, BTC, -WAD // 2, 0)  # selling into the book costs impact
    assert info.value.valueAfter < info.value.valueBefore < 0


def test_open_interest_cap():
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, depth2pct=10**8, max_open_interest=2)])
    protocol.fund(ALICE, 100_000)
    protocol.fund(BOB, 100_000)
    protocol.open_position(ALICE, BTC, wad(2))
    with pytest.raises(OpenInterestCapExceeded) as info:
        protocol.open_position(BOB, BTC, 1)
    assert info.value.inputs == {"marketId": BTC, "openInterest": wad(2) + 1, "cap": wad(2)}
    protocol.open_position(BOB, BTC, -WAD)  # shorts have room
    view = protocol.market_view(BTC)
    assert (view.long_open_interest, view.short_open_interest, view.vault_size) == (wad(2), WAD, -WAD)
    # A cap lowered under the open interest blocks growth only: reductions still go through.
    params = protocol.market_params(BTC)
    protocol.set_market_params(BTC, MarketParams(**{**params.__dict__, "max_open_interest": WAD}))
    protocol.open_position(ALICE, BTC, -WAD // 2, 0)
    with pytest.raises(OpenInterestCapExceeded):
        protocol.open_position(ALICE, BTC, WAD // 4)
    check_invariants(protocol)


def test_the_vault_is_only_ever_the_counterparty():
    protocol = Protocol.from_specs(DEFAULT_MARKETS)
    protocol.fund(ALICE, 100_000)
    protocol.fund(BOB, 100_000)
    protocol.transfer_margin(protocol.vault, BTC, wad(10_000))
    with pytest.raises(InvalidCounterparty):
        protocol.open_isolated_position(protocol.vault, BTC, WAD // 10)  # not from its own bucket
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD // 10, wad(100_000))
    with pytest.raises(InvalidCounterparty) as info:
        protocol.set_vault(ALICE)  # holds a position: open interest would break
    assert info.value.account == ALICE
    protocol.open_position(ALICE, BTC, WAD // 10)
    with pytest.raises(InvalidCounterparty) as info:
        protocol.set_vault(0xD0D0)  # the current vault holds a position
    assert info.value.account == protocol.vault
    with pytest.raises(ZeroAmount):
        protocol.liquidation_fill(ALICE, BTC, 0)
    with pytest.raises(ZeroAmount):
        protocol.adl_fill(ALICE, BOB, BTC, 0, wad(100_000))


def test_market_administration():
    protocol = Protocol.from_specs(DEFAULT_MARKETS)
    with pytest.raises(InvalidTier):
        protocol.set_tiers(BTC, [0, 1_000], [wad("0.05"), wad("0.05")])
    protocol.set_tiers(BTC, [0, wad(1_000_000)], [wad("0.05"), wad("0.1")])
    params = protocol.market_params(BTC)
    protocol.set_market_params(BTC, MarketParams(**{**params.__dict__, "mmr": wad("0.04")}))
    floors, mmrs, deductions = protocol.tiers_of(BTC)
    assert mmrs == [wad("0.04"), wad("0.1")] and deductions == [0, wad(60_000)]
    with pytest.raises(InvalidParameter):
        protocol.set_depth(BTC, 10**36 + 1)
    with pytest.raises(InvalidParameter) as info:
        protocol.create_market("BIG", MarketParams(**{**params.__dict__, "depth2pct": 10**36 + 1}))
    assert info.value.name == "depth2pct"
    market_id = protocol.create_market("SOL", params)
    with pytest.raises(InvalidPrice):
        protocol.quote(market_id, WAD)
    protocol.set_price(market_id, wad(200))
    assert protocol.quote(market_id, WAD) > wad(200)
