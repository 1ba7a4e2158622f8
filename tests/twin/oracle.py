"""The oracle as the router serves it (OracleRouter's classification, breaker and heartbeat),
followed for the model's side of the Twin."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.units import ORACLE_DECIMALS, WAD
from tests.twin.reader import Reverted

ORACLE_SCALE = 10 ** (18 - ORACLE_DECIMALS)
HEARTBEAT = 10 * 86_400  # long enough that no example goes stale (test_stateful's dynamic machine does)


@dataclass
class FeedState:
    answer: int  # 8-decimal answer
    updated_at: int
    heartbeat: int = HEARTBEAT
    max_deviation: int = 0  # WAD fraction, 0 = breaker off
    cooldown: int = 0
    last_accepted: int = 0  # WAD
    tripped_until: int = 0


class OracleShadow:
    """OracleRouter._classify / update / _revertWith, per market, for the model's driver."""

    def __init__(self, feeds: list[FeedState]):
        self.feeds = feeds

    @staticmethod
    def _deviation_up(last: int, current: int) -> int:
        diff = abs(current - last)
        return (diff * WAD + last - 1) // last

    def classify(self, m: int, now: int) -> tuple[str, int, bool]:
        f = self.feeds[m]
        price = f.answer * ORACLE_SCALE if f.answer > 0 else 0
        if price == 0:
            return "Invalid", 0, False
        age = now - f.updated_at if now > f.updated_at else 0
        if age > f.heartbeat:
            return "Stale", price, False
        if f.tripped_until != 0:
            if now < f.tripped_until:
                return "Tripped", price, False
            return "Ok", price, True
        if f.max_deviation != 0 and f.last_accepted != 0 and self._deviation_up(f.last_accepted, price) > f.max_deviation:
            return "Unconfirmed", price, False
        return "Ok", price, False

    def usable_price(self, m: int, now: int) -> int:
        status, price, _ = self.classify(m, now)
        return price if status == "Ok" else 0

    def error(self, m: int, now: int) -> Reverted:
        f = self.feeds[m]
        status, price, _ = self.classify(m, now)
        if status == "Invalid":
            return Reverted("InvalidPrice", {"marketId": m, "answer": f.answer})
        if status == "Stale":
            return Reverted("StalePrice", {"marketId": m, "updatedAt": f.updated_at, "nowTs": now,
                                           "heartbeat": f.heartbeat})
        if status == "Tripped":
            return Reverted("BreakerTripped", {"marketId": m, "until": f.tripped_until})
        if status == "Unconfirmed":
            return Reverted("DeviationUnconfirmed", {"marketId": m, "lastAccepted": f.last_accepted, "answer": price})
        raise AssertionError(f"market {m} is usable at {now}: the model should not have refused it")

    def submit(self, m: int, answer: int, now: int) -> None:
        self.feeds[m].answer, self.feeds[m].updated_at = answer, now

    def update(self, m: int, now: int) -> bool:
        f = self.feeds[m]
        status, price, cooldown_over = self.classify(m, now)
        if status == "Ok":
            if cooldown_over:
                f.tripped_until = 0
            f.last_accepted = price
            return True
        if status == "Unconfirmed":
            f.tripped_until = now + f.cooldown
            return f.cooldown == 0
        return False

    def configure(self, m: int, heartbeat: int, max_deviation: int, cooldown: int) -> None:
        """router.setMarket: new heartbeat and breaker; the reference becomes the current answer."""
        f = self.feeds[m]
        f.heartbeat, f.max_deviation, f.cooldown = heartbeat, max_deviation, cooldown
        f.tripped_until = 0
        f.last_accepted = f.answer * ORACLE_SCALE if f.answer > 0 else 0
