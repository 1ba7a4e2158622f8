"""PerpEngine views that can revert: the market views, quote, the health views on a stale price,
healthRange, bankruptcyPrice, bookCapacity and previewLiquidationFill."""

from simulator.model import depth
from tests.conftest import BTC, ETH, WAD
from tests.engine.helpers import BTC_DEPTH, BTC_PRICE, HEARTBEAT, MAX_IMPACT, MAX_UINT, cross_id, open_long
from tests.invariants import registered_accounts
from tests.reverts import reverts


# market views


def test_market_views_unknown_market(engine):
    for view in (engine.marketParams, engine.marketView, engine.marketName, engine.tiersOf):
        with reverts(engine.UnknownMarket, marketId=2):
            view(2)
        assert view(ETH) is not None


def test_quote_reverts(system, chain, engine):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.quote(2, WAD)
    with reverts(engine.ZeroAmount):
        engine.quote(BTC, 0)
    updated_at = system.feeds[BTC].latestRoundData()[3]
    chain.mine(timestamp=updated_at + HEARTBEAT + 1)  # views run at the latest block
    with reverts(
        system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=updated_at + HEARTBEAT + 1, heartbeat=HEARTBEAT
    ):
        engine.quote(BTC, WAD)


# account views


def test_health_views_revert_on_stale_position_price(system, chain, engine, alice, bob):
    open_long(system, alice, WAD // 10, 10_000)
    system.fund(bob, 1_000)
    updated_at = system.feeds[BTC].latestRoundData()[3]
    now = updated_at + HEARTBEAT + 1
    chain.mine(timestamp=now)
    for call in (
        lambda: engine.accountValue(alice),
        lambda: engine.health(cross_id(alice)),
        lambda: engine.isLiquidatable(alice),
    ):
        with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
            call()
    assert engine.accountValue(bob) == 1_000 * WAD  # no position: no price needed


def test_health_range_with_max_count(system, engine):
    ids, values, mms = engine.healthRange(1, MAX_UINT)
    assert list(ids) == registered_accounts(engine)[1:]


def test_bankruptcy_price_reverts_and_value(system, engine, deployer, alice, bob):
    with reverts(engine.UnknownMarket, marketId=6):
        engine.bankruptcyPrice(alice, 6)
    with reverts(engine.ZeroAmount):
        engine.bankruptcyPrice(alice, BTC)  # no position
    system.fund(alice, 10_100)
    system.fund(bob, 100_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.bankruptcyPrice(alice, BTC) == BTC_PRICE - (10_100 * WAD - 1)
    assert engine.bankruptcyPriceOf(cross_id(bob), BTC) == BTC_PRICE + (100_000 * WAD - 1)


# book views


def test_book_capacity_and_preview_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.bookCapacity(2, True)
    with reverts(engine.UnknownMarket, marketId=2):
        engine.previewLiquidationFill(cross_id(alice), 2, WAD)
    edge = depth.capacity(0, BTC_DEPTH, MAX_IMPACT, True)  # depth * maxImpact / 2%
    assert engine.bookCapacity(BTC, True) == engine.bookCapacity(BTC, False) == edge == 50_000_000 * WAD
