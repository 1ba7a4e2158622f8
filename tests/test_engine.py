"""The engine's mechanics against the reference numbers of docs/design.md §11: leverage, the depth
curve, zero-equity point, tiered maintenance margin, cross vs isolated margin, guarded prices and
funding."""

import ape
import pytest

from simulator.chain.deploy import MarketSpec, deploy_system
from simulator.units import wad
from tests.conftest import BTC, ETH, USDC, WAD
from tests.invariants import check_invariants
from tests.reverts import reverts

MAX_PRICE = 2**256 - 1


def fund(system, account, dollars):
    system.fund(account, dollars)
    return int(account.address, 16)


def matched(system, buyer, seller, market_id, size, price):
    return system.engine.settleMatchedFill(buyer, seller, market_id, size, price, sender=system.deployer)


# Seed: $10,000 at 10x controls $100,000.
def test_10x_leverage_controls_ten_times_the_deposit(system, alice, bob):
    fund(system, alice, 10_000)
    fund(system, bob, 10_000)
    matched(system, alice, bob, BTC, WAD, wad(100_000))  # $100,000 of BTC at the oracle price
    engine = system.engine
    assert engine.initialMargin(alice) == wad(10_000)
    assert engine.accountValue(alice) == wad(10_000)
    assert engine.getPosition(alice, BTC) == (WAD, wad(100_000))
    # One more unit of size past $100,000 breaks the initial margin.
    with ape.reverts(engine.InsufficientMargin):
        matched(system, alice, bob, BTC, 10**12, wad(100_000))


# Seed: a $370,000 sell against $370,000 of 2% depth moves the marginal price 2% and fills 1% below.
def test_depth_curve_seed_numbers(project, deployer, vault_account, alice):
    system = deploy_system(project, deployer, vault_account, [MarketSpec("ETH", 1_000, depth2pct=370_000)])
    engine = system.engine
    fund(system, alice, 100_000)
    size = wad(370)  # $370,000 at $1,000
    assert engine.quote(0, -size) == wad(990)
    receipt = engine.openPosition(0, -size, 0, sender=alice)
    [event] = receipt.events.filter(engine.PositionChanged)[:1]
    assert event.fillPrice == wad(990)  # average 1% below
    view = engine.marketView(0)
    assert view.bookBlock == receipt.block_number
    assert view.bookConsumed == -wad(370_000)
    # The marginal price after the walk: 2% below. A tiny sell in the same state fills at ~0.98.
    # (Each transaction is its own block, so we check the curve's consumption instead of a quote.)
    assert -view.bookConsumed * 2 // 100 * WAD // view.depth2pct == wad("0.02")
    check_invariants(system)


def test_book_consumption_accumulates_within_a_block(project, deployer, vault_account, alice, bob, chain):
    system = deploy_system(project, deployer, vault_account, [MarketSpec("ETH", 1_000, depth2pct=370_000)])
    engine = system.engine
    fund(system, alice, 100_000)
    fund(system, bob, 100_000)
    chain.provider.auto_mine = False
    try:
        engine.openPosition(0, -wad(185), 0, sender=alice, gas_limit=2_000_000, required_confirmations=0)
        engine.openPosition(0, -wad(185), 0, sender=bob, gas_limit=2_000_000, required_confirmations=0)
        chain.mine()
    finally:
        chain.provider.auto_mine = True
    height = chain.blocks.height
    fills = sorted({log.fillPrice for log in engine.PositionChanged.range(height, height + 1)}, reverse=True)
    # Same-block walk: the first half fills 0.5% below, the second 1.5% below.
    assert fills == [wad(995), wad(985)]
    check_invariants(system)


# Seed: a 5x long with no maintenance margin reaches zero equity after a 20% drop.
def test_5x_long_zero_equity_at_minus_20_percent(project, deployer, vault_account, alice, bob):
    spec = MarketSpec("BTC", 100_000, imr="0.2", mmr=0, depth2pct=10**9)
    system = deploy_system(project, deployer, vault_account, [spec])
    engine = system.engine
    fund(system, alice, 20_000)
    fund(system, bob, 100_000)
    matched(system, alice, bob, 0, WAD, wad(100_000))  # $100,000 long on $20,000: 5x
    system.set_price(0, 80_000)
    assert engine.accountValue(alice) == 0
    assert engine.maintenanceMargin(alice) == 0
    assert not engine.isLiquidatable(alice)  # AV < MM is strict: zero equity is the boundary
    system.set_price(0, "79999.99")
    assert engine.accountValue(alice) < 0
    assert engine.isLiquidatable(alice)
    check_invariants(system)


# Hyperliquid: $200M of BTC with tiers 1.25% below $150M and 2.5% above needs $3.125M.
def test_tiered_maintenance_margin_hyperliquid_example(project, deployer, vault_account, alice, bob):
    spec = MarketSpec("BTC", 100_000, imr="0.025", mmr="0.0125", tiers=[(150_000_000, "0.025")], depth2pct=10**9)
    system = deploy_system(project, deployer, vault_account, [spec])
    engine = system.engine
    floors, mmrs, deductions = engine.tiersOf(0)
    assert deductions == [0, wad(1_875_000)]
    fund(system, alice, 6_000_000)
    fund(system, bob, 6_000_000)
    matched(system, alice, bob, 0, wad(2_000), wad(100_000))  # $200M
    assert engine.maintenanceMargin(alice) == wad(3_125_000)
    # Continuity at the boundary: $150M needs 1.25% either way.
    assert engine.initialMargin(alice) == wad(5_000_000)
    check_invariants(system)


@pytest.mark.parametrize("notional", [149_999_999, 150_000_000, 150_000_001])
def test_tiered_margin_is_continuous_at_the_floor(project, deployer, vault_account, alice, bob, notional):
    spec = MarketSpec("BTC", 1, imr="0.025", mmr="0.0125", tiers=[(150_000_000, "0.025")], depth2pct=10**12)
    system = deploy_system(project, deployer, vault_account, [spec], vault_collateral_usd=0)
    fund(system, alice, 5_000_000)
    fund(system, bob, 5_000_000)
    matched(system, alice, bob, 0, wad(notional), wad(1))
    expected = notional * WAD * 125 // 10_000 if notional < 150_000_000 else notional * WAD * 25 // 1000 - wad(1_875_000)
    assert system.engine.maintenanceMargin(alice) == expected


def test_cross_margin_loss_reduces_margin_for_other_positions(system, alice, bob):
    engine = system.engine
    fund(system, alice, 30_000)
    fund(system, bob, 1_000_000)
    matched(system, alice, bob, BTC, WAD, wad(100_000))  # IM $10,000
    matched(system, alice, bob, ETH, wad(25), wad(4_000))  # IM $10,000
    # Room for $100,000 more notional; a 5% BTC drop takes $5,000 of it away.
    system.set_price(BTC, 95_000)
    assert engine.accountValue(alice) == wad(25_000)
    im_now = engine.initialMargin(alice)
    free = engine.accountValue(alice) - im_now
    with ape.reverts(engine.InsufficientMargin):
        engine.withdraw(free // 10**12 + 1, sender=alice)
    # ETH increase that fit before the drop no longer fits.
    with ape.reverts(engine.InsufficientMargin):
        matched(system, alice, bob, ETH, wad(20), wad(4_000))
    engine.withdraw(free // 10**12, sender=alice)


def test_isolated_position_loss_stays_in_its_bucket(system, alice, bob):
    engine = system.engine
    fund(system, alice, 30_000)
    fund(system, bob, 1_000_000)
    engine.transferMargin(BTC, wad(10_000), sender=alice)
    isolated = engine.isolatedAccountId(alice, BTC)
    engine.openIsolatedPosition(BTC, WAD // 2, MAX_PRICE, sender=alice)  # $50,000 on $10,000
    cross_before = engine.accountValue(alice)
    isolated_before = engine.health(isolated)[0]
    system.set_price(BTC, 84_000)
    assert engine.accountValue(alice) == cross_before == wad(20_000)
    isolated_after, mm, _ = engine.health(isolated)
    assert isolated_after == isolated_before - wad(8_000)
    assert isolated_after < mm
    assert engine.isAccountLiquidatable(isolated)
    assert not engine.isLiquidatable(alice)
    # The cross account can still trade on its own margin.
    engine.openPosition(ETH, wad(10), MAX_PRICE, sender=alice)


@pytest.mark.parametrize("bad", ["stale", "zero", "negative", "breaker"])
def test_unusable_prices_stop_trades(project, deployer, vault_account, alice, chain, bad):
    spec = MarketSpec("BTC", 100_000, max_deviation="0.1", cooldown=600, depth2pct=10**8)
    system = deploy_system(project, deployer, vault_account, [spec])
    engine, router = system.engine, system.router
    fund(system, alice, 50_000)
    engine.openPosition(0, WAD // 10, MAX_PRICE, sender=alice)
    if bad == "stale":
        chain.pending_timestamp += 3601
        error = router.StalePrice
    elif bad == "breaker":
        system.set_price(0, 80_000)  # -20% trips the 10% breaker
        error = router.BreakerTripped
    else:
        system.feeds[0].submit(0 if bad == "zero" else -1, sender=deployer)
        error = router.InvalidPrice
    with reverts(error, any_args=True):
        engine.openPosition(0, WAD // 10, MAX_PRICE, sender=alice)
    with reverts(error, any_args=True):
        engine.openPosition(0, -WAD // 10, 0, sender=alice)
    with reverts(error, any_args=True):
        engine.withdraw(USDC, sender=alice)
    with reverts(error, any_args=True):
        engine.settleMatchedFill(alice, deployer, 0, WAD // 10, wad(100_000), sender=deployer)
    assert engine.getPosition(alice, 0)[0] == WAD // 10


def test_funding_paid_equals_received(project, deployer, vault_account, alice, bob, carol, chain):
    spec = MarketSpec("BTC", 100_000, depth2pct=10**8, max_funding_rate="0.000001", skew_scale=10)
    system = deploy_system(project, deployer, vault_account, [spec])
    engine = system.engine
    ids = [fund(system, a, 100_000) for a in (alice, bob, carol)]
    engine.openPosition(0, wad(3), MAX_PRICE, sender=alice)
    engine.openPosition(0, -wad("1.3"), 0, sender=bob)
    chain.pending_timestamp += 1_000
    engine.openPosition(0, wad("0.7"), MAX_PRICE, sender=carol)
    chain.pending_timestamp += 3_333
    system.set_price(0, 97_123)
    settled_at = chain.pending_timestamp + 777
    vault_id = int(vault_account.address, 16)
    # Every final settlement in a block pinned to one timestamp: automine stamps a block a second
    # later whenever the wall clock ticks, and an account settled a second after the others would
    # pay or receive a second more funding than they did.
    for account_id in ids + [vault_id]:
        chain.pending_timestamp = settled_at
        assert engine.settleFunding(account_id, 0, sender=deployer).timestamp == settled_at
    # Every settlement, including those inside the trades.
    settlements = list(engine.FundingSettled.range(0, chain.blocks.height + 1))
    total = sum(log.amount for log in settlements)
    assert {log.accountId for log in settlements} == set(ids + [vault_id])
    # A second settlement at the same timestamp pays nothing.
    chain.pending_timestamp = settled_at
    receipt = engine.settleFunding(vault_id, 0, sender=deployer)
    assert receipt.timestamp == settled_at
    assert not receipt.events.filter(engine.FundingSettled)
    # Takers were net long all along: longs paid, the vault and the short received.
    assert engine.marketView(0).fundingIndex > 0
    # Paid minus received: non-negative dust, at most one wei per settlement.
    assert 0 <= total <= len(settlements)
    check_invariants(system)
