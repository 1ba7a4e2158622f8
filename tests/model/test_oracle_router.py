"""The model's oracle router (simulator/model/oracle_router.py, what model-mode runs read prices
through) against the Twin's router shadow (tests/twin/oracle.py), which the differential suite
checks against the contract on every example: random answers, clock moves, updates and breaker
settings give the same served prices, statuses, `update` results and errors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model import Protocol
from simulator.model.errors import ModelRevert
from simulator.model.oracle_router import Status
from simulator.units import WAD
from tests.twin.oracle import ORACLE_SCALE, FeedState, OracleShadow

OWNER = 0xA11CE
STATUS = {"Ok": Status.OK, "Invalid": Status.INVALID, "Stale": Status.STALE, "Tripped": Status.TRIPPED,
          "Unconfirmed": Status.UNCONFIRMED}
MARKETS = 2
START = 1_800_000_000

answers = st.one_of(st.integers(-5, 0), st.integers(90_000 * 10**8, 110_000 * 10**8), st.integers(1, 10**12))
operations = st.lists(st.one_of(
    st.tuples(st.just("submit"), st.integers(0, MARKETS - 1), answers),
    # Exact heartbeats and cooldowns too: the boundaries (age == heartbeat is fresh).
    st.tuples(st.just("advance"), st.one_of(st.integers(0, 400), st.sampled_from([1, 59, 60, 61, 600, 601, 3600, 3601]))),
    st.tuples(st.just("update"), st.integers(0, MARKETS - 1)),
    st.tuples(st.just("breaker"), st.integers(0, MARKETS - 1), st.sampled_from([0, WAD // 20, WAD // 100]),
              st.sampled_from([0, 1, 60, 300])),
), max_size=40)


def _pair(heartbeat: int, max_deviation: int, cooldown: int):
    """A protocol with the model's router and feeds, and the shadow of the same router."""
    model = Protocol(deployer=OWNER, timestamp=START)
    from simulator.model.oracle_router import OracleRouter, PriceFeed

    model.oracle = OracleRouter(model, owner=OWNER)
    feeds = []
    for m in range(MARKETS):
        feed = PriceFeed(model, 8, f"M{m} / USD", owner=OWNER)
        feed.submit(100_000 * 10**8, sender=OWNER)
        model.oracle.set_market(m, feed, heartbeat, max_deviation, cooldown, sender=OWNER)
        model.feeds.append(feed)
        feeds.append(FeedState(answer=100_000 * 10**8, updated_at=START, heartbeat=heartbeat,
                               max_deviation=max_deviation, cooldown=cooldown, last_accepted=100_000 * 10**8 * ORACLE_SCALE))
    return model, OracleShadow(feeds)


def _agree(model: Protocol, shadow: OracleShadow) -> None:
    now = model.timestamp
    prices, status = model.oracle.prices(list(range(MARKETS)))
    for m in range(MARKETS):
        verdict, price, _ = shadow.classify(m, now)
        assert status[m] == STATUS[verdict], (m, status[m], verdict)
        assert prices[m] == (price if verdict == "Ok" else 0)
        if verdict == "Ok":
            assert model.oracle.price(m) == price
        else:
            try:
                model.oracle.price(m)
            except ModelRevert as exc:
                want = shadow.error(m, now)
                assert (type(exc).__name__, exc.inputs) == (want.name, want.args_)
            else:
                raise AssertionError(f"market {m}: the model served a price the router refuses ({verdict})")
        assert model.oracle.breaker_state(m) == (shadow.feeds[m].last_accepted, shadow.feeds[m].tripped_until)


@settings(max_examples=150, deadline=None)
@given(heartbeat=st.sampled_from([60, 600, 3600]), max_deviation=st.sampled_from([0, WAD // 20]),
       cooldown=st.sampled_from([0, 60]), ops=operations)
def test_oracle_router_model_agrees_with_the_router_shadow(heartbeat, max_deviation, cooldown, ops):
    model, shadow = _pair(heartbeat, max_deviation, cooldown)
    _agree(model, shadow)
    for op in ops:
        if op[0] == "submit":
            model.feeds[op[1]].submit(op[2], sender=OWNER)
            shadow.submit(op[1], op[2], model.timestamp)
        elif op[0] == "advance":
            model.advance(op[1], 1)
        elif op[0] == "update":
            assert model.oracle.update(op[1]) == shadow.update(op[1], model.timestamp)
        else:
            _, m, deviation, seconds = op
            model.oracle.set_breaker(m, deviation, seconds, sender=OWNER)
            f = shadow.feeds[m]
            shadow.configure(m, f.heartbeat, deviation, seconds)
        _agree(model, shadow)


def test_ownership_moves_in_two_steps_as_the_router_does():
    """transferOwnership offers, acceptOwnership takes (tests/test_oracle.py::test_router_ownership
    is the same story on the contract)."""
    import pytest

    from simulator.model.errors import NotOwner, NotPendingOwner, ZeroAddress
    from simulator.model.oracle_router import OracleRouter

    alice, bob = 0xA1, 0xB0B
    router = OracleRouter(Protocol(deployer=OWNER, timestamp=START), owner=OWNER)
    with pytest.raises(NotOwner):
        router.transfer_ownership(alice, sender=alice)
    with pytest.raises(ZeroAddress):
        router.transfer_ownership(0, sender=OWNER)
    router.transfer_ownership(alice, sender=OWNER)
    assert (router.owner, router.pending_owner) == (OWNER, alice)
    for outsider in (bob, OWNER):
        with pytest.raises(NotPendingOwner) as raised:
            router.accept_ownership(sender=outsider)
        assert raised.value.inputs == {"caller": outsider, "pendingOwner": alice}
    router.accept_ownership(sender=alice)
    assert (router.owner, router.pending_owner) == (alice, 0)
    with pytest.raises(NotOwner):
        router.transfer_ownership(bob, sender=OWNER)
