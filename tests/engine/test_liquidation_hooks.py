"""PerpEngine liquidation hooks (LIQUIDATOR_ROLE: the liquidation engine; here the deployer holds
it): liquidationFill, adlFill, chargePenalty and settleDeficit (the loss waterfall: insurance fund,
bad debt, socialised loss)."""

import pytest

from simulator.model import depth, liquidation, position
from simulator.model import fixed_point as fp
from tests.conftest import BTC, WAD
from tests.engine.helpers import (
    BTC_DEPTH, BTC_PRICE, HEARTBEAT, MAX_IMPACT, MAX_UINT, cross_id, make_stale, open_long, underwater_long,
)
from tests.reverts import events, expected_events, reverts


@pytest.fixture
def liquidator(engine, deployer):
    """The deployer acts as the liquidation engine, so the hooks can be called directly."""
    engine.setRole(engine.LIQUIDATOR_ROLE(), deployer, True, sender=deployer)
    return deployer


# access, market and price checks of the four hooks


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill", "chargePenalty", "settleDeficit"])
def test_liquidation_hooks_only_liquidator(engine, deployer, alice, bob, hook):
    args = {
        "liquidationFill": (cross_id(alice), BTC, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), BTC, -WAD, BTC_PRICE),
        "chargePenalty": (cross_id(alice), bob, 1, 1),
        "settleDeficit": (cross_id(alice), BTC, True),
    }[hook]
    # the owner is not a liquidator either
    with reverts(engine.Unauthorized, caller=deployer, role=engine.LIQUIDATOR_ROLE()):
        getattr(engine, hook)(*args, sender=deployer)


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill", "settleDeficit"])
def test_liquidation_hooks_unknown_market(engine, liquidator, alice, bob, hook):
    args = {
        "liquidationFill": (cross_id(alice), 4, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), 4, -WAD, BTC_PRICE),
        "settleDeficit": (cross_id(alice), 4, True),
    }[hook]
    with reverts(engine.UnknownMarket, marketId=4):
        getattr(engine, hook)(*args, sender=liquidator)


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill"])
def test_liquidation_hooks_stale_price(system, chain, engine, deployer, liquidator, alice, bob, hook):
    # settleDeficit reads no price: it acts only on closed-out accounts (see below).
    args = {
        "liquidationFill": (cross_id(alice), BTC, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), BTC, -WAD, BTC_PRICE),
    }[hook]
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        getattr(engine, hook)(*args, sender=liquidator)


# liquidationFill


def test_liquidation_fill_book_exhausted(system, engine, deployer, liquidator, alice):
    open_long(system, alice, WAD, 100_000)
    impact = depth.impact_of(fp.w_mul_up(501 * WAD, BTC_PRICE), BTC_DEPTH)  # the walk's end, from an empty block
    with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
        engine.liquidationFill(cross_id(alice), BTC, -501 * WAD, sender=liquidator)
    engine.setDepth(BTC, 0, sender=deployer)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.liquidationFill(cross_id(alice), BTC, -WAD, sender=liquidator)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.previewLiquidationFill(cross_id(alice), BTC, -WAD)


def test_liquidation_fill_success_matches_preview(system, chain, engine, liquidator, alice, vault):
    open_long(system, alice, WAD // 2, 10_000)
    chain.mine()  # preview and fill in fresh blocks: the open's book consumption stays in its block
    aid, size = cross_id(alice), -(WAD // 2)
    fill, value_after, mm_after = engine.previewLiquidationFill(aid, BTC, size)
    assert fill == engine.quote(BTC, size)
    _, alice_on = engine.getPosition(alice, BTC)
    _, vault_on = engine.getPosition(vault, BTC)
    receipt = engine.liquidationFill(aid, BTC, size, sender=liquidator)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=aid, marketId=BTC, sizeDelta=size, fillPrice=fill, newSize=0, newOpenNotional=0,
             realizedPnl=position.apply_fill(WAD // 2, alice_on, size, fill)[2]),
        dict(accountId=cross_id(vault), marketId=BTC, sizeDelta=-size, fillPrice=fill, newSize=0,
             newOpenNotional=0, realizedPnl=position.apply_fill(-(WAD // 2), vault_on, -size, fill)[2]),
    )
    assert engine.health(aid) == (value_after, mm_after, 0)
    assert mm_after == 0
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (0, 0, 0)


# adlFill


def test_adl_fill_success(system, engine, deployer, liquidator, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    price = BTC_PRICE + 1_000 * WAD
    size = -(2 * WAD // 5)
    receipt = engine.adlFill(cross_id(alice), cross_id(bob), BTC, size, price, sender=liquidator)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, sizeDelta=size, fillPrice=price, newSize=3 * WAD // 5,
             newOpenNotional=3 * BTC_PRICE // 5, realizedPnl=400 * WAD),
        dict(accountId=cross_id(bob), marketId=BTC, sizeDelta=-size, fillPrice=price, newSize=-3 * WAD // 5,
             newOpenNotional=-3 * BTC_PRICE // 5, realizedPnl=-400 * WAD),
    )
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (3 * WAD // 5, 3 * WAD // 5, 0)


# chargePenalty


def test_charge_penalty_success(system, engine, liquidator, alice, carol):
    system.fund(alice, 1_000)
    fund = engine.insuranceFund()
    count = engine.accountCount()
    receipt = engine.chargePenalty(cross_id(alice), carol, 30 * WAD, 70 * WAD, sender=liquidator)
    assert events(receipt, engine.PenaltyCharged) == expected_events(
        dict(accountId=cross_id(alice), keeper=carol, toKeeper=30 * WAD, toFund=70 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=cross_id(carol), index=count))
    assert engine.collateralOf(cross_id(alice)) == 900 * WAD
    assert engine.collateralOf(cross_id(carol)) == 30 * WAD
    assert engine.insuranceFund() == fund + 70 * WAD


def test_charge_penalty_amount_too_large(engine, liquidator, alice, carol):
    with reverts(engine.IntOverflow, value=2**255):
        engine.chargePenalty(cross_id(alice), carol, 2**255, 0, sender=liquidator)


# settleDeficit


def test_settle_deficit_of_solvent_account_does_nothing(system, engine, deployer, liquidator, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    before = engine.health(cross_id(alice))
    receipt = engine.settleDeficit(cross_id(alice), BTC, True, sender=liquidator)
    for event in (engine.InsuranceFundPayment, engine.LossSocialized, engine.BadDebtRecorded):
        assert events(receipt, event) == []
    assert engine.health(cross_id(alice)) == before
    assert (engine.insuranceFund(), engine.badDebt()) == (0, 0)


def _closed_out_underwater(system, engine, deployer, liquidator, alice, bob):
    """alice's underwater long closed against the vault: no position left, value below -$900."""
    underwater_long(system, engine, deployer, alice, bob)
    engine.liquidationFill(cross_id(alice), BTC, -WAD, sender=liquidator)
    assert engine.marketMaskOf(cross_id(alice)) == 0
    value = engine.accountValue(alice)
    assert value < -900 * WAD
    return value


def test_settle_deficit_waits_while_a_position_is_open(system, engine, deployer, liquidator, alice, bob):
    before = underwater_long(system, engine, deployer, alice, bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, False, sender=liquidator)
    assert events(receipt, engine.InsuranceFundPayment) == events(receipt, engine.BadDebtRecorded) == []
    assert engine.accountValue(alice) == before and engine.badDebt() == 0


def test_settle_deficit_fund_then_bad_debt(system, engine, deployer, liquidator, alice, bob):
    system.fund_insurance(500)
    before = _closed_out_underwater(system, engine, deployer, liquidator, alice, bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, False, sender=liquidator)
    assert events(receipt, engine.InsuranceFundPayment) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, amount=500 * WAD)
    )
    assert events(receipt, engine.BadDebtRecorded) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, amount=-before - 500 * WAD)
    )
    assert (engine.insuranceFund(), engine.badDebt()) == (0, -before - 500 * WAD)
    assert engine.accountValue(alice) == 0


def test_settle_deficit_socialized(system, engine, deployer, liquidator, alice, bob):
    before = _closed_out_underwater(system, engine, deployer, liquidator, alice, bob)
    bob_before = engine.accountValue(bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, True, sender=liquidator)
    # spread over every open position: bob's short 1 and the vault's long 1 (it took alice's sell)
    delta = liquidation.social_loss_index_delta(-before, 2 * WAD)
    assert events(receipt, engine.LossSocialized) == expected_events(
        dict(marketId=BTC, accountId=cross_id(alice), amount=-before, indexDelta=delta)
    )
    assert events(receipt, engine.BadDebtRecorded) == []
    assert engine.marketView(BTC).socialLossIndex == delta
    assert engine.accountValue(alice) == 0
    assert engine.accountValue(bob) == bob_before - delta
    assert engine.badDebt() == 0
