"""Trader agents: a whale that opens a large position at a chosen step, and a population that adds
margin when warned, closes at random, and panics after a set loss. Random choices come from the
run's seed, so two runs of the same scenario and seed act the same."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.exchange import Action, AddMargin, Exchange, HealthScan, Trade
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
        ids = [i for i in scan.ids if i in self.by_id]
        values = {i: v for i, v in zip(scan.ids, scan.values)}
        mms = {i: m for i, m in zip(scan.ids, scan.mms)}
        draws = self.rng.random((len(ids), 2))  # drawn for every account every step: order-independent
        closing: list[int] = []
        for account_id, (add_draw, close_draw) in zip(ids, draws):
            account = self.by_id[account_id]
            value, mm = values[account_id], mms[account_id]
            if mm == 0 or account_id in self.panicked:
                continue
            panic = traders.panic_threshold is not None and value < account.start_value * (1 - traders.panic_threshold)
            if panic or close_draw < traders.close_prob:
                if panic:
                    self.panicked.add(account_id)
                if value >= 0:  # an account under water cannot close; keepers will
                    closing.append(account_id)
            elif value < WARNING_MULTIPLE * mm and add_draw < traders.add_margin_prob and account.isolated_market is None:
                # Top up to twice the maintenance margin, in whole token units.
                amount = max(int(2 * mm - value) // 10**12, 1)
                actions.append(AddMargin(account.address, amount))
        actions += self._closes(exchange, closing)
        return actions

    def _closes(self, exchange: Exchange, account_ids: list[int]) -> list[Action]:
        if not account_ids:
            return []
        closes: list[Action] = []
        for account_id, markets in zip(account_ids, exchange.open_markets(account_ids)):
            account = self.by_id[account_id]
            for market in markets:
                [size] = exchange.positions([account_id], market)
                if size:
                    closes.append(Trade(account.address, market, -size, isolated=account.isolated_market is not None))
        return closes
