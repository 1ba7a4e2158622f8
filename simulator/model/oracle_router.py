"""Mirror of contracts/oracle/PriceFeed.sol and contracts/oracle/OracleRouter.sol: per market a
feed, a heartbeat and a deviation circuit breaker. The router serves WAD prices the engine may
trade and liquidate on and refuses (raises) every other price.

Breaker: `last_accepted` is the reference price and only moves in `update` (or when the owner
configures the market). An answer more than `max_deviation` away from it is not served by `price`;
the next `update` trips the breaker for `cooldown` seconds, after which the current answer is
served unchecked and the next `update` makes it the new reference. `price`, `prices` and `update`
all decide through `_classify`, so they cannot disagree.

The chain around them (time, the event log) is the `ChainState` they are created with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Sequence

from simulator.model.errors import (
    BreakerTripped,
    DeviationUnconfirmed,
    InvalidFeed,
    InvalidHeartbeat,
    InvalidMaxDeviation,
    InvalidPrice,
    NoAnswer,
    NotOwner,
    NotPendingOwner,
    NotUpdater,
    StalePrice,
    UnknownMarket,
    UnsupportedDecimals,
    ZeroAddress,
)

if TYPE_CHECKING:
    from simulator.model.state import ChainState

WAD = 10**18
# Larger prices are Invalid: `last_accepted` fits in 128 bits and the deviation math cannot
# overflow, so `prices` never raises on a feed's garbage.
MAX_PRICE = 2**128 - 1


# ==============================================================================================
# PriceFeed.sol
# ==============================================================================================


@dataclass
class Round:
    answer: int
    updated_at: int


class PriceFeed:
    """An AggregatorV3 feed whose updaters submit answers; each answer is a new round."""

    def __init__(self, chain: "ChainState", decimals: int, description: str, owner: int):
        self.chain = chain
        self.decimals = decimals
        self.description = description
        self.owner = owner
        self.latest_round = 0
        self.is_updater: dict[int, bool] = {owner: True}
        self._rounds: dict[int, Round] = {}

    def set_updater(self, updater: int, allowed: bool, sender: int) -> None:
        if sender != self.owner:
            raise NotOwner(sender)
        self.is_updater[updater] = allowed

    def submit(self, answer: int, sender: int) -> int:
        """submit: a new round with `answer` at the block's time."""
        if not self.is_updater.get(sender, False):
            raise NotUpdater(sender)
        round_id = self.latest_round + 1
        self.latest_round = round_id
        self._rounds[round_id] = Round(answer=answer, updated_at=self.chain.timestamp)
        self.chain._emit("AnswerUpdated", answer, round_id, self.chain.timestamp)
        return round_id

    def latest_round_data(self) -> tuple[int, int, int, int, int]:
        """latestRoundData: (roundId, answer, startedAt, updatedAt, answeredInRound)."""
        latest = self.latest_round
        if latest == 0:
            raise NoAnswer()
        round_ = self._rounds[latest]
        return latest, round_.answer, round_.updated_at, round_.updated_at, latest


# ==============================================================================================
# OracleRouter.sol
# ==============================================================================================


class Status(IntEnum):
    """Verdict on a market's current answer; the values are the status codes of `prices`."""

    OK = 0  # usable
    UNKNOWN = 1  # no feed configured
    INVALID = 2  # answer <= 0, too large for WAD math, or the feed reverted
    STALE = 3  # older than the heartbeat
    TRIPPED = 4  # breaker cooling down
    UNCONFIRMED = 5  # deviates more than max_deviation from last_accepted; `update` would trip


@dataclass
class RouterMarket:
    """struct Market (OracleRouter.sol storage)."""

    feed: PriceFeed | None = None
    decimals: int = 0
    heartbeat: int = 0
    cooldown: int = 0
    max_deviation: int = 0  # WAD fraction; 0 disables the breaker
    tripped_until: int = 0  # 0 when not tripped
    last_accepted: int = 0  # WAD; 0 when none yet (the next positive answer is accepted as is)


@dataclass
class Reading:
    status: Status = Status.OK
    answer: int = 0  # raw feed answer (0 when the feed reverted)
    price: int = 0  # WAD; 0 when the answer is invalid
    updated_at: int = 0
    cooldown_over: bool = False  # Ok because a cooldown ended: `update` makes `price` the new reference


class OracleRouter:
    """The router's storage and functions. NatSpec lives in contracts/oracle/OracleRouter.sol."""

    def __init__(self, chain: "ChainState", owner: int):
        self.chain = chain
        self.owner = owner
        self.pending_owner = 0
        self._markets: dict[int, RouterMarket] = {}
        # Not storage: the engine reads a price many times per transaction, so `price` keeps the
        # last usable reading per market with what it depended on (the time, the feed's round and
        # the router's writes); any change of those classifies again.
        self._writes = 0
        self._usable: dict[int, tuple[int, int, int, int]] = {}

    # ADMIN

    def set_market(self, market_id: int, feed: PriceFeed | None, heartbeat: int, max_deviation: int, cooldown: int,
                   sender: int) -> None:
        """setMarket: registers or replaces the feed of `market_id` and resets its breaker."""
        self._only_owner(sender)
        if feed is None:
            raise InvalidFeed(0)
        if heartbeat == 0:
            raise InvalidHeartbeat(heartbeat)
        self._check_max_deviation(max_deviation)
        if feed.decimals > 18:
            raise UnsupportedDecimals(feed.decimals)
        self._writes += 1
        m = self._markets.setdefault(market_id, RouterMarket())
        m.feed = feed
        m.decimals = feed.decimals
        m.heartbeat = heartbeat
        m.cooldown = cooldown
        self._reset_breaker(m, max_deviation)

    def set_breaker(self, market_id: int, max_deviation: int, cooldown: int, sender: int) -> None:
        """setBreaker: enables (max_deviation > 0), retunes or disables (0) the breaker."""
        self._only_owner(sender)
        m = self._markets.get(market_id)
        if m is None or m.feed is None:
            raise UnknownMarket(market_id)
        self._check_max_deviation(max_deviation)
        self._writes += 1
        m.cooldown = cooldown
        self._reset_breaker(m, max_deviation)

    def transfer_ownership(self, new_owner: int, sender: int) -> None:
        """transferOwnership: offers the router to `new_owner`; it moves when that one accepts."""
        self._only_owner(sender)
        if new_owner == 0:
            raise ZeroAddress()
        self.pending_owner = new_owner

    def accept_ownership(self, sender: int) -> None:
        """acceptOwnership: the pending owner takes the router."""
        if sender != self.pending_owner:
            raise NotPendingOwner(sender, self.pending_owner)
        self.pending_owner = 0
        self.owner = sender

    # PRICES

    def price(self, market_id: int) -> int:
        """price: the WAD price of `market_id`, or the error of a refused one."""
        known = self._usable.get(market_id)
        if known is not None and known[:3] == self._inputs(market_id):
            return known[3]
        r = self._classify(market_id)
        if r.status != Status.OK:
            self._revert_with(market_id, r)
        self._usable[market_id] = (*self._inputs(market_id), r.price)
        return r.price

    def _inputs(self, market_id: int) -> tuple[int, int, int]:
        """What a reading of a configured market depends on besides the router's own storage."""
        return self.chain.timestamp, self._markets[market_id].feed.latest_round, self._writes

    def prices(self, market_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """prices: per market the WAD price (0 unless its status is 0) and the status code."""
        wad_prices, status = [0] * len(market_ids), [0] * len(market_ids)
        for i, market_id in enumerate(market_ids):
            r = self._classify(market_id)
            status[i] = int(r.status)
            if r.status == Status.OK:
                wad_prices[i] = r.price
        return wad_prices, status

    def update(self, market_id: int) -> bool:
        """update: records what `price` decides about the current answer; returns whether
        `price(market_id)` now succeeds."""
        r = self._classify(market_id)
        m = self._markets.get(market_id)
        self._writes += 1
        if r.status == Status.OK:
            if r.cooldown_over:
                m.tripped_until = 0
                m.last_accepted = r.price
                self.chain._emit("BreakerReset", market_id, r.price)
            elif m.last_accepted != r.price:
                m.last_accepted = r.price
            return True
        if r.status == Status.UNCONFIRMED:
            until = self.chain.timestamp + m.cooldown
            m.tripped_until = until
            self.chain._emit("CircuitBreakerTripped", market_id, m.last_accepted, r.price, until)
            # With a zero cooldown the trip is over as it starts, and `price` serves the answer.
            return m.cooldown == 0
        if r.status == Status.UNKNOWN:
            raise UnknownMarket(market_id)
        return False

    # VIEWS

    def breaker_state(self, market_id: int) -> tuple[int, int]:
        """breakerState: (last accepted WAD price, end of the current trip)."""
        m = self._markets.get(market_id, RouterMarket())
        return m.last_accepted, m.tripped_until

    # INTERNAL

    def _only_owner(self, sender: int) -> None:
        if sender != self.owner:
            raise NotOwner(sender)

    def _classify(self, market_id: int) -> Reading:
        """The one place that decides whether a market's current answer is usable."""
        r = Reading()
        m = self._markets.get(market_id)
        if m is None or m.feed is None:
            r.status = Status.UNKNOWN
            return r
        r.answer, r.updated_at = self._latest(m.feed)
        r.price = self._to_wad(r.answer, m.decimals)
        if r.price == 0:
            r.status = Status.INVALID
        elif self._age(r.updated_at) > m.heartbeat:
            r.status = Status.STALE
        elif m.tripped_until != 0:
            if self.chain.timestamp < m.tripped_until:
                r.status = Status.TRIPPED
            else:
                r.cooldown_over = True
        else:
            max_deviation = m.max_deviation
            last = m.last_accepted
            if max_deviation != 0 and last != 0 and self._deviation_up(last, r.price) > max_deviation:
                r.status = Status.UNCONFIRMED
        return r

    def _revert_with(self, market_id: int, r: Reading) -> None:
        """Raises the error of a refused reading."""
        m = self._markets.get(market_id, RouterMarket())
        if r.status == Status.UNKNOWN:
            raise UnknownMarket(market_id)
        if r.status == Status.INVALID:
            raise InvalidPrice(market_id, r.answer)
        if r.status == Status.STALE:
            raise StalePrice(market_id, r.updated_at, self.chain.timestamp, m.heartbeat)
        if r.status == Status.TRIPPED:
            raise BreakerTripped(market_id, m.tripped_until)
        raise DeviationUnconfirmed(market_id, m.last_accepted, r.price)

    @staticmethod
    def _latest(feed: PriceFeed) -> tuple[int, int]:
        """The feed's latest answer and time; (0, 0) when the feed reverts (before its first round)."""
        try:
            _, answer, _, updated_at, _ = feed.latest_round_data()
        except NoAnswer:
            return 0, 0
        return answer, updated_at

    def _reset_breaker(self, m: RouterMarket, max_deviation: int) -> int:
        """Sets the breaker parameters, ends any trip and re-anchors the reference to the feed's
        current valid answer (else 0). Returns the new reference."""
        answer, _ = self._latest(m.feed)
        last = self._to_wad(answer, m.decimals)
        m.max_deviation = max_deviation
        m.tripped_until = 0
        m.last_accepted = last
        return last

    @staticmethod
    def _check_max_deviation(max_deviation: int) -> None:
        # A 100% move down is a zero price, which is Invalid anyway; >= 1 would be meaningless.
        if max_deviation >= WAD:
            raise InvalidMaxDeviation(max_deviation)

    @staticmethod
    def _to_wad(answer: int, decimals: int) -> int:
        """answer * 10**(18 - decimals), exact. 0 when answer <= 0 or the result would exceed
        MAX_PRICE: 0 is how callers recognise an invalid answer."""
        if answer <= 0:
            return 0
        scale = 10 ** (18 - decimals)
        if answer > MAX_PRICE // scale:
            return 0
        return answer * scale

    def _age(self, updated_at: int) -> int:
        """Age of an answer; a timestamp ahead of the chain counts as age 0."""
        now = self.chain.timestamp
        return now - updated_at if now > updated_at else 0

    @staticmethod
    def _deviation_up(last: int, current: int) -> int:
        """|current - last| * WAD / last rounded up: the breaker's `> max_deviation` test is exact."""
        diff = current - last if current > last else last - current
        return (diff * WAD + last - 1) // last
