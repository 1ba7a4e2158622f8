"""tests/reverts.py's `reverts` on the engine: it fails on a wrong or missing argument, a wrong
error, or no revert, for errors Ape decodes, nested errors (the router's, through the engine) in a
transaction and in a view."""

import pytest

from tests.conftest import BTC, WAD
from tests.engine.helpers import HEARTBEAT, TOKEN_SCALE, cross_id
from tests.reverts import reverts


def test_reverts_helper_is_strict(system, chain, engine, alice):
    """`reverts` fails on a wrong or missing argument, a wrong error, or no revert, on each path:
    errors Ape decodes, nested errors in a transaction, and errors of a view (eth_call)."""
    aid = cross_id(alice)
    with reverts(engine.InsufficientCollateral, accountId=aid, collateral=0, amount=5 * TOKEN_SCALE):
        engine.withdraw(5, sender=alice)
    for wrong in (
        dict(accountId=aid, collateral=0, amount=5),
        dict(accountId=aid, collateral=0),
        dict(accountId=aid, collateral=0, amount=5 * TOKEN_SCALE, extra=1),
    ):
        with pytest.raises(AssertionError):
            with reverts(engine.InsufficientCollateral, **wrong):
                engine.withdraw(5, sender=alice)
    with pytest.raises(AssertionError):
        with reverts(engine.ZeroAmount):
            engine.withdraw(5, sender=alice)
    with pytest.raises(AssertionError):
        with reverts(engine.ZeroAmount):
            engine.quote(BTC, WAD)  # does not revert
    with pytest.raises(AssertionError):
        with reverts(engine.UnknownMarket, marketId=0):
            engine.quote(BTC, 0)  # reverts ZeroAmount (a view: anvil's text form)
    with reverts(engine.ZeroAmount):
        engine.quote(BTC, 0)

    # Reverted transactions may be mined (fixed gas limit) or not (estimated): pin each one's time.
    updated_at = system.feeds[BTC].latestRoundData()[3]
    now = updated_at + HEARTBEAT + 1

    def stale(t):
        return dict(marketId=BTC, updatedAt=updated_at, nowTs=t, heartbeat=HEARTBEAT)

    chain.pending_timestamp = now
    with pytest.raises(AssertionError):
        with reverts(system.router.StalePrice, **stale(now + 1)):
            engine.accrueFunding(BTC, sender=alice)  # nested error in a transaction
    chain.pending_timestamp = now + 1
    with pytest.raises(AssertionError):
        with reverts(system.router.InvalidPrice, marketId=BTC, answer=0):
            engine.accrueFunding(BTC, sender=alice)
    chain.pending_timestamp = now + 2
    with reverts(system.router.StalePrice, **stale(now + 2)):
        engine.accrueFunding(BTC, sender=alice)
    chain.mine(timestamp=now + 3)
    with pytest.raises(AssertionError):
        with reverts(system.router.StalePrice, **stale(now + 2)):
            engine.quote(BTC, WAD)  # nested error in a view
    with reverts(system.router.StalePrice, **stale(now + 3)):
        engine.quote(BTC, WAD)
