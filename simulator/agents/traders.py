"""Trader agents: a whale that opens a large position at a chosen step, and a population that adds
margin when warned, closes at random, and panics after a set loss. Random choices come from the
run's seed, so two runs of the same scenario and seed act the same."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.exchange import Action, AddMargin, Exchange, HealthScan, Trade, position_sizes
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


class TraderAgents:
    def __init__(self, scenario: Scenario, accounts: list[TraderAccount], whale_address: str | None, seed: int):
        self.scenario = scenario
        self.by_id = {a.account_id: a for a in accounts}
        self.whale_address = whale_address
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(3,))))
        self.panicked: set[int] = set()
        self._aligned_ids = -1
        self._alignment = None

    def plan(self, step: int, exchange: Exchange, scan: HealthScan | None, prices: list[float],
             api_outage: bool = False) -> list[Action]:
        """This step's trader actions; nothing reaches the exchange during an API outage."""
        actions: list[Action] = []
        if api_outage:
            return actions
        whale = self.scenario.agents.whale
        if whale is not None and step == whale.step:
            market = self.scenario.market_index(whale.market)
            size = int(whale.notional / prices[market] * WAD)
            actions.append(Trade(self.whale_address, market, -size if whale.side == "short" else size))
        traders = self.scenario.agents.traders
        if traders is None or scan is None or not scan.ids:
            return actions
        known, start_values, isolated = self._aligned(scan.ids)
        values = np.asarray(scan.values, dtype=float)
        mms = np.asarray(scan.mms, dtype=float)
        # One draw pair per account and step, whatever happens: the random stream does not depend
        # on who acted before.
        add_draws, close_draws = self.rng.random((len(scan.ids), 2)).T
        active = known & (mms > 0)
        if self.panicked:
            active &= np.fromiter((i not in self.panicked for i in scan.ids), dtype=bool, count=len(scan.ids))
        if traders.panic_threshold is not None:
            panic = active & (values < start_values * (1 - traders.panic_threshold))
        else:
            panic = np.zeros(len(scan.ids), dtype=bool)
        close = active & (panic | (close_draws < traders.close_prob))
        add = active & ~close & ~isolated & (values < WARNING_MULTIPLE * mms) & (add_draws < traders.add_margin_prob)
        closing: list[int] = []
        for index in np.flatnonzero(close):
            account_id = scan.ids[index]
            if panic[index]:
                self.panicked.add(account_id)
            if scan.values[index] >= 0:  # an account under water cannot close; keepers will
                closing.append(account_id)
        for index in np.flatnonzero(add):
            # Top up to twice the maintenance margin, in whole token units.
            amount = max(int(2 * scan.mms[index] - scan.values[index]) // 10**12, 1)
            actions.append(AddMargin(self.by_id[scan.ids[index]].address, amount))
        actions += self._closes(exchange, closing)
        return actions

    def _aligned(self, ids: list[int]):
        """Per scanned account: is it a trader of ours, its starting value, is it isolated (cached
        while the registry does not grow)."""
        if self._aligned_ids != len(ids):
            accounts = [self.by_id.get(i) for i in ids]
            self._alignment = (
                np.array([a is not None for a in accounts]),
                np.array([float(a.start_value) if a else 0.0 for a in accounts]),
                np.array([a is not None and a.isolated_market is not None for a in accounts]),
            )
            self._aligned_ids = len(ids)
        return self._alignment

    def _closes(self, exchange: Exchange, account_ids: list[int]) -> list[Action]:
        if not account_ids:
            return []
        pairs = [(a, m) for a, markets in zip(account_ids, exchange.open_markets(account_ids)) for m in markets]
        sizes = position_sizes(exchange, pairs)
        closes: list[Action] = []
        for account_id, market in pairs:
            account = self.by_id[account_id]
            if sizes[account_id, market]:
                closes.append(Trade(account.address, market, -sizes[account_id, market],
                                    isolated=account.isolated_market is not None))
        return closes
