"""The engine with hostile collateral tokens (contracts/mocks/HostileTokens.sol): what it refuses,
with which error, and what it cannot see. Supported collateral: an ERC-20 that returns true and
moves exactly the amount asked (KNOWN_ISSUES.md, "Collateral token")."""

from __future__ import annotations

import ape
import pytest

from tests.conftest import USDC
from tests.reverts import reverts


@pytest.fixture(scope="module")
def router(project, deployer):
    return deployer.deploy(project.OracleRouter)


def _engine_with(project, deployer, router, token_name: str):
    token = deployer.deploy(getattr(project, token_name))
    engine = deployer.deploy(project.PerpEngine, token, router)
    return token, engine


def _fund(token, engine, who, amount):
    token.mint(who, amount, sender=who)
    token.approve(engine, 2**256 - 1, sender=who)


def test_deposit_fee_on_transfer_token_reverts_transfer_failed(project, deployer, router, alice):
    token, engine = _engine_with(project, deployer, router, "FeeOnTransferToken")
    _fund(token, engine, alice, 100 * USDC)
    # The engine receives 99 USDC for 100: the exact-balance check refuses to credit 100.
    with ape.reverts(engine.TransferFailed, **{"from": alice.address, "to": engine.address, "amount": 100 * USDC}):
        engine.deposit(100 * USDC, sender=alice)
    assert token.balanceOf(engine) == 0 and engine.collateralOf(int(alice.address, 16)) == 0


def test_deposit_no_return_token_reverts_without_crediting(project, deployer, router, alice):
    token, engine = _engine_with(project, deployer, router, "NoReturnToken")
    _fund(token, engine, alice, 100 * USDC)
    # The engine decodes a bool from transferFrom's empty return data: the call reverts (no
    # reason), and the whole deposit with it. Such tokens are not supported as collateral.
    with ape.reverts():
        engine.deposit(100 * USDC, sender=alice)
    assert token.balanceOf(alice) == 100 * USDC and engine.collateralOf(int(alice.address, 16)) == 0


@pytest.mark.parametrize("function", ["deposit", "depositInsurance"])
def test_deposit_reentrant_token_reverts_reentrancy(project, deployer, router, alice, function):
    token, engine = _engine_with(project, deployer, router, "ReentrantToken")
    _fund(token, engine, alice, 100 * USDC)
    token.setCallback(engine, engine.deposit.encode_input(1 * USDC), sender=alice)
    # The callback re-enters the engine while the outer call holds the lock: refused at the lock,
    # before anything else is checked. The strict `reverts`: `ape.reverts` let the mutant
    # `engine-lock-ignored` through (without the lock the callback recurses until a bare revert).
    with reverts(engine.Reentrancy):
        getattr(engine, function)(10 * USDC, sender=alice)
    assert token.balanceOf(engine) == 0


def test_rebasing_token_shortfall_shows_in_the_balance_sheet(project, deployer, router, alice):
    token, engine = _engine_with(project, deployer, router, "RebasingToken")
    _fund(token, engine, alice, 100 * USDC)
    engine.deposit(100 * USDC, sender=alice)
    tokens, claims, _ = engine.balanceSheet()
    assert tokens == claims == 100 * 10**18
    token.rebase(9 * 10**17, sender=alice)  # every balance -10%, the engine's included
    tokens, claims, _ = engine.balanceSheet()
    # The engine cannot see a rebase happen: its claims stay, its tokens shrink. The balance sheet
    # (and invariant 1's check) is where the gap shows; the last withdrawals fail in the token.
    assert tokens == 90 * 10**18 and claims == 100 * 10**18
    with ape.reverts(token.InsufficientBalance):
        engine.withdraw(100 * USDC, sender=alice)
    engine.withdraw(90 * USDC, sender=alice)
