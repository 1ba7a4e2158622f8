"""PerpEngine collateral: deposit, depositFor, withdraw, transferMargin (cross to isolated and
back) and depositInsurance (contract sections COLLATERAL and INSURANCE FUND)."""

from tests.conftest import BTC, ETH, USDC, WAD
from tests.engine.helpers import (
    HEARTBEAT, INT_MIN, MAX_UINT, TOKEN_SCALE, ZERO, cross_id, iso_id, make_stale, open_long,
)
from tests.reverts import events, expected_events, reverts, reverts_with_panic


# deposit / depositFor


def test_deposit_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.deposit(0, sender=alice)


def test_deposit_without_allowance(system, engine, deployer, alice):
    system.usdc.mint(alice, 100 * USDC, sender=deployer)
    with reverts(system.usdc.InsufficientAllowance, owner=alice, spender=engine, allowance=0, needed=100 * USDC):
        engine.deposit(100 * USDC, sender=alice)


def test_deposit_without_balance(system, engine, alice):
    system.usdc.approve(engine, 100 * USDC, sender=alice)
    with reverts(system.usdc.InsufficientBalance, account=alice, balance=0, needed=100 * USDC):
        engine.deposit(100 * USDC, sender=alice)


def test_deposit_credits_and_emits(system, engine, deployer, alice):
    system.usdc.mint(alice, 300 * USDC, sender=deployer)
    system.usdc.approve(engine, 300 * USDC, sender=alice)
    count = engine.accountCount()
    receipt = engine.deposit(100 * USDC, sender=alice)
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=cross_id(alice), index=count))
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(alice), "from": alice, "amount": 100 * USDC}
    )
    receipt = engine.deposit(200 * USDC, sender=alice)
    assert events(receipt, engine.AccountRegistered) == []
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(alice), "from": alice, "amount": 200 * USDC}
    )
    assert engine.collateralOf(cross_id(alice)) == 300 * USDC * TOKEN_SCALE
    assert engine.accountCount() == count + 1
    assert system.usdc.balanceOf(alice) == 0


def test_deposit_for_zero_address(engine, alice):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.depositFor(ZERO, 5 * USDC, sender=alice)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.depositFor(ZERO, 0, sender=alice)


def test_deposit_for_zero_amount(engine, alice, bob):
    with reverts(engine.ZeroAmount):
        engine.depositFor(bob, 0, sender=alice)


def test_deposit_for_credits_the_beneficiary(system, engine, deployer, alice, bob):
    system.usdc.mint(alice, 50 * USDC, sender=deployer)
    system.usdc.approve(engine, 50 * USDC, sender=alice)
    receipt = engine.depositFor(bob, 50 * USDC, sender=alice)
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(bob), "from": alice, "amount": 50 * USDC}
    )
    assert engine.collateralOf(cross_id(bob)) == 50 * USDC * TOKEN_SCALE
    assert engine.collateralOf(cross_id(alice)) == 0


# withdraw


def test_withdraw_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.withdraw(0, sender=alice)


def test_withdraw_without_account(engine, alice):
    with reverts(engine.InsufficientCollateral, accountId=cross_id(alice), collateral=0, amount=5 * USDC * TOKEN_SCALE):
        engine.withdraw(5 * USDC, sender=alice)


def test_withdraw_above_collateral(system, engine, alice):
    system.fund(alice, 1_000)
    amount = 1_000 * USDC + 1
    with reverts(
        engine.InsufficientCollateral,
        accountId=cross_id(alice),
        collateral=1_000 * WAD,
        amount=amount * TOKEN_SCALE,
    ):
        engine.withdraw(amount, sender=alice)


def test_withdraw_breaking_initial_margin(system, engine, alice):
    open_long(system, alice, WAD // 2, 10_000)
    value, _, im = engine.health(cross_id(alice))
    free = (value - im) // TOKEN_SCALE
    bad = free + 1
    with reverts(
        engine.InsufficientMargin,
        accountId=cross_id(alice),
        accountValue=value - bad * TOKEN_SCALE,
        initialMargin=im,
    ):
        engine.withdraw(bad, sender=alice)
    engine.withdraw(free, sender=alice)  # the largest amount that keeps AV >= IM
    assert engine.health(cross_id(alice))[0] == value - free * TOKEN_SCALE


def test_withdraw_with_position_on_stale_price(system, chain, engine, alice):
    open_long(system, alice, WAD // 10, 10_000)
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.withdraw(1 * USDC, sender=alice)


def test_withdraw_without_position_ignores_stale_price(system, chain, engine, alice):
    system.fund(alice, 1_000)
    make_stale(system, chain, BTC)
    engine.withdraw(1_000 * USDC, sender=alice)
    assert engine.collateralOf(cross_id(alice)) == 0


def test_withdraw_pays_out_and_emits(system, engine, alice):
    system.fund(alice, 1_000)
    receipt = engine.withdraw(400 * USDC, sender=alice)
    assert events(receipt, engine.Withdrawal) == expected_events(
        dict(accountId=cross_id(alice), to=alice, amount=400 * USDC)
    )
    assert system.usdc.balanceOf(alice) == 400 * USDC
    assert engine.collateralOf(cross_id(alice)) == 600 * WAD


# transferMargin


def test_transfer_margin_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=7):
        engine.transferMargin(7, WAD, sender=alice)
    with reverts(engine.UnknownMarket, marketId=7):
        engine.transferMargin(7, 0, sender=alice)


def test_transfer_margin_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.transferMargin(BTC, 0, sender=alice)


def test_transfer_margin_in_above_cross_collateral(system, engine, alice):
    system.fund(alice, 100)
    with reverts(engine.InsufficientCollateral, accountId=cross_id(alice), collateral=100 * WAD, amount=100 * WAD + 1):
        engine.transferMargin(BTC, 100 * WAD + 1, sender=alice)


def test_transfer_margin_out_above_isolated_collateral(system, engine, alice):
    system.fund(alice, 100)
    engine.transferMargin(BTC, 10 * WAD, sender=alice)
    with reverts(
        engine.InsufficientCollateral, accountId=iso_id(alice, BTC), collateral=10 * WAD, amount=10 * WAD + 1
    ):
        engine.transferMargin(BTC, -(10 * WAD + 1), sender=alice)
    with reverts(engine.InsufficientCollateral, accountId=iso_id(alice, ETH), collateral=0, amount=WAD):
        engine.transferMargin(ETH, -WAD, sender=alice)


def test_transfer_margin_in_breaking_cross_margin(system, engine, alice):
    open_long(system, alice, WAD // 2, 10_000)
    value, _, im = engine.health(cross_id(alice))
    amount = value - im + 1
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=im - 1, initialMargin=im):
        engine.transferMargin(ETH, amount, sender=alice)
    engine.transferMargin(ETH, amount - 1, sender=alice)
    assert engine.health(cross_id(alice))[0] == im
    assert engine.collateralOf(iso_id(alice, ETH)) == amount - 1


def test_transfer_margin_out_breaking_isolated_margin(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 10_000 * WAD, sender=alice)
    engine.openIsolatedPosition(BTC, WAD // 2, MAX_UINT, sender=alice)
    bucket = iso_id(alice, BTC)
    value, _, im = engine.health(bucket)
    amount = value - im + 1
    with reverts(engine.InsufficientMargin, accountId=bucket, accountValue=im - 1, initialMargin=im):
        engine.transferMargin(BTC, -amount, sender=alice)
    engine.transferMargin(BTC, -(amount - 1), sender=alice)
    assert engine.health(bucket)[0] == im


def test_transfer_margin_int_min_reverts(system, engine, alice):
    # abs(type(int256).min) overflows: a panic rather than a custom error.
    system.fund(alice, 100)
    with reverts_with_panic(0x11):
        engine.transferMargin(BTC, INT_MIN, sender=alice)


def test_transfer_margin_both_directions_with_events(system, engine, alice):
    system.fund(alice, 1_000)
    bucket = iso_id(alice, BTC)
    assert engine.isolatedAccountId(alice, BTC) == bucket
    count = engine.accountCount()
    receipt = engine.transferMargin(BTC, 300 * WAD, sender=alice)
    assert events(receipt, engine.MarginTransferred) == expected_events(
        dict(owner=alice, marketId=BTC, amount=300 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=bucket, index=count))
    receipt = engine.transferMargin(BTC, -100 * WAD, sender=alice)
    assert events(receipt, engine.MarginTransferred) == expected_events(
        dict(owner=alice, marketId=BTC, amount=-100 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == []
    assert engine.collateralOf(bucket) == 200 * WAD
    assert engine.collateralOf(cross_id(alice)) == 800 * WAD


# depositInsurance


def test_deposit_insurance_zero(engine, deployer):
    with reverts(engine.ZeroAmount):
        engine.depositInsurance(0, sender=deployer)


def test_deposit_insurance_without_allowance(system, engine, deployer, alice):
    system.usdc.mint(alice, 10 * USDC, sender=deployer)
    with reverts(system.usdc.InsufficientAllowance, owner=alice, spender=engine, allowance=0, needed=10 * USDC):
        engine.depositInsurance(10 * USDC, sender=alice)


def test_deposit_insurance_success(system, engine, deployer, alice):
    system.usdc.mint(alice, 10 * USDC, sender=deployer)
    system.usdc.approve(engine, 10 * USDC, sender=alice)
    fund = engine.insuranceFund()
    receipt = engine.depositInsurance(10 * USDC, sender=alice)
    # Token units, as Deposit and Withdrawal report.
    assert events(receipt, engine.InsuranceFundDeposit) == expected_events({"from": alice, "amount": 10 * USDC})
    assert engine.insuranceFund() == fund + 10 * WAD
    assert engine.balanceSheet()[2] == fund + 10 * WAD
