"""PriceFeed and OracleRouter: feed rounds, WAD normalisation, staleness, the deviation circuit
breaker, access control, batched status codes, and a property test of the router against a
Python model of it.

Views run at the latest block, so a view is checked at an exact time by mining an empty block at
that time (``chain.mine(timestamp=...)``); a transaction lands at an exact time after
``chain.pending_timestamp = ...``."""

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractCustomError

from tests.isolation import isolated

WAD = 10**18
ZERO = "0x" + "00" * 20

MARKET = 1
HEARTBEAT = 3_600
MAX_DEV = 10**17  # 10%
COOLDOWN = 600
P0 = 100 * 10**8  # 100 USD, 8 decimals
MAX_PRICE = 2**128 - 1  # router's largest valid WAD price

UPDATE_GAS = 200_000

OK, UNKNOWN, INVALID, STALE, TRIPPED, UNCONFIRMED = range(6)


def wad(answer, decimals=8):
    return answer * 10 ** (18 - decimals)


def head(chain):
    return chain.blocks.head.timestamp


def updated_at(feed):
    return feed.latestRoundData()[3]


def update(router, market_id, sender):
    """`router.update` with a fixed gas limit. Ape estimates gas at the latest block, but the
    transaction runs in the next one, at another timestamp, and `update`'s path (and so its gas)
    depends on the time: an exact estimate can fall short by a few gas."""
    return router.update(market_id, sender=sender, gas_limit=UPDATE_GAS)


def submit_at(chain, feed, answer, ts, sender):
    chain.pending_timestamp = ts
    return feed.submit(answer, sender=sender)


# FIXTURES


@pytest.fixture(scope="module", autouse=True)
def _session_accounts_first(deployer, alice, bob):
    """Create the session fixtures before this module's: Ape's isolation then needs no rebase."""


@pytest.fixture(scope="module")
def feed(project, deployer):
    return deployer.deploy(project.PriceFeed, 8, "BTC / USD")


@pytest.fixture(scope="module")
def router(project, deployer):
    return deployer.deploy(project.OracleRouter)


@pytest.fixture
def market(router, feed, deployer):
    """Market 1 on `feed` at 100 USD, breaker on (10%, 600 s), heartbeat 1 h."""
    feed.submit(P0, sender=deployer)
    router.setMarket(MARKET, feed, HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    return MARKET


@pytest.fixture
def make_feed(project, deployer):
    def make(decimals=8, answer=None):
        f = deployer.deploy(project.PriceFeed, decimals, "X / USD")
        if answer is not None:
            f.submit(answer, sender=deployer)
        return f

    return make


# PRICE FEED


def test_feed_metadata(feed, make_feed, deployer):
    assert feed.decimals() == 8
    assert feed.description() == "BTC / USD"
    assert feed.version() == 1
    assert feed.owner() == deployer.address
    assert feed.isUpdater(deployer)
    assert feed.latestRound() == 0
    assert make_feed(decimals=18).decimals() == 18


def test_feed_reverts_before_first_answer(feed):
    with ape.reverts(feed.NoAnswer):
        feed.latestRoundData()
    for round_id in (0, 1):
        with ape.reverts(feed.UnknownRound, roundId=round_id):
            feed.getRoundData(round_id)


def test_feed_submit_records_rounds(chain, feed, deployer):
    receipt = feed.submit(P0, sender=deployer)
    t1 = receipt.timestamp
    assert receipt.events == [feed.AnswerUpdated(current=P0, roundId=1, updatedAt=t1)]
    assert feed.latestRoundData() == (1, P0, t1, t1, 1)

    t2 = t1 + 30
    receipt = submit_at(chain, feed, 2 * P0, t2, deployer)
    assert receipt.events == [feed.AnswerUpdated(current=2 * P0, roundId=2, updatedAt=t2)]
    assert feed.latestRound() == 2
    assert feed.latestRoundData() == (2, 2 * P0, t2, t2, 2)
    assert feed.getRoundData(1) == (1, P0, t1, t1, 1)
    with ape.reverts(feed.UnknownRound, roundId=3):
        feed.getRoundData(3)


@pytest.mark.parametrize("answer", [0, -1, -(2**255)])
def test_feed_accepts_non_positive_answers(feed, deployer, answer):
    feed.submit(answer, sender=deployer)
    assert feed.latestRoundData()[1] == answer


def test_feed_submit_only_by_updater(feed, deployer, alice):
    with ape.reverts(feed.NotUpdater, caller=alice.address):
        feed.submit(P0, sender=alice)
    receipt = feed.setUpdater(alice, True, sender=deployer)
    assert receipt.events == [feed.UpdaterSet(updater=alice.address, allowed=True)]
    feed.submit(P0, sender=alice)
    assert feed.latestRoundData()[1] == P0
    feed.setUpdater(alice, False, sender=deployer)
    assert not feed.isUpdater(alice)
    with ape.reverts(feed.NotUpdater, caller=alice.address):
        feed.submit(P0, sender=alice)


def test_feed_set_updater_only_by_owner(feed, alice, bob):
    with ape.reverts(feed.NotOwner, caller=alice.address):
        feed.setUpdater(bob, True, sender=alice)


# ROUTER: OWNERSHIP AND CONFIGURATION


def test_router_ownership(router, deployer, alice, bob):
    assert router.owner() == deployer.address
    with ape.reverts(router.NotOwner, caller=alice.address):
        router.transferOwnership(alice, sender=alice)
    with ape.reverts(router.ZeroAddress):
        router.transferOwnership(ZERO, sender=deployer)
    receipt = router.transferOwnership(alice, sender=deployer)
    assert receipt.events == [router.OwnershipTransferStarted(owner=deployer.address, newOwner=alice.address)]
    assert (router.owner(), router.pendingOwner()) == (deployer.address, alice.address)
    for outsider in (bob, deployer):  # only the address offered accepts
        with ape.reverts(router.NotPendingOwner, caller=outsider.address, pendingOwner=alice.address):
            router.acceptOwnership(sender=outsider)
    receipt = router.acceptOwnership(sender=alice)
    assert receipt.events == [
        router.OwnershipTransferred(previousOwner=deployer.address, newOwner=alice.address)
    ]
    assert (router.owner(), router.pendingOwner()) == (alice.address, ZERO)
    with ape.reverts(router.NotOwner, caller=deployer.address):
        router.transferOwnership(bob, sender=deployer)
    with ape.reverts(router.NotPendingOwner, caller=alice.address, pendingOwner=ZERO):
        router.acceptOwnership(sender=alice)


def test_set_market_configures_and_emits(router, feed, deployer):
    feed.submit(P0, sender=deployer)
    receipt = router.setMarket(MARKET, feed, HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    assert receipt.events == [
        router.MarketConfigured(
            marketId=MARKET,
            feed=feed.address,
            decimals=8,
            heartbeat=HEARTBEAT,
            maxDeviation=MAX_DEV,
            cooldown=COOLDOWN,
            lastAccepted=wad(P0),
        )
    ]
    assert router.marketConfig(MARKET) == (feed.address, 8, HEARTBEAT, MAX_DEV, COOLDOWN)
    assert router.breakerState(MARKET) == (wad(P0), 0)
    assert router.marketConfig(2) == (ZERO, 0, 0, 0, 0)


def test_set_market_rejects_bad_input(router, feed, make_feed, deployer, alice):
    with ape.reverts(router.NotOwner, caller=alice.address):
        router.setMarket(MARKET, feed, HEARTBEAT, MAX_DEV, COOLDOWN, sender=alice)
    for not_a_feed in (ZERO, alice.address):
        with ape.reverts(router.InvalidFeed, feed=not_a_feed):
            router.setMarket(MARKET, not_a_feed, HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    with ape.reverts(router.InvalidHeartbeat, heartbeat=0):
        router.setMarket(MARKET, feed, 0, MAX_DEV, COOLDOWN, sender=deployer)
    with ape.reverts(router.InvalidMaxDeviation, maxDeviation=WAD):
        router.setMarket(MARKET, feed, HEARTBEAT, WAD, COOLDOWN, sender=deployer)
    with ape.reverts(router.UnsupportedDecimals, decimals=19):
        router.setMarket(MARKET, make_feed(19, 1), HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    # The edges are valid: 18 decimals, maxDeviation just below 100%.
    router.setMarket(MARKET, make_feed(18, WAD), HEARTBEAT, WAD - 1, COOLDOWN, sender=deployer)
    assert router.price(MARKET) == WAD


@pytest.mark.parametrize("current", [None, 0, -5])
def test_set_market_without_valid_answer_accepts_first_answer(router, feed, deployer, current):
    if current is not None:
        feed.submit(current, sender=deployer)
    router.setMarket(MARKET, feed, HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    assert router.breakerState(MARKET) == (0, 0)
    # A feed that reverts (no round yet) reads as answer 0.
    with ape.reverts(router.InvalidPrice, marketId=MARKET, answer=current or 0):
        router.price(MARKET)
    # No reference yet: the first positive answer is served whatever its size.
    feed.submit(P0, sender=deployer)
    assert router.price(MARKET) == wad(P0)
    update(router, MARKET, deployer)
    assert router.breakerState(MARKET) == (wad(P0), 0)


def test_set_market_replaces_feed_and_resets_breaker(router, feed, make_feed, market, deployer):
    feed.submit(2 * P0, sender=deployer)
    update(router, market, deployer)
    assert router.breakerState(market)[1] != 0
    other = make_feed(decimals=18, answer=42 * WAD)
    router.setMarket(market, other, 60, 0, 0, sender=deployer)
    assert router.marketConfig(market) == (other.address, 18, 60, 0, 0)
    assert router.breakerState(market) == (42 * WAD, 0)
    assert router.price(market) == 42 * WAD


# ROUTER: PRICE


@pytest.mark.parametrize(
    "decimals, answer, expected",
    [
        (8, 6_000_012_345_678, 60_000_123_456_780_000_000_000),  # 60,000.12345678 USD
        (8, 1, 10**10),
        (18, 123 * WAD + 1, 123 * WAD + 1),
        (0, 7, 7 * WAD),
        (6, 1_500_000, 15 * WAD // 10),
    ],
)
def test_price_normalises_to_wad(router, make_feed, deployer, decimals, answer, expected):
    router.setMarket(MARKET, make_feed(decimals, answer), HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    assert router.price(MARKET) == expected
    assert router.prices([MARKET]) == ([expected], [OK])


def test_price_unknown_market(router, market, deployer, alice):
    with ape.reverts(router.UnknownMarket, marketId=7):
        router.price(7)
    with ape.reverts(router.UnknownMarket, marketId=7):
        update(router, 7, alice)
    with ape.reverts(router.UnknownMarket, marketId=7):
        router.setBreaker(7, MAX_DEV, COOLDOWN, sender=deployer)


@pytest.mark.parametrize("answer", [0, -1, -6_000_000_000_000])
def test_price_rejects_non_positive_answer(router, feed, market, deployer, alice, answer):
    feed.submit(answer, sender=deployer)
    with ape.reverts(router.InvalidPrice, marketId=market, answer=answer):
        router.price(market)
    assert router.update.call(market) is False
    receipt = update(router, market, alice)
    assert receipt.events == []
    assert router.breakerState(market) == (wad(P0), 0)


def test_price_rejects_answer_too_large_for_wad_math(router, make_feed, deployer):
    largest = MAX_PRICE // 10**10
    router.setMarket(MARKET, make_feed(8, largest), HEARTBEAT, 0, 0, sender=deployer)
    assert router.price(MARKET) == largest * 10**10
    router.setMarket(MARKET, make_feed(8, largest + 1), HEARTBEAT, 0, 0, sender=deployer)
    with ape.reverts(router.InvalidPrice, marketId=MARKET, answer=largest + 1):
        router.price(MARKET)
    assert router.breakerState(MARKET) == (0, 0)


def test_price_staleness_boundary(chain, router, feed, market, alice):
    t = updated_at(feed)
    chain.mine(timestamp=t + HEARTBEAT)
    assert router.price(market) == wad(P0)
    chain.mine(timestamp=t + HEARTBEAT + 1)
    with ape.reverts(
        router.StalePrice, marketId=market, updatedAt=t, nowTs=t + HEARTBEAT + 1, heartbeat=HEARTBEAT
    ):
        router.price(market)
    assert router.prices([market]) == ([0], [STALE])
    receipt = update(router, market, alice)
    assert receipt.return_value is False
    assert receipt.events == []


# ROUTER: CIRCUIT BREAKER


@pytest.mark.parametrize("up", [True, False])
def test_breaker_accepts_move_of_exactly_max_deviation(router, feed, market, deployer, alice, up):
    # 10% of 100 USD is exactly 10 USD; then 10% of the new reference, exactly again.
    first = 110 * 10**8 if up else 90 * 10**8
    second = 121 * 10**8 if up else 81 * 10**8
    for answer in (first, second):
        feed.submit(answer, sender=deployer)
        assert router.price(market) == wad(answer)
        receipt = update(router, market, alice)
        assert receipt.return_value is True
        assert receipt.events == []
        assert router.breakerState(market) == (wad(answer), 0)


@pytest.mark.parametrize("answer", [110 * 10**8 + 1, 90 * 10**8 - 1])
def test_breaker_trips_then_resets_after_cooldown(chain, router, feed, market, deployer, alice, answer):
    # One unit (1e-8 USD) beyond 10%: refused before any update.
    feed.submit(answer, sender=deployer)
    with ape.reverts(router.DeviationUnconfirmed, marketId=market, lastAccepted=wad(P0), answer=wad(answer)):
        router.price(market)
    assert router.prices([market]) == ([0], [UNCONFIRMED])

    # Anyone's update trips the breaker; the reference stays.
    receipt = update(router, market, alice)
    until = receipt.timestamp + COOLDOWN
    assert receipt.return_value is False
    assert receipt.events == [
        router.CircuitBreakerTripped(marketId=market, lastAccepted=wad(P0), answer=wad(answer), until=until)
    ]
    assert router.breakerState(market) == (wad(P0), until)

    # Cooling down: refused whatever the answer (even back at the reference), and updates
    # change nothing.
    submit_at(chain, feed, P0, until - 10, deployer)
    chain.pending_timestamp = until - 5
    receipt = update(router, market, alice)
    assert receipt.return_value is False
    assert receipt.events == []
    assert router.breakerState(market) == (wad(P0), until)
    submit_at(chain, feed, 3 * P0, until - 3, deployer)
    chain.mine(timestamp=until - 1)
    with ape.reverts(router.BreakerTripped, marketId=market, until=until):
        router.price(market)
    assert router.prices([market]) == ([0], [TRIPPED])

    # Cooldown over: the current answer is served without a deviation check ...
    chain.mine(timestamp=until)
    assert router.price(market) == wad(3 * P0)
    assert router.prices([market]) == ([wad(3 * P0)], [OK])
    # ... and the next update makes it the reference.
    receipt = update(router, market, alice)
    assert receipt.return_value is True
    assert receipt.events == [router.BreakerReset(marketId=market, answer=wad(3 * P0))]
    assert router.breakerState(market) == (wad(3 * P0), 0)
    feed.submit(P0, sender=deployer)
    with ape.reverts(router.DeviationUnconfirmed, marketId=market, lastAccepted=wad(3 * P0), answer=wad(P0)):
        router.price(market)


def test_breaker_deviation_rounds_against_the_move(router, make_feed, deployer):
    # 18 decimals, reference 3: one wei above +10% is a deviation of 0.1e18 + 1/3 wei. Rounded
    # down it would pass as exactly 10%; the router rounds up and refuses it.
    f = make_feed(18, 3 * WAD)
    router.setMarket(MARKET, f, HEARTBEAT, MAX_DEV, COOLDOWN, sender=deployer)
    plus_ten_percent = 3 * WAD * 11 // 10
    f.submit(plus_ten_percent, sender=deployer)
    assert router.price(MARKET) == plus_ten_percent
    f.submit(plus_ten_percent + 1, sender=deployer)
    with ape.reverts(
        router.DeviationUnconfirmed, marketId=MARKET, lastAccepted=3 * WAD, answer=plus_ten_percent + 1
    ):
        router.price(MARKET)


def test_breaker_stale_answer_wins_over_trip(chain, router, feed, market, deployer, alice):
    # Checks run in order: a stale answer reports StalePrice even while the breaker is tripped.
    feed.submit(2 * P0, sender=deployer)
    until = update(router, market, alice).timestamp + COOLDOWN
    chain.mine(timestamp=updated_at(feed) + HEARTBEAT + 1)
    with ape.reverts(router.StalePrice, marketId=market):
        router.price(market)
    # Cooldown long over but stale: update must not reset the breaker on a stale answer.
    assert update(router, market, alice).return_value is False
    assert router.breakerState(market) == (wad(P0), until)


def test_breaker_zero_cooldown_needs_one_update(router, feed, deployer, alice):
    feed.submit(P0, sender=deployer)
    router.setMarket(MARKET, feed, HEARTBEAT, MAX_DEV, 0, sender=deployer)
    feed.submit(2 * P0, sender=deployer)
    with ape.reverts(router.DeviationUnconfirmed, marketId=MARKET, lastAccepted=wad(P0), answer=wad(2 * P0)):
        router.price(MARKET)
    receipt = update(router, MARKET, alice)
    assert receipt.return_value is True
    assert receipt.events == [
        router.CircuitBreakerTripped(
            marketId=MARKET, lastAccepted=wad(P0), answer=wad(2 * P0), until=receipt.timestamp
        )
    ]
    assert router.price(MARKET) == wad(2 * P0)
    receipt = update(router, MARKET, alice)
    assert receipt.events == [router.BreakerReset(marketId=MARKET, answer=wad(2 * P0))]


def test_breaker_disabled_accepts_large_moves(router, feed, deployer, alice):
    feed.submit(P0, sender=deployer)
    router.setMarket(MARKET, feed, HEARTBEAT, 0, COOLDOWN, sender=deployer)
    feed.submit(150 * 10**8, sender=deployer)
    assert router.price(MARKET) == wad(150 * 10**8)
    receipt = update(router, MARKET, alice)
    assert receipt.return_value is True
    assert receipt.events == []
    assert router.breakerState(MARKET) == (wad(150 * 10**8), 0)
    feed.submit(75 * 10**8, sender=deployer)
    assert router.price(MARKET) == wad(75 * 10**8)


def test_set_breaker_enables_tunes_and_disables(router, feed, market, deployer, alice):
    with ape.reverts(router.NotOwner, caller=alice.address):
        router.setBreaker(market, 0, 0, sender=alice)
    with ape.reverts(router.InvalidMaxDeviation, maxDeviation=WAD + 1):
        router.setBreaker(market, WAD + 1, 0, sender=deployer)

    # Disable: a 50% move is served.
    receipt = router.setBreaker(market, 0, 0, sender=deployer)
    assert receipt.events == [
        router.BreakerConfigured(marketId=market, maxDeviation=0, cooldown=0, lastAccepted=wad(P0))
    ]
    feed.submit(150 * 10**8, sender=deployer)
    assert router.price(market) == wad(150 * 10**8)

    # Enable at 20%: the reference re-anchors to the current answer.
    receipt = router.setBreaker(market, 2 * MAX_DEV, 60, sender=deployer)
    assert receipt.events == [
        router.BreakerConfigured(
            marketId=market, maxDeviation=2 * MAX_DEV, cooldown=60, lastAccepted=wad(150 * 10**8)
        )
    ]
    assert router.marketConfig(market) == (feed.address, 8, HEARTBEAT, 2 * MAX_DEV, 60)
    feed.submit(180 * 10**8, sender=deployer)  # exactly +20%
    assert router.price(market) == wad(180 * 10**8)
    feed.submit(180 * 10**8 + 1, sender=deployer)
    with ape.reverts(router.DeviationUnconfirmed, marketId=market):
        router.price(market)

    # Changing the breaker mid-trip ends the trip.
    update(router, market, alice)
    assert router.breakerState(market)[1] != 0
    router.setBreaker(market, MAX_DEV, COOLDOWN, sender=deployer)
    assert router.breakerState(market) == (wad(180 * 10**8 + 1), 0)
    assert router.price(market) == wad(180 * 10**8 + 1)


def test_update_moves_reference_within_band(router, feed, market, deployer, bob):
    # Small steps each within 10% walk the reference far from where it started.
    answer = P0
    for _ in range(3):
        answer = answer * 109 // 100
        feed.submit(answer, sender=deployer)
        assert update(router, market, bob).return_value is True
    assert router.breakerState(market) == (wad(answer), 0)
    assert answer > 129 * 10**8


# ROUTER: BATCHED STATUS


def test_prices_status_codes(chain, router, make_feed, deployer, alice):
    owner = deployer
    feeds = {
        10: make_feed(8, P0),  # ok
        12: make_feed(8, 0),  # invalid
        13: make_feed(8, P0),  # stale (short heartbeat)
        14: make_feed(8, P0),  # tripped
        15: make_feed(8, P0),  # deviation unconfirmed
        16: make_feed(8),  # no answer yet: invalid
    }
    for market_id, f in feeds.items():
        heartbeat = 10 if market_id == 13 else HEARTBEAT
        router.setMarket(market_id, f, heartbeat, MAX_DEV, COOLDOWN, sender=owner)
    feeds[14].submit(2 * P0, sender=owner)
    update(router, 14, alice)
    feeds[15].submit(2 * P0, sender=owner)
    chain.mine(timestamp=updated_at(feeds[13]) + 11)

    ids = [10, 11, 12, 13, 14, 15, 16]
    assert router.prices(ids) == (
        [wad(P0), 0, 0, 0, 0, 0, 0],
        [OK, UNKNOWN, INVALID, STALE, TRIPPED, UNCONFIRMED, INVALID],
    )
    assert router.prices([]) == ([], [])
    # Each status matches what `price` does.
    assert router.price(10) == wad(P0)
    errors = {11: router.UnknownMarket, 12: router.InvalidPrice, 13: router.StalePrice}
    errors |= {14: router.BreakerTripped, 15: router.DeviationUnconfirmed, 16: router.InvalidPrice}
    for market_id, error in errors.items():
        with ape.reverts(error, marketId=market_id):
            router.price(market_id)


# PROPERTY: the router agrees with a model of it, and its views with its state


def revert_data(signature, *args):
    types = signature[signature.index("(") + 1 : -1].split(",")
    return "0x" + (keccak(text=signature)[:4] + encode(types, args)).hex()


def bare_price(chain, router, market_id):
    """`router.price(market_id)` through a bare eth_call: (price, None), or (None, revert data).
    Ape traces each revert it raises (about 75 ms); the property test makes many calls."""
    calldata = keccak(text="price(uint256)")[:4] + encode(["uint256"], [market_id])
    call = {"to": router.address, "data": "0x" + calldata.hex()}
    try:
        return int.from_bytes(chain.provider.web3.eth.call(call), "big"), None
    except ContractCustomError as err:
        return None, err.data


def model_classify(answer, updated, now, last, until):
    """(status, wad price, cooldown over) as the router decides them, for 8-decimal answers."""
    if answer <= 0 or wad(answer) > MAX_PRICE:
        return INVALID, 0, False
    p = wad(answer)
    if now - updated > HEARTBEAT:
        return STALE, 0, False
    if until != 0:
        return (TRIPPED, 0, False) if now < until else (OK, p, True)
    # Exact rational comparison: |p - last| / last > MAX_DEV / WAD.
    if last != 0 and abs(p - last) * WAD > MAX_DEV * last:
        return UNCONFIRMED, 0, False
    return OK, p, False


answers = st.one_of(
    st.integers(95 * 10**8, 105 * 10**8),
    st.integers(70 * 10**8, 140 * 10**8),
    st.sampled_from([110 * 10**8, 110 * 10**8 + 1, 90 * 10**8, 90 * 10**8 - 1, 0, -(10**8)]),
)
gaps = st.one_of(
    st.integers(1, 700),
    st.sampled_from([1, COOLDOWN - 1, COOLDOWN, COOLDOWN + 1, HEARTBEAT, HEARTBEAT + 1]),
)
actions = st.sampled_from(["submit", "submit", "update", "update", "wait"])
steps = st.lists(st.tuples(actions, answers, gaps), min_size=1, max_size=10)


# Every outcome once, in order: trip, update while cooling down, cooldown over, reset, invalid, stale.
FULL_CYCLE = [
    ("submit", 130 * 10**8, 1),
    ("update", 0, 1),
    ("submit", 95 * 10**8, 300),
    ("update", 0, 1),
    ("wait", 0, COOLDOWN),
    ("update", 0, 1),
    ("submit", 0, 1),
    ("update", 0, 1),
    ("submit", 96 * 10**8, 1),
    ("wait", 0, HEARTBEAT + 1),
    ("update", 0, 1),
]


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@example(steps=FULL_CYCLE)
@given(steps=steps)
def test_property_router_matches_model(chain, router, feed, market, deployer, alice, steps):
    with isolated(chain):
        answer, updated = P0, updated_at(feed)
        last, until = wad(P0), 0
        for action, new_answer, gap in steps:
            ts = head(chain) + gap
            if action == "submit":
                submit_at(chain, feed, new_answer, ts, deployer)
                answer, updated = new_answer, ts
            elif action == "update":
                chain.pending_timestamp = ts
                receipt = update(router, market, alice)
                status, p, _ = model_classify(answer, updated, ts, last, until)
                if status == OK:
                    last, until = p, 0
                elif status == UNCONFIRMED:
                    until = ts + COOLDOWN
                after, _, _ = model_classify(answer, updated, ts, last, until)
                assert receipt.return_value is (after == OK)
                assert receipt.return_value is (router.prices([market])[1] == [OK])
                assert router.breakerState(market) == (last, until)
            else:
                chain.mine(timestamp=ts)

            now = head(chain)
            status, p, cooldown_over = model_classify(answer, updated, now, last, until)
            assert router.prices([market]) == ([p], [status])
            served, revert = bare_price(chain, router, market)
            if status == OK:
                assert served == p
                # Never more than maxDeviation from the reference, unless a cooldown just ended.
                assert cooldown_over or abs(served - last) * WAD <= MAX_DEV * last
            else:
                expected = {
                    INVALID: ("InvalidPrice(uint256,int256)", market, answer),
                    STALE: ("StalePrice(uint256,uint256,uint256,uint256)", market, updated, now, HEARTBEAT),
                    TRIPPED: ("BreakerTripped(uint256,uint256)", market, until),
                    UNCONFIRMED: ("DeviationUnconfirmed(uint256,uint256,uint256)", market, last, wad(answer)),
                }[status]
                assert served is None and revert == revert_data(*expected)
