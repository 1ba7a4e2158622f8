import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import USDC
from tests.isolation import isolated


def test_metadata(usdc):
    assert usdc.decimals() == 6
    assert usdc.symbol() == "USDC"
    assert usdc.totalSupply() == 0


def test_mint_only_by_minter(usdc, deployer, alice):
    usdc.mint(alice, 5 * USDC, sender=deployer)
    assert usdc.balanceOf(alice) == 5 * USDC
    with ape.reverts(usdc.NotMinter, caller=alice.address):
        usdc.mint(alice, 1, sender=alice)


def test_transfer_reverts_with_balance_and_need(usdc, deployer, alice, bob):
    usdc.mint(alice, 3 * USDC, sender=deployer)
    with ape.reverts(usdc.InsufficientBalance, account=alice.address, balance=3 * USDC, needed=4 * USDC):
        usdc.transfer(bob, 4 * USDC, sender=alice)


def test_transfer_from_spends_allowance(usdc, deployer, alice, bob):
    usdc.mint(alice, 10 * USDC, sender=deployer)
    usdc.approve(bob, 4 * USDC, sender=alice)
    usdc.transferFrom(alice, bob, 3 * USDC, sender=bob)
    assert usdc.allowance(alice, bob) == 1 * USDC
    with ape.reverts(usdc.InsufficientAllowance):
        usdc.transferFrom(alice, bob, 2 * USDC, sender=bob)


@pytest.mark.parametrize("target", ["transfer", "mint"])
def test_zero_address_rejected(usdc, deployer, target):
    with ape.reverts(usdc.ZeroAddress):
        if target == "transfer":
            usdc.transfer("0x" + "00" * 20, 0, sender=deployer)
        else:
            usdc.mint("0x" + "00" * 20, 1, sender=deployer)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minted=st.integers(0, 10**15), sent=st.integers(0, 10**15))
def test_transfer_conserves_supply(chain, usdc, deployer, alice, bob, minted, sent):
    with isolated(chain):
        usdc.mint(alice, minted, sender=deployer)
        if sent > minted:
            with ape.reverts(usdc.InsufficientBalance):
                usdc.transfer(bob, sent, sender=alice)
            sent = 0
        else:
            usdc.transfer(bob, sent, sender=alice)
        assert usdc.balanceOf(alice) == minted - sent
        assert usdc.balanceOf(bob) == sent
        assert usdc.balanceOf(alice) + usdc.balanceOf(bob) == usdc.totalSupply() == minted
