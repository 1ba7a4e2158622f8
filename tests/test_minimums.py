"""Dust and registry growth (issue 17): the engine's minimum collateral per account
(`setMinCollateral`, `CollateralBelowMinimum`) and minimum position notional per market
(`MarketParams.minPositionNotional`, `PositionBelowMinimum`), each tried on both sides of its
boundary. The model's mirror is compared in lockstep by tests/test_differential.py."""

from __future__ import annotations

import pytest

from tests.conftest import BTC, USDC, WAD
from tests.reverts import events, expected_events, reverts

MAX_UINT = 2**256 - 1
TOKEN_SCALE = 10**12  # USDC units -> WAD
BTC_PRICE = 100_000 * WAD


def cross_id(account) -> int:
    return int(account.address, 16)


def iso_id(account, market_id: int) -> int:
    return int(account.address, 16) | ((market_id + 1) << 160)


@pytest.fixture
def engine(system):
    return system.engine


def with_min_position(engine, deployer, market_id: int, minimum: int) -> None:
    params = list(engine.marketParams(market_id))
    params[-1] = minimum  # minPositionNotional, the struct's last field
    engine.setMarketParams(market_id, tuple(params), sender=deployer)


# setMinCollateral


def test_setMinCollateral_fromOutsider(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setMinCollateral(10 * WAD, sender=alice)


def test_setMinCollateral_setsAndEmits(engine, deployer):
    assert engine.minCollateral() == 0
    receipt = engine.setMinCollateral(10 * WAD, sender=deployer)
    assert events(receipt, engine.MinCollateralSet) == expected_events(dict(minCollateral=10 * WAD))
    assert engine.minCollateral() == 10 * WAD


# deposit, depositFor, transferMargin under a minimum collateral


def test_depositFor_dustAccountRefused(system, engine, deployer, alice, bob):
    """The issue's registry growth: `depositFor(anyone, 1)` registered an account for 1e-6 USDC."""
    engine.setMinCollateral(10 * WAD, sender=deployer)
    system.usdc.mint(alice, 10 * USDC, sender=deployer)
    system.usdc.approve(engine, 10 * USDC, sender=alice)
    count = engine.accountCount()
    with reverts(engine.CollateralBelowMinimum, accountId=cross_id(bob), collateral=TOKEN_SCALE, minimum=10 * WAD):
        engine.depositFor(bob, 1, sender=alice)
    with reverts(engine.CollateralBelowMinimum, accountId=cross_id(bob), collateral=10 * WAD - TOKEN_SCALE,
                 minimum=10 * WAD):
        engine.depositFor(bob, 10 * USDC - 1, sender=alice)
    assert engine.accountCount() == count
    engine.depositFor(bob, 10 * USDC, sender=alice)  # exactly the minimum
    assert engine.collateralOf(cross_id(bob)) == 10 * WAD and engine.accountCount() == count + 1


def test_deposit_topUpCountsTheCollateralHeld(system, engine, deployer, alice):
    """The minimum is on the collateral after the deposit, not on the amount: once above it, any
    top-up is accepted."""
    system.fund(alice, 10)
    engine.setMinCollateral(10 * WAD, sender=deployer)
    system.usdc.mint(alice, 1, sender=deployer)
    system.usdc.approve(engine, 1, sender=alice)
    engine.deposit(1, sender=alice)
    assert engine.collateralOf(cross_id(alice)) == 10 * WAD + TOKEN_SCALE


def test_transferMargin_dustIsolatedBucketRefused(system, engine, deployer, alice):
    """`transferMargin(m, 1 wei)` registered an isolated account per market (up to 256 per address)."""
    system.fund(alice, 1_000)
    engine.setMinCollateral(10 * WAD, sender=deployer)
    count = engine.accountCount()
    with reverts(engine.CollateralBelowMinimum, accountId=iso_id(alice, BTC), collateral=1, minimum=10 * WAD):
        engine.transferMargin(BTC, 1, sender=alice)
    assert engine.accountCount() == count
    engine.transferMargin(BTC, 10 * WAD, sender=alice)
    assert engine.collateralOf(iso_id(alice, BTC)) == 10 * WAD


def test_transferMargin_backToCrossBelowMinimumRefused(system, engine, deployer, alice):
    """Margin moved back to the cross account is a credit too: it must leave the minimum there."""
    system.fund(alice, 20)
    engine.transferMargin(BTC, 20 * WAD, sender=alice)  # the cross account is left with 0
    engine.setMinCollateral(10 * WAD, sender=deployer)
    with reverts(engine.CollateralBelowMinimum, accountId=cross_id(alice), collateral=WAD, minimum=10 * WAD):
        engine.transferMargin(BTC, -WAD, sender=alice)
    engine.transferMargin(BTC, -10 * WAD, sender=alice)


# openPosition, settleMatchedFill under a minimum position notional


def test_openPosition_belowMinimumNotional(system, engine, deployer, alice):
    system.fund(alice, 1_000)
    with_min_position(engine, deployer, BTC, 100 * WAD)
    size = WAD // 1_000 - 1  # $100 less 1e-13 of a dollar at $100,000
    notional = size * BTC_PRICE // WAD
    with reverts(engine.PositionBelowMinimum, accountId=cross_id(alice), marketId=BTC, notional=notional,
                 minimum=100 * WAD):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)
    engine.openPosition(BTC, size + 1, MAX_UINT, sender=alice)  # exactly $100
    assert engine.positionOf(cross_id(alice), BTC)[0] == size + 1


def test_openPosition_reductionLeavingDustRefusedFullCloseAllowed(system, engine, deployer, alice):
    system.fund(alice, 1_000)
    engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)  # $1,000
    with_min_position(engine, deployer, BTC, 100 * WAD)
    with reverts(engine.PositionBelowMinimum, accountId=cross_id(alice), marketId=BTC, notional=BTC_PRICE // WAD,
                 minimum=100 * WAD):
        engine.openPosition(BTC, -(WAD // 100 - 1), 0, sender=alice)  # would leave 1 wei
    engine.openPosition(BTC, -(WAD // 100), 0, sender=alice)
    assert engine.positionOf(cross_id(alice), BTC)[0] == 0


def test_settleMatchedFill_belowMinimumNotional(system, engine, deployer, alice, bob):
    """The issue's 1-wei short: a matched fill of 1 wei is refused once the market has a minimum."""
    system.fund(alice, 1_000)
    system.fund(bob, 1_000)
    with_min_position(engine, deployer, BTC, WAD)
    with reverts(engine.PositionBelowMinimum, accountId=cross_id(alice), marketId=BTC, notional=BTC_PRICE // WAD,
                 minimum=WAD):
        engine.settleMatchedFill(alice, bob, BTC, 1, BTC_PRICE, sender=deployer)
    engine.settleMatchedFill(alice, bob, BTC, WAD // 100_000, BTC_PRICE, sender=deployer)  # $1 each
