"""PerpEngine administration: the constructor, transferOwnership, setRole and setVault (contract
section ADMINISTRATION; markets and tiers are in test_markets.py, setDepth in test_depth.py)."""

from simulator.model import fixed_point as fp
from tests.conftest import BTC, WAD
from tests.engine.helpers import BTC_PRICE, MAX_UINT, TOKEN_SCALE, ZERO, b32, cross_id, open_long
from tests.reverts import events, expected_events, reverts


# CONSTRUCTOR


def test_constructor_rejects_token_with_more_than_18_decimals(system, project, deployer):
    # A PriceFeed answers decimals() like a token: 19 decimals cannot be scaled to WAD.
    fake_token = deployer.deploy(project.PriceFeed, 19, "not a token")
    with reverts(project.PerpEngine.InvalidParameter, name=b32("tokenDecimals"), value=19):
        deployer.deploy(project.PerpEngine, fake_token, system.router)
    engine = deployer.deploy(project.PerpEngine, system.usdc, system.router)
    assert engine.tokenScale() == TOKEN_SCALE
    assert engine.owner() == deployer.address


# transferOwnership


def test_transfer_ownership_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.transferOwnership(alice, sender=alice)


def test_transfer_ownership_rejects_zero_address(engine, deployer):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.transferOwnership(ZERO, sender=deployer)


def test_transfer_ownership_offers_and_accept_ownership_moves_owner(engine, deployer, alice):
    role = engine.OWNER_ROLE()
    receipt = engine.transferOwnership(alice, sender=deployer)
    # An offer only: the owner keeps the protocol (and its role) until the offer is accepted.
    assert events(receipt, engine.OwnershipTransferStarted) == expected_events(dict(owner=deployer, newOwner=alice))
    assert events(receipt, engine.RoleSet) == []
    assert (engine.owner(), engine.pendingOwner()) == (deployer.address, alice.address)
    engine.setRole(engine.OPERATOR_ROLE(), deployer, False, sender=deployer)
    receipt = engine.acceptOwnership(sender=alice)
    assert events(receipt, engine.RoleSet) == expected_events(
        dict(role=role, account=deployer, granted=False), dict(role=role, account=alice, granted=True)
    )
    assert (engine.owner(), engine.pendingOwner()) == (alice.address, ZERO)
    with reverts(engine.Unauthorized, caller=deployer, role=role):
        engine.setRole(engine.OPERATOR_ROLE(), deployer, False, sender=deployer)
    engine.setRole(engine.OPERATOR_ROLE(), deployer, False, sender=alice)


def test_accept_ownership_only_pending_owner(engine, deployer, alice, bob):
    with reverts(engine.NotPendingOwner, caller=bob, pendingOwner=ZERO):  # nothing offered
        engine.acceptOwnership(sender=bob)
    engine.transferOwnership(alice, sender=deployer)
    for outsider in (bob, deployer):  # not even the owner takes an offer it made
        with reverts(engine.NotPendingOwner, caller=outsider, pendingOwner=alice):
            engine.acceptOwnership(sender=outsider)
    # A new offer replaces the first: alice can no longer accept.
    engine.transferOwnership(bob, sender=deployer)
    with reverts(engine.NotPendingOwner, caller=alice, pendingOwner=bob):
        engine.acceptOwnership(sender=alice)
    engine.acceptOwnership(sender=bob)
    assert engine.owner() == bob.address
    with reverts(engine.NotPendingOwner, caller=bob, pendingOwner=ZERO):  # accepted once
        engine.acceptOwnership(sender=bob)


# setRole


def test_set_role_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setRole(engine.OPERATOR_ROLE(), alice, True, sender=alice)


def test_set_role_grants_and_revokes_with_events(engine, deployer, alice):
    role = engine.MARKET_MAKER_ROLE()
    receipt = engine.setRole(role, alice, True, sender=deployer)
    assert events(receipt, engine.RoleSet) == expected_events(dict(role=role, account=alice, granted=True))
    assert engine.hasRole(role, alice)
    receipt = engine.setDepth(BTC, 5 * WAD, sender=alice)
    assert events(receipt, engine.DepthSet) == expected_events(dict(marketId=BTC, depth2pct=5 * WAD, by=alice))

    receipt = engine.setRole(role, alice, False, sender=deployer)
    assert events(receipt, engine.RoleSet) == expected_events(dict(role=role, account=alice, granted=False))
    assert not engine.hasRole(role, alice)
    with reverts(engine.Unauthorized, caller=alice, role=role):
        engine.setDepth(BTC, 5 * WAD, sender=alice)


def test_set_role_cannot_grant_ownership(engine, deployer, alice):
    role = engine.OWNER_ROLE()
    with reverts(engine.InvalidParameter, name=b32("role"), value=int.from_bytes(role, "big")):
        engine.setRole(role, alice, True, sender=deployer)


# setVault


def test_set_vault_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setVault(alice, sender=alice)


def test_set_vault_rejects_zero_address(engine, deployer):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.setVault(ZERO, sender=deployer)


def test_set_vault_rejected_while_vault_holds_a_position(system, engine, deployer, alice, carol, vault):
    open_long(system, alice, WAD // 10, 100_000)
    assert engine.marketMaskOf(cross_id(vault)) == 1 << BTC
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.setVault(carol, sender=deployer)


def test_set_vault_allowed_again_once_vault_is_flat(system, engine, deployer, alice, carol, vault):
    open_long(system, alice, WAD // 10, 100_000)
    engine.openPosition(BTC, -(WAD // 10), 0, sender=alice)
    assert engine.marketMaskOf(cross_id(vault)) == 0
    receipt = engine.setVault(carol, sender=deployer)
    assert events(receipt, engine.VaultSet) == expected_events(dict(vault=carol))
    assert engine.vault() == carol.address


def test_set_vault_switches_counterparty(system, engine, deployer, bob, carol):
    system.fund(carol, 1_000_000)
    system.fund(bob, 100_000)
    engine.setVault(carol, sender=deployer)
    with reverts(engine.InvalidCounterparty, account=carol):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=carol)
    q = engine.quote(BTC, WAD)
    engine.openPosition(BTC, WAD, q, sender=bob)
    assert engine.getPosition(carol, BTC) == (-WAD, fp.s_w_mul_up(-WAD, q))
    assert engine.marketView(BTC).vaultSize == -WAD


def test_set_vault_rejects_new_vault_with_positions(system, chain, engine, deployer, alice, bob):
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.marketView(BTC).vaultSize == 0  # the vault holds nothing: the old-vault check passes
    snapshot = chain.snapshot()
    try:
        with reverts(engine.InvalidCounterparty, account=alice):
            engine.setVault(alice, sender=deployer)
    finally:
        chain.restore(snapshot)  # keep the fixture's invariant check meaningful
