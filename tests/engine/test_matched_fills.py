"""PerpEngine matched fills: settleMatchedFill (the operator's role, counterparties, the price band,
both sides' margin, the open-interest cap, stale prices, events)."""

import pytest

from tests.conftest import BTC, WAD
from tests.engine.helpers import (
    BAND, BTC_PRICE, HEARTBEAT, ZERO, cross_id, current_params, make_stale, open_health,
)
from tests.reverts import events, expected_events, reverts


# settleMatchedFill


def test_matched_fill_only_operator(engine, alice, bob):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OPERATOR_ROLE()):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=alice)


def test_matched_fill_unknown_market(engine, deployer, alice, bob):
    with reverts(engine.UnknownMarket, marketId=9):
        engine.settleMatchedFill(alice, bob, 9, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_zero_size(engine, deployer, alice, bob):
    with reverts(engine.ZeroAmount):
        engine.settleMatchedFill(alice, bob, BTC, 0, BTC_PRICE, sender=deployer)


@pytest.mark.parametrize(
    "buyer,seller,culprit",
    [
        ("vault", "bob", "vault"),
        ("alice", "vault", "vault"),
        ("alice", "alice", "alice"),
        ("zero", "bob", "zero"),
        ("alice", "zero", "zero"),
    ],
)
def test_matched_fill_invalid_counterparty(engine, deployer, alice, bob, vault, buyer, seller, culprit):
    who = {"vault": vault.address, "alice": alice.address, "bob": bob.address, "zero": ZERO}
    with reverts(engine.InvalidCounterparty, account=who[culprit]):
        engine.settleMatchedFill(who[buyer], who[seller], BTC, WAD, BTC_PRICE, sender=deployer)


@pytest.mark.parametrize("side", [1, -1])
def test_matched_fill_price_outside_band(system, engine, deployer, alice, bob, side):
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    edge = BTC_PRICE + side * BTC_PRICE // 100  # exactly 1% away: inside
    with reverts(engine.PriceOutsideBand, marketId=BTC, price=edge + side, oraclePrice=BTC_PRICE, band=BAND):
        engine.settleMatchedFill(alice, bob, BTC, WAD, edge + side, sender=deployer)
    engine.settleMatchedFill(alice, bob, BTC, WAD, edge, sender=deployer)
    assert engine.getPosition(alice, BTC) == (WAD, edge)


def test_matched_fill_zero_price(engine, deployer, alice, bob):
    with reverts(engine.PriceOutsideBand, marketId=BTC, price=0, oraclePrice=BTC_PRICE, band=BAND):
        engine.settleMatchedFill(alice, bob, BTC, WAD, 0, sender=deployer)


def test_matched_fill_buyer_insufficient_margin(system, engine, deployer, alice, bob):
    system.fund(alice, 100)
    system.fund(bob, 100_000)
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=100 * WAD, initialMargin=10_000 * WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_seller_insufficient_margin(system, engine, deployer, alice, bob):
    system.fund(alice, 100_000)
    system.fund(bob, 10_000)
    price = BTC_PRICE - BTC_PRICE // 200  # the seller sells 0.5% under the oracle
    value, _, _ = open_health(10_000 * WAD, -WAD, price, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=cross_id(bob), accountValue=value, initialMargin=10_000 * WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD, price, sender=deployer)


def test_matched_fill_open_interest_cap(system, engine, deployer, alice, bob):
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=WAD + 1, cap=WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD + 1, BTC_PRICE, sender=deployer)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_size_too_large_for_int(engine, deployer, alice, bob):
    with reverts(engine.IntOverflow, value=2**255):
        engine.settleMatchedFill(alice, bob, BTC, 2**255, BTC_PRICE, sender=deployer)


def test_matched_fill_stale_price(system, chain, engine, deployer, alice, bob):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_success(system, engine, deployer, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    price = BTC_PRICE + 300 * WAD
    receipt = engine.settleMatchedFill(alice, bob, BTC, WAD, price, sender=deployer)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, sizeDelta=WAD, fillPrice=price, newSize=WAD,
             newOpenNotional=price, realizedPnl=0),
        dict(accountId=cross_id(bob), marketId=BTC, sizeDelta=-WAD, fillPrice=price, newSize=-WAD,
             newOpenNotional=-price, realizedPnl=0),
    )
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize, view.bookConsumed) == (WAD, WAD, 0, 0)
    assert engine.accountValue(alice) == 20_000 * WAD - 300 * WAD
    assert engine.accountValue(bob) == 20_000 * WAD + 300 * WAD
