"""The oracle agent: decides what the on-chain price feeds receive (step 4 of a simulation step).

Chainlink-style policy per market:

- it observes the external price ``lag_steps`` ago (the price at step 0 while fewer steps exist);
- during a single-venue wick the reported price is the observed one times ``1 + move``;
- it pushes when ``heartbeat_steps`` have passed since its last push, or when the reported price
  deviates from the last pushed one by more than ``deviation_threshold`` (relative);
- during an outage window it pushes nothing; afterwards the first step pushes whatever the rules
  say (typically a large gap).

The agent starts as if it had pushed each market's initial price at step 0 (deployment submits
it), so the first push comes from a deviation or the first heartbeat."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Optional, Sequence

import numpy as np

from simulator.scenarios.schema import OracleOutage, OracleSettings, Scenario, Wick


class OraclePush(NamedTuple):
    """One answer to submit: market id (index in the scenario) and USD price."""

    market_id: int
    price: float


class OracleAgent:
    def __init__(
        self,
        initial_prices: Sequence[float],
        settings: Sequence[OracleSettings],
        market_names: Sequence[str],
        outages: Sequence[OracleOutage] = (),
        wick: Optional[Wick] = None,
    ):
        if not len(initial_prices) == len(settings) == len(market_names):
            raise ValueError("initial_prices, settings and market_names need one entry per market")
        self.market_names = tuple(market_names)
        self.settings = tuple(settings)
        self.outages = tuple(outages)
        self.wick = wick
        self._wick_market = self.market_names.index(wick.market) if wick is not None else None
        self.last_pushed_prices = np.asarray(initial_prices, dtype=float).copy()
        self.last_push_steps = np.zeros(len(self.settings), dtype=int)
        self._max_lag = max((s.lag_steps for s in self.settings), default=0)
        # The last max_lag + 1 external price vectors, newest last.
        self._history: deque[np.ndarray] = deque(maxlen=self._max_lag + 1)
        self._next_step = 0

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> "OracleAgent":
        return cls(
            initial_prices=[market.price for market in scenario.markets],
            settings=[scenario.oracle.for_market(market.name) for market in scenario.markets],
            market_names=scenario.market_names,
            outages=scenario.oracle.outages,
            wick=scenario.oracle.wick,
        )

    def in_outage(self, market_id: int, t: int) -> bool:
        name = self.market_names[market_id]
        return any(outage.covers(name, t) for outage in self.outages)

    def wick_multiplier(self, market_id: int, t: int) -> float:
        """1 + move while the wick is on this market, else 1."""
        wick = self.wick
        if wick is not None and market_id == self._wick_market and wick.step <= t < wick.end_step:
            return 1.0 + wick.move
        return 1.0

    def observed_price(self, market_id: int, t: int) -> float:
        """The external price the agent sees at step t: the one `lag_steps` ago."""
        lag = min(self.settings[market_id].lag_steps, len(self._history) - 1)
        return float(self._history[-1 - lag][market_id])

    def step(self, t: int, external_prices: Sequence[float]) -> list[OraclePush]:
        """Records step `t`'s external prices (steps in order from 0) and returns the pushes to
        submit at this step, in market order."""
        if t != self._next_step:
            raise ValueError(f"steps must be taken in order: expected step {self._next_step}, got {t}")
        self._next_step += 1
        prices = np.asarray(external_prices, dtype=float)
        if prices.shape != (len(self.settings),):
            raise ValueError(f"expected one external price per market ({len(self.settings)})")
        self._history.append(prices.copy())

        pushes = []
        for market_id, settings in enumerate(self.settings):
            if self.in_outage(market_id, t):
                continue
            reported = self.observed_price(market_id, t) * self.wick_multiplier(market_id, t)
            last = self.last_pushed_prices[market_id]
            heartbeat_due = t - self.last_push_steps[market_id] >= settings.heartbeat_steps
            deviation = abs(reported - last) / last
            if heartbeat_due or deviation > settings.deviation_threshold:
                pushes.append(OraclePush(market_id, reported))
                self.last_pushed_prices[market_id] = reported
                self.last_push_steps[market_id] = t
        return pushes
