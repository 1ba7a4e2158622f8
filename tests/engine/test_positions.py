"""PerpEngine taker trades: openPosition and openIsolatedPosition (price limits, margin, the book,
the open-interest cap, stale and refused prices, the circuit breaker, the vault's capacity), and
reductions that would worsen bad debt (WorsensBadDebt, taker and matched)."""

import pytest

from simulator.chain.deploy import MarketSpec, deploy_system
from simulator.model import depth, position
from simulator.model import fixed_point as fp
from tests.conftest import BTC, ETH, WAD
from tests.engine.helpers import (
    BTC_DEPTH, BTC_PRICE, HEARTBEAT, MAX_IMPACT, MAX_UINT, ZERO, b32, block_time, cross_id,
    current_params, iso_id, make_stale, open_health, open_long, params, underwater_long, value_after_fill,
)
from tests.invariants import check_invariants
from tests.reverts import events, expected_events, reverts


# openPosition


def test_open_position_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.openPosition(2, WAD, MAX_UINT, sender=alice)


def test_open_position_zero_size(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.openPosition(BTC, 0, MAX_UINT, sender=alice)


def test_open_position_vault_cannot_take(engine, vault):
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=vault)


def test_open_position_without_vault(system, project, deployer, alice):
    engine = deployer.deploy(project.PerpEngine, system.usdc, system.router)
    engine.createMarket(b32("BTC"), params(), sender=deployer)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.openIsolatedPosition(BTC, WAD, MAX_UINT, sender=alice)


def test_open_position_buy_price_limit(system, engine, alice):
    system.fund(alice, 100_000)
    size = 2 * WAD
    q = engine.quote(BTC, size)
    assert q > BTC_PRICE
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q - 1):
        engine.openPosition(BTC, size, q - 1, sender=alice)
    receipt = engine.openPosition(BTC, size, q, sender=alice)  # a limit equal to the fill is met
    assert [log["fillPrice"] for log in events(receipt, engine.PositionChanged)] == [q, q]


def test_open_position_sell_price_limit(system, engine, alice):
    system.fund(alice, 100_000)
    size = -2 * WAD
    q = engine.quote(BTC, size)
    assert q < BTC_PRICE
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q + 1):
        engine.openPosition(BTC, size, q + 1, sender=alice)
    receipt = engine.openPosition(BTC, size, q, sender=alice)
    assert [log["fillPrice"] for log in events(receipt, engine.PositionChanged)] == [q, q]


def test_open_position_insufficient_margin(system, engine, alice):
    system.fund(alice, 1_000)
    size = WAD // 10  # $10k notional needs $1,000 of margin plus the spread
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, size, q, BTC_PRICE)
    assert value < im
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)


def test_open_position_flip_needs_initial_margin(system, chain, engine, alice):
    open_long(system, alice, WAD // 10, 1_100)
    chain.mine()  # quote in a block of its own: the open's book consumption stays in its block
    size = -(WAD // 10) - WAD // 5  # flips to short 0.2: an increase
    q = engine.quote(BTC, size)
    _, open_notional = engine.getPosition(alice, BTC)
    _, _, realized = position.apply_fill(WAD // 10, open_notional, size, q)  # closes the long 0.1
    collateral = engine.collateralOf(cross_id(alice)) + realized
    value, _, im = open_health(collateral, -(WAD // 5), q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, 0, sender=alice)


def test_open_position_success_events_and_health(system, engine, alice, vault):
    system.fund(alice, 10_000)
    size = WAD // 2
    q = engine.quote(BTC, size)
    receipt = engine.openPosition(BTC, size, q, sender=alice)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(
            accountId=cross_id(alice),
            marketId=BTC,
            sizeDelta=size,
            fillPrice=q,
            newSize=size,
            newOpenNotional=fp.s_w_mul_up(size, q),
            realizedPnl=0,
        ),
        dict(
            accountId=cross_id(vault),
            marketId=BTC,
            sizeDelta=-size,
            fillPrice=q,
            newSize=-size,
            newOpenNotional=fp.s_w_mul_up(-size, q),
            realizedPnl=0,
        ),
    )
    assert engine.getPosition(alice, BTC) == (size, fp.s_w_mul_up(size, q))
    assert engine.health(cross_id(alice)) == open_health(10_000 * WAD, size, q, BTC_PRICE)
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (size, 0, -size)
    assert engine.marketMaskOf(cross_id(alice)) == 1 << BTC


def test_open_position_book_exhausted(engine, alice):
    # edge = depth * maxImpact / 2% = $50M of notional
    for size in (501 * WAD, -501 * WAD):
        impact = depth.impact_of(fp.w_mul_up(501 * WAD, BTC_PRICE), BTC_DEPTH)  # the walk's end
        with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
            engine.openPosition(BTC, size, MAX_UINT if size > 0 else 0, sender=alice)
        with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
            engine.quote(BTC, size)
    last_unit = depth.fill(BTC, BTC_PRICE, 500 * WAD, 0, BTC_DEPTH, MAX_IMPACT)[0]
    assert engine.quote(BTC, 500 * WAD) == last_unit


def test_open_position_open_interest_cap(system, engine, deployer, alice, bob):
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=3 * WAD // 2, cap=WAD):
        engine.openPosition(BTC, 3 * WAD // 2, MAX_UINT, sender=alice)
    engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)  # exactly the cap
    engine.openPosition(BTC, -WAD, 0, sender=bob)  # the short side has its own cap
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=WAD + 1, cap=WAD):
        engine.openPosition(BTC, -1, 0, sender=bob)
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest) == (WAD, WAD)


def test_open_interest_cap_does_not_block_reductions(system, engine, deployer, alice):
    open_long(system, alice, 2 * WAD, 100_000)
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    engine.openPosition(BTC, -(WAD // 2), 0, sender=alice)
    assert engine.getPosition(alice, BTC)[0] == 3 * WAD // 2


def test_open_position_stale_price(system, chain, engine, alice):
    system.fund(alice, 10_000)
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)
    # a fresh answer makes the market tradable again
    system.set_price(BTC, 100_000)
    engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)


def test_stale_price_of_another_held_market_blocks_trading(system, chain, engine, alice):
    system.fund(alice, 10_000)
    engine.openPosition(ETH, WAD, MAX_UINT, sender=alice)
    eth_updated_at = system.feeds[ETH].latestRoundData()[3]
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 1
    system.feeds[BTC].submit(100_000 * 10**8, sender=system.deployer)  # BTC fresh, ETH stale
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 2
    with reverts(
        system.router.StalePrice, marketId=ETH, updatedAt=eth_updated_at, nowTs=eth_updated_at + HEARTBEAT + 2,
        heartbeat=HEARTBEAT,
    ):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)


def test_stale_price_of_a_vault_market_blocks_vault_increases(system, chain, engine, alice, bob):
    """The vault's capacity check values all its markets: a stale ETH price stops every trade that
    grows the vault's exposure, in BTC too, even for a trader without ETH."""
    system.fund(alice, 10_000)
    system.fund(bob, 10_000)
    engine.openPosition(ETH, WAD, MAX_UINT, sender=alice)
    eth_updated_at = system.feeds[ETH].latestRoundData()[3]
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 1
    system.feeds[BTC].submit(100_000 * 10**8, sender=system.deployer)
    now = eth_updated_at + HEARTBEAT + 2
    chain.pending_timestamp = now
    with reverts(system.router.StalePrice, marketId=ETH, updatedAt=eth_updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=bob)
    system.set_price(ETH, 4_000)
    engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=bob)
    assert engine.getPosition(bob, BTC)[0] == WAD // 100


@pytest.mark.parametrize("answer", [0, -1])
def test_open_position_non_positive_price(system, engine, alice, answer):
    system.fund(alice, 10_000)
    system.set_price(BTC, answer)
    with reverts(system.router.InvalidPrice, marketId=BTC, answer=answer * 10**8):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)
    with reverts(system.router.InvalidPrice, marketId=BTC, answer=answer * 10**8):
        engine.quote(BTC, WAD)


def test_trades_respect_circuit_breaker(project, chain, system, deployer, vault_account, alice):
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, max_deviation="0.1", cooldown=600)
    variant = deploy_system(project, deployer, vault_account, [spec])
    engine, router = variant.engine, variant.router
    variant.fund(alice, 100_000)
    variant.feeds[BTC].submit(120_000 * 10**8, sender=deployer)  # +20%, not yet recorded by update
    with reverts(router.DeviationUnconfirmed, marketId=BTC, lastAccepted=BTC_PRICE, answer=120_000 * WAD):
        engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    receipt = router.update(BTC, sender=deployer)
    until = block_time(chain, receipt) + 600
    with reverts(router.BreakerTripped, marketId=BTC, until=until):
        engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    with reverts(router.BreakerTripped, marketId=BTC, until=until):
        engine.settleMatchedFill(alice, deployer, BTC, WAD, 120_000 * WAD, sender=deployer)
    chain.pending_timestamp = until
    receipt = engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    fills = [log["fillPrice"] for log in events(receipt, engine.PositionChanged)]
    assert fills[0] == depth.fill(BTC, 120_000 * WAD, WAD // 10, 0, BTC_DEPTH, MAX_IMPACT)[0]
    check_invariants(variant)


def test_vault_capacity_exceeded(project, system, deployer, vault_account, alice):
    variant = deploy_system(
        project, deployer, vault_account, [MarketSpec("BTC", 100_000, depth2pct=10_000_000)], vault_collateral_usd=1_000
    )
    engine = variant.engine
    variant.fund(alice, 100_000)
    size = WAD // 5  # the vault takes -0.2 BTC: IM $2,000 > its $1,000
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, -size, q, BTC_PRICE)
    with reverts(engine.VaultCapacityExceeded, vaultValue=value, vaultInitialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)
    engine.openPosition(BTC, WAD // 20, MAX_UINT, sender=alice)  # IM $500: within capacity
    assert engine.marketView(BTC).vaultSize == -(WAD // 20)
    check_invariants(variant)


# openIsolatedPosition


def test_open_isolated_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=3):
        engine.openIsolatedPosition(3, WAD, MAX_UINT, sender=alice)


def test_open_isolated_zero_size(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.openIsolatedPosition(BTC, 0, MAX_UINT, sender=alice)


def test_open_isolated_ignores_cross_collateral(system, engine, alice):
    system.fund(alice, 1_000_000)
    size = WAD // 10
    q = engine.quote(BTC, size)
    value, _, im = open_health(0, size, q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=iso_id(alice, BTC), accountValue=value, initialMargin=im):
        engine.openIsolatedPosition(BTC, size, MAX_UINT, sender=alice)


def test_open_isolated_insufficient_margin(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 1_000 * WAD, sender=alice)
    size = -(WAD // 10)
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, size, q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=iso_id(alice, BTC), accountValue=value, initialMargin=im):
        engine.openIsolatedPosition(BTC, size, 0, sender=alice)


def test_open_isolated_price_limit(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 10_000 * WAD, sender=alice)
    q = engine.quote(BTC, -WAD // 2)
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q + 1):
        engine.openIsolatedPosition(BTC, -WAD // 2, q + 1, sender=alice)
    q = engine.quote(BTC, WAD // 2)
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q - 1):
        engine.openIsolatedPosition(BTC, WAD // 2, q - 1, sender=alice)


def test_open_isolated_success(system, engine, alice, vault):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 2_000 * WAD, sender=alice)
    bucket = iso_id(alice, BTC)
    size = WAD // 10
    q = engine.quote(BTC, size)
    receipt = engine.openIsolatedPosition(BTC, size, q, sender=alice)
    assert events(receipt, engine.PositionChanged)[0] == expected_events(
        dict(
            accountId=bucket,
            marketId=BTC,
            sizeDelta=size,
            fillPrice=q,
            newSize=size,
            newOpenNotional=fp.s_w_mul_up(size, q),
            realizedPnl=0,
        )
    )[0]
    assert engine.positionOf(bucket, BTC) == (size, fp.s_w_mul_up(size, q), 0)
    assert engine.getPosition(alice, BTC) == (0, 0)  # the cross account is untouched
    assert engine.health(bucket) == open_health(2_000 * WAD, size, q, BTC_PRICE)
    assert engine.health(cross_id(alice)) == (8_000 * WAD, 0, 0)
    assert engine.marketView(BTC).vaultSize == -size


def test_vault_cannot_take_through_isolated_bucket(engine, vault):
    engine.transferMargin(BTC, 1_000_000 * WAD, sender=vault)
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.openIsolatedPosition(BTC, WAD, MAX_UINT, sender=vault)


# WorsensBadDebt: reductions (taker and matched)


def test_reduction_worsening_bad_debt_matched(system, engine, deployer, alice, bob):
    before = underwater_long(system, engine, deployer, alice, bob)
    price = 89_000 * WAD * 995 // 1000
    after = value_after_fill(10_100 * WAD, WAD, BTC_PRICE, -(WAD // 2), price, 89_000 * WAD)
    assert after == -1_122_500 * WAD // 1000
    with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
        engine.settleMatchedFill(bob, alice, BTC, WAD // 2, price, sender=deployer)
    # a reduction above the oracle price improves the account: allowed
    better = 89_000 * WAD * 1005 // 1000
    engine.settleMatchedFill(bob, alice, BTC, WAD // 2, better, sender=deployer)
    after_better = value_after_fill(10_100 * WAD, WAD, BTC_PRICE, -(WAD // 2), better, 89_000 * WAD)
    assert engine.accountValue(alice) == after_better
    assert engine.accountValue(alice) > before


def test_reduction_worsening_bad_debt_taker(system, engine, deployer, alice, bob):
    before = underwater_long(system, engine, deployer, alice, bob)
    for sold in (WAD // 2, WAD):  # partial and full close both cross the spread
        q = engine.quote(BTC, -sold)
        after = value_after_fill(10_100 * WAD, WAD, BTC_PRICE, -sold, q, 89_000 * WAD)
        assert after < before
        with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
            engine.openPosition(BTC, -sold, 0, sender=alice)


def test_reduction_creating_bad_debt_reverts(system, engine, deployer, alice, bob):
    """Questionable: the NatSpec says a reduction reverts only if it worsens an account ALREADY
    below zero; the code also reverts when a solvent account (value +100) would end below zero."""
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 90_000)
    before = engine.accountValue(alice)
    assert before == 100 * WAD
    price = 89_200 * WAD
    after = value_after_fill(10_100 * WAD, WAD, BTC_PRICE, -(WAD // 2), price, 90_000 * WAD)
    assert after == -300 * WAD
    with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
        engine.settleMatchedFill(bob, alice, BTC, WAD // 2, price, sender=deployer)


def test_reduction_below_initial_margin_is_allowed(system, engine, deployer, alice, bob):
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 95_000)
    value, _, im = engine.health(cross_id(alice))
    assert 0 <= value < im
    q = engine.quote(BTC, -(WAD // 2))
    engine.openPosition(BTC, -(WAD // 2), q, sender=alice)
    expected = value_after_fill(10_100 * WAD, WAD, BTC_PRICE, -(WAD // 2), q, 95_000 * WAD)
    assert engine.accountValue(alice) == expected
    assert engine.getPosition(alice, BTC)[0] == WAD // 2
