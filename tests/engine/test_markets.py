"""PerpEngine markets: createMarket, setMarketParams and setTiers (their validation, events and the
tier deductions), and a tier whose maintenance margin raises the initial margin."""

import pytest

from simulator.model import margin
from simulator.model.margin import Tier
from tests.conftest import BTC, WAD
from tests.engine.helpers import (
    BTC_PRICE, HEARTBEAT, IMR, MAX_UINT, MMR, b32, cross_id, make_stale, open_health, params,
)
from tests.reverts import _norm, events, expected_events, reverts


# createMarket

INVALID_PARAMS = [
    pytest.param(dict(imr=0), "imr", 0, id="imr-zero"),
    pytest.param(dict(imr=WAD + 1), "imr", WAD + 1, id="imr-above-one"),
    pytest.param(dict(mmr=IMR + 1), "mmr", IMR + 1, id="mmr-above-imr"),
    pytest.param(dict(liquidationFee=WAD), "liquidationFee", WAD, id="liquidationFee-one"),
    pytest.param(dict(keeperShare=WAD + 1), "keeperShare", WAD + 1, id="keeperShare-above-one"),
    pytest.param(dict(maxImpact=0), "maxImpact", 0, id="maxImpact-zero"),
    pytest.param(dict(maxImpact=WAD), "maxImpact", WAD, id="maxImpact-one"),
    pytest.param(dict(matchBand=WAD), "matchBand", WAD, id="matchBand-one"),
    pytest.param(dict(maxFundingRate=WAD + 1, skewScale=1), "maxFundingRate", WAD + 1, id="maxFundingRate-above-one"),
    pytest.param(dict(maxFundingRate=1, skewScale=0), "skewScale", 0, id="skewScale-zero-with-funding"),
]


def test_create_market_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.createMarket(b32("SOL"), params(), sender=alice)


@pytest.mark.parametrize("overrides,name,value", INVALID_PARAMS)
def test_create_market_invalid_parameter(engine, deployer, overrides, name, value):
    with reverts(engine.InvalidParameter, name=b32(name), value=value):
        engine.createMarket(b32("SOL"), params(**overrides), sender=deployer)


def test_create_market_accepts_every_boundary(engine, deployer):
    boundary = params(
        imr=WAD,
        mmr=WAD,
        liquidationFee=WAD - 1,
        keeperShare=WAD,
        depth2pct=0,
        maxImpact=WAD - 1,
        maxFundingRate=WAD,
        skewScale=1,
        matchBand=WAD - 1,
    )
    receipt = engine.createMarket(b32("SOL"), boundary, sender=deployer)
    assert events(receipt, engine.MarketCreated) == expected_events(dict(marketId=2, name=b32("SOL"), params=boundary))
    assert events(receipt, engine.TiersSet) == expected_events(dict(marketId=2, floors=[0], mmrs=[WAD]))
    assert engine.marketCount() == 3
    assert engine.marketName(2) == b32("SOL")
    assert _norm(engine.marketParams(2)) == _norm(boundary)
    assert _norm(engine.tiersOf(2)) == ((0,), (WAD,), (0,))


def test_create_market_too_many_markets(chain, engine, deployer):
    # markets.length lives in slot 3 (owner, vault, hasRole, markets); creating 254 markets would be slow.
    assert int.from_bytes(chain.provider.get_storage(engine.address, 3), "big") == 2
    try:
        chain.provider.set_storage(engine.address, 3, (255).to_bytes(32, "big"))
        receipt = engine.createMarket(b32("LAST"), params(), sender=deployer)
        assert [log["marketId"] for log in events(receipt, engine.MarketCreated)] == [255]
        assert engine.marketCount() == 256
        with reverts(engine.TooManyMarkets):
            engine.createMarket(b32("ONE MORE"), params(), sender=deployer)
    finally:
        chain.provider.set_storage(engine.address, 3, (2).to_bytes(32, "big"))
    assert engine.marketCount() == 2


def test_market_without_oracle_feed_cannot_trade(system, engine, deployer, alice):
    receipt = engine.createMarket(b32("SOL"), params(), sender=deployer)
    assert [log["marketId"] for log in events(receipt, engine.MarketCreated)] == [2]
    system.fund(alice, 10_000)
    with reverts(system.router.UnknownMarket, marketId=2):
        engine.openPosition(2, WAD, MAX_UINT, sender=alice)
    with reverts(system.router.UnknownMarket, marketId=2):
        engine.quote(2, WAD)


# setMarketParams


def test_set_market_params_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setMarketParams(BTC, params(), sender=alice)


def test_set_market_params_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setMarketParams(2, params(), sender=deployer)
    # the market check comes first
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setMarketParams(2, params(imr=0), sender=deployer)


def test_set_market_params_invalid_parameter(engine, deployer):
    # the same validation as createMarket (each field has its own createMarket test above)
    for case in INVALID_PARAMS:
        overrides, name, value = case.values
        with reverts(engine.InvalidParameter, name=b32(name), value=value):
            engine.setMarketParams(BTC, params(**overrides), sender=deployer)
    assert _norm(engine.marketParams(BTC)) == _norm(params())


def test_set_market_params_stale_price(system, chain, engine, deployer):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.setMarketParams(BTC, params(), sender=deployer)


def test_set_market_params_mmr_must_stay_below_next_tier(engine, deployer):
    engine.setTiers(BTC, [0, 1_000_000 * WAD], [MMR, WAD // 10], sender=deployer)
    with reverts(engine.InvalidTier, index=1, floor=1_000_000 * WAD, mmr=WAD // 10):
        engine.setMarketParams(BTC, params(mmr=WAD // 10), sender=deployer)


def test_set_market_params_updates_params_and_first_tier(engine, deployer):
    engine.setTiers(BTC, [0, 1_000_000 * WAD], [MMR, WAD // 10], sender=deployer)
    new = params(imr=WAD // 5, mmr=WAD // 25, maxOpenInterest=7 * WAD)
    receipt = engine.setMarketParams(BTC, new, sender=deployer)
    assert events(receipt, engine.MarketParamsSet) == expected_events(dict(marketId=BTC, params=new))
    assert events(receipt, engine.TiersSet) == expected_events(
        dict(marketId=BTC, floors=[0, 1_000_000 * WAD], mmrs=[WAD // 25, WAD // 10])
    )
    assert _norm(engine.marketParams(BTC)) == _norm(new)
    deduction = margin.tier_deduction(0, 1_000_000 * WAD, WAD // 10, WAD // 25)
    assert _norm(engine.tiersOf(BTC)) == ((0, 1_000_000 * WAD), (WAD // 25, WAD // 10), (0, deduction))


# setTiers

F = 1_000_000 * WAD
INVALID_TIERS = [
    pytest.param([0], [], (0, 0, 0), id="mmrs-empty"),
    pytest.param([], [MMR], (0, 0, MMR), id="floors-empty"),
    pytest.param([0], [MMR + 1], (0, 0, MMR + 1), id="mmr0-not-market-mmr"),
    pytest.param([0, F], [MMR], (0, 0, MMR), id="length-mismatch-floors"),
    pytest.param([0], [MMR, WAD // 10], (0, 0, MMR), id="length-mismatch-mmrs"),
    pytest.param([1, F], [MMR, WAD // 10], (0, 1, MMR), id="floor0-not-zero"),
    pytest.param([0, 0], [MMR, WAD // 10], (1, 0, WAD // 10), id="floor1-zero"),
    pytest.param([0, F, F], [MMR, WAD // 10, WAD // 5], (2, F, WAD // 5), id="floor-equal"),
    pytest.param([0, F, F - 1], [MMR, WAD // 10, WAD // 5], (2, F - 1, WAD // 5), id="floor-decreasing"),
    pytest.param([0, F], [MMR, MMR], (1, F, MMR), id="mmr-equal"),
    pytest.param([0, F, 2 * F], [MMR, WAD // 10, WAD // 10 - 1], (2, 2 * F, WAD // 10 - 1), id="mmr-decreasing"),
    pytest.param([0, F], [MMR, WAD], (1, F, WAD), id="mmr-one"),
    pytest.param([0, F], [MMR, WAD + 1], (1, F, WAD + 1), id="mmr-above-one"),
]


def test_set_tiers_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setTiers(BTC, [0], [MMR], sender=alice)


def test_set_tiers_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setTiers(2, [0], [MMR], sender=deployer)


@pytest.mark.parametrize("floors,mmrs,error", INVALID_TIERS)
def test_set_tiers_invalid_tier(engine, deployer, floors, mmrs, error):
    index, floor, mmr = error
    with reverts(engine.InvalidTier, index=index, floor=floor, mmr=mmr):
        engine.setTiers(BTC, floors, mmrs, sender=deployer)


def test_set_tiers_derives_deductions(engine, deployer):
    floors = [0, F, 5 * F, 6 * F]
    mmrs = [MMR, WAD * 75 // 1000, WAD // 10, WAD - 1]
    receipt = engine.setTiers(BTC, floors, mmrs, sender=deployer)
    assert events(receipt, engine.TiersSet) == expected_events(dict(marketId=BTC, floors=floors, mmrs=mmrs))
    deductions = [0]
    for k in range(1, len(floors)):
        deductions.append(margin.tier_deduction(deductions[-1], floors[k], mmrs[k], mmrs[k - 1]))
    assert _norm(engine.tiersOf(BTC)) == (tuple(floors), tuple(mmrs), tuple(deductions))
    assert deductions[1] == 25_000 * WAD


def test_tier_above_imr_raises_initial_margin(system, engine, deployer, alice):
    engine.setTiers(BTC, [0, F], [MMR, WAD // 5], sender=deployer)
    tiers = (Tier(0, MMR, 0), Tier(F, WAD // 5, margin.tier_deduction(0, F, WAD // 5, MMR)))
    system.fund(alice, 250_000)
    size = 20 * WAD  # $2M notional: MM = 2M * 20% - 150k = 250k > IM 200k
    q = engine.quote(BTC, size)
    value, mm, im = open_health(250_000 * WAD, size, q, BTC_PRICE, tiers=tiers)
    assert im == mm == 250_000 * WAD
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)
