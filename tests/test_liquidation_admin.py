"""LiquidationEngine's privileged paths, tried from outside: ownership and the liquidation rules
(issue 17). Each revert names the caller or the parameter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conftest import DEFAULT_MARKETS, WAD
from tests.reverts import reverts

BTC = 0
ZERO = "0x" + "00" * 20


@pytest.fixture
def liquidator(system):
    return system.liquidator


def test_transferOwnership_fromOutsider(liquidator, alice):
    with reverts(liquidator.Unauthorized, caller=alice):
        liquidator.transferOwnership(alice, sender=alice)


def test_transferOwnership_toZeroAddress(liquidator, deployer):
    with reverts(liquidator.InvalidOwner, newOwner=ZERO):
        liquidator.transferOwnership(ZERO, sender=deployer)
    assert liquidator.owner() == deployer.address


def test_transferOwnership_offersAndAcceptOwnershipMovesTheRules(liquidator, deployer, alice):
    receipt = liquidator.transferOwnership(alice, sender=deployer)
    [event] = list(receipt.decode_logs(liquidator.OwnershipTransferStarted))
    assert (event.owner, event.newOwner) == (deployer.address, alice.address)
    assert (liquidator.owner(), liquidator.pendingOwner()) == (deployer.address, alice.address)
    rules = DEFAULT_MARKETS[BTC].liquidation_params()
    liquidator.setLiquidationParams(BTC, rules, sender=deployer)  # still the owner's until accepted
    receipt = liquidator.acceptOwnership(sender=alice)
    [event] = list(receipt.decode_logs(liquidator.OwnershipTransferred))
    assert (event.previousOwner, event.newOwner) == (deployer.address, alice.address)
    assert (liquidator.owner(), liquidator.pendingOwner()) == (alice.address, ZERO)
    with reverts(liquidator.Unauthorized, caller=deployer):
        liquidator.setLiquidationParams(BTC, rules, sender=deployer)
    liquidator.setLiquidationParams(BTC, rules, sender=alice)


def test_acceptOwnership_fromAnyoneButThePendingOwner(liquidator, deployer, alice, bob):
    with reverts(liquidator.NotPendingOwner, caller=bob, pendingOwner=ZERO):
        liquidator.acceptOwnership(sender=bob)
    liquidator.transferOwnership(alice, sender=deployer)
    for outsider in (bob, deployer):
        with reverts(liquidator.NotPendingOwner, caller=outsider, pendingOwner=alice):
            liquidator.acceptOwnership(sender=outsider)
    liquidator.transferOwnership(bob, sender=deployer)  # a new offer replaces the first
    with reverts(liquidator.NotPendingOwner, caller=alice, pendingOwner=bob):
        liquidator.acceptOwnership(sender=alice)
    liquidator.acceptOwnership(sender=bob)
    assert liquidator.owner() == bob.address


def test_setLiquidationParams_fromOutsider(liquidator, alice):
    with reverts(liquidator.Unauthorized, caller=alice):
        liquidator.setLiquidationParams(BTC, DEFAULT_MARKETS[BTC].liquidation_params(), sender=alice)


@pytest.mark.parametrize("change, name, value", [
    (dict(slice_fraction=0), b"sliceFraction", 0),
    (dict(slice_fraction="1.000000000000000001"), b"sliceFraction", WAD + 1),
    (dict(rate_limit_notional=1_000_000, rate_limit_window=0), b"rateLimitWindow", 0),
])
def test_setLiquidationParams_invalidParameter(liquidator, deployer, change, name, value):
    rules = replace(DEFAULT_MARKETS[BTC], **change).liquidation_params()
    with reverts(liquidator.InvalidParameter, name=name.ljust(32, b"\0"), value=value):
        liquidator.setLiquidationParams(BTC, rules, sender=deployer)


@pytest.mark.parametrize("change", [
    dict(slice_fraction="0.000000000000000001"),  # 1 wei of a WAD: the smallest slice
    dict(slice_fraction=1),  # WAD: whole positions
    dict(rate_limit_notional=0, rate_limit_window=0),  # no rate limit needs no window
    dict(rate_limit_notional=1_000_000, rate_limit_window=1),
])
def test_setLiquidationParams_acceptsEveryBoundary(liquidator, deployer, change):
    rules = replace(DEFAULT_MARKETS[BTC], **change).liquidation_params()
    receipt = liquidator.setLiquidationParams(BTC, rules, sender=deployer)
    [event] = list(receipt.decode_logs(liquidator.LiquidationParamsSet))
    assert event.marketId == BTC and tuple(liquidator.liquidationParams(BTC)) == tuple(rules)
