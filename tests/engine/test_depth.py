"""PerpEngine depth: setDepth (the market maker's role, its bound, its event), a market without a
book, and quote against the depth curve (simulator/model/depth.py)."""

from simulator.model import depth
from tests.conftest import BTC, ETH, WAD
from tests.engine.helpers import BTC_DEPTH, BTC_PRICE, ETH_DEPTH, ETH_PRICE, MAX_IMPACT, MAX_UINT, b32
from tests.reverts import events, expected_events, reverts


# setDepth


def test_set_depth_only_market_maker(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.MARKET_MAKER_ROLE()):
        engine.setDepth(BTC, WAD, sender=alice)


def test_set_depth_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=5):
        engine.setDepth(5, WAD, sender=deployer)


def test_set_depth_rejects_depth_beyond_bound(engine, deployer):
    with reverts(engine.InvalidParameter, name=b32("depth2pct"), value=10**36 + 1):
        engine.setDepth(BTC, 10**36 + 1, sender=deployer)
    engine.setDepth(BTC, 10**36, sender=deployer)


def test_set_depth_sets_book_and_emits(engine, deployer):
    depth2pct = 2_000_000 * WAD
    receipt = engine.setDepth(BTC, depth2pct, sender=deployer)
    assert events(receipt, engine.DepthSet) == expected_events(dict(marketId=BTC, depth2pct=depth2pct, by=deployer))
    assert engine.marketView(BTC).depth2pct == depth2pct
    assert engine.marketParams(BTC).depth2pct == depth2pct
    assert engine.quote(BTC, WAD) == depth.fill(BTC, BTC_PRICE, WAD, 0, depth2pct, MAX_IMPACT)[0]


def test_depth_zero_means_no_book(system, engine, deployer, alice, bob):
    engine.setDepth(BTC, 0, sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.quote(BTC, WAD)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.openIsolatedPosition(BTC, -WAD, 0, sender=alice)
    # matched fills need no book
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.getPosition(alice, BTC) == (WAD, BTC_PRICE)


# quote: the depth curve


def test_quote_matches_depth_curve(engine):
    for size in (WAD, -WAD, 7 * WAD // 3, -(10**9)):
        assert engine.quote(BTC, size) == depth.fill(BTC, BTC_PRICE, size, 0, BTC_DEPTH, MAX_IMPACT)[0]
    assert engine.quote(ETH, 5 * WAD) == depth.fill(ETH, ETH_PRICE, 5 * WAD, 0, ETH_DEPTH, MAX_IMPACT)[0]
