"""Trader agents: accounts that open a position at a chosen step (a whale, momentum traders), and a
population that adds margin when warned, closes at random, and panics after a set loss. Random
choices come from the run's seed, so two runs of the same scenario and seed act the same."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from simulator.exchange import Action, AddMargin, Exchange, HealthScan, Trade, position_sizes
from simulator.position_index import PositionIndex
from simulator.scenarios.schema import Scenario
from simulator.units import WAD

# An account is "warned" when its value is below this multiple of its maintenance margin.
WARNING_MULTIPLE = 1.25


@dataclass(frozen=True)
class TraderAccount:
    address: str
    account_id: int
    isolated_market: int | None
    start_value: int  # WAD


@dataclass(frozen=True)
class Entry:
    """A position an account funded at the opening opens at `step` (the whale, a momentum trader)."""

    address: str
    market: int
    notional_usd: float  # signed: long > 0, short < 0
    step: int


def uniform_pairs(bits: np.random.PCG64, n: int) -> np.ndarray:
    """`n` pairs of uniform draws in [0, 1): the doubles `np.random.Generator(bits).random((n, 2))`
    draws (each the high 53 bits of one 64-bit output), from the raw outputs, about three times faster."""
    return ((bits.random_raw(2 * n) >> np.uint64(11)) * 2.0**-53).reshape(n, 2)


class TraderAgents:
    def __init__(self, scenario: Scenario, accounts: list[TraderAccount], entries: list[Entry], seed: int):
        self.scenario = scenario
        self.by_id = {a.account_id: a for a in accounts}
        # By step, in the given order within a step; one that falls in an API outage waits for its end.
        self.entries = deque(sorted(entries, key=lambda entry: entry.step))
        self.bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(3,)))
        self.panicked: set[int] = set()
        self._aligned_ids: list[int] | None = None
        self._panicked_mask = np.zeros(0, dtype=bool)
        self._alignment = None

    def plan(self, step: int, exchange: Exchange, scan: HealthScan | None, prices: list[float],
             api_outage: bool = False, position_index: PositionIndex | None = None) -> list[Action]:
        """This step's trader actions; nothing reaches the exchange during an API outage. With the
        `position_index` (at the exchange's state), closing positions are read from it."""
        actions: list[Action] = []
        if api_outage:
            return actions
        while self.entries and self.entries[0].step <= step:
            entry = self.entries.popleft()
            actions.append(Trade(entry.address, entry.market, int(entry.notional_usd / prices[entry.market] * WAD)))
        traders = self.scenario.agents.traders
        if traders is None or scan is None or not scan.ids:
            return actions
        known, start_values, isolated = self._aligned(scan.ids)
        # One draw pair per account and step, whatever happens: the random stream does not depend
        # on who acted before.
        add_draws, close_draws = uniform_pairs(self.bits, len(scan.ids)).T
        values = np.asarray(scan.values, dtype=float)
        mms = np.asarray(scan.mms, dtype=float)
        active = known & (mms > 0 if scan.holds is None else scan.holds)
        active &= ~self._panicked_mask
        if traders.panic_threshold is not None:
            floor = start_values * (1 - traders.panic_threshold)
            # Where the screen cannot tell, decide on the exact value, as an exact scan would.
            scan.settle(np.flatnonzero(active & scan.near(floor)))
            values, mms = scan.values, scan.mms
            panic = active & (values < floor)
        else:
            panic = np.zeros(len(scan.ids), dtype=bool)
        close = active & (panic | (close_draws < traders.close_prob))
        may_add = active & ~close & ~isolated & (add_draws < traders.add_margin_prob)
        scan.settle(np.flatnonzero(may_add & scan.near(WARNING_MULTIPLE * mms)))
        values, mms = np.asarray(scan.values, dtype=float), np.asarray(scan.mms, dtype=float)
        add = may_add & (values < WARNING_MULTIPLE * mms)
        close_at, add_at = np.flatnonzero(close).tolist(), np.flatnonzero(add).tolist()
        exact = scan.exact([scan.ids[i] for i in close_at + add_at])
        closing: list[int] = []
        for index in close_at:
            account_id = scan.ids[index]
            if panic[index]:
                self.panicked.add(account_id)
                self._panicked_mask[index] = True
            if exact[account_id][0] >= 0:  # an account under water cannot close; keepers will
                closing.append(account_id)
        for index in add_at:
            # Top up to twice the maintenance margin, in whole token units.
            value, mm = exact[scan.ids[index]]
            amount = max(int(2 * mm - value) // 10**12, 1)
            actions.append(AddMargin(self.by_id[scan.ids[index]].address, amount))
        actions += self._closes(position_index if position_index is not None else exchange, closing)
        return actions

    def _aligned(self, ids: list[int]):
        """Per scanned account: is it a trader of ours, its starting value, is it isolated; and
        which have panicked. Cached while the scans list the same accounts (the position index
        hands out the same list until an account registers or a refused price leaves some out)."""
        if self._aligned_ids is not ids:
            accounts = [self.by_id.get(i) for i in ids]
            self._alignment = (
                np.array([a is not None for a in accounts], dtype=bool),
                np.array([float(a.start_value) if a else 0.0 for a in accounts]),
                np.array([a is not None and a.isolated_market is not None for a in accounts], dtype=bool),
            )
            self._panicked_mask = np.array([i in self.panicked for i in ids], dtype=bool)
            self._aligned_ids = ids
        return self._alignment

    def _closes(self, reads: Exchange | PositionIndex, account_ids: list[int]) -> list[Action]:
        if not account_ids:
            return []
        pairs = [(a, m) for a, markets in zip(account_ids, reads.open_markets(account_ids)) for m in markets]
        sizes = position_sizes(reads, pairs)
        closes: list[Action] = []
        for account_id, market in pairs:
            account = self.by_id[account_id]
            if sizes[account_id, market]:
                closes.append(Trade(account.address, market, -sizes[account_id, market],
                                    isolated=account.isolated_market is not None))
        return closes
