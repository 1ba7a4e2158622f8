"""The external market: the price on other venues and the depth of the books the vault and
keepers trade into (steps 2, 3 and 6 of a simulation step).

Per market and step:

- **Residual impact.** Liquidations sell (or buy) into the external books. Liquidated notional q
  at depth d adds ``impact_coefficient * q / d`` to a residual impact r (positive = pushed down:
  liquidated longs are sold), which then decays with the book's resilience,
  ``r <- r * 0.5 ** (1 / half_life)`` per step. The external price is
  ``fundamental * exp(-r)``: for small r that is "fundamental minus r", and it never goes
  negative however large the cascade.
- **Market makers.** Depth is ``depth2pct * base_factor``, times ``withdraw_factor`` while makers
  are away: during a scheduled exchange-API outage, and from the step annualised realised
  volatility of the external price (over ``vol_window_steps``) reaches ``vol_threshold`` until it
  has stayed below for ``return_after_steps`` steps. Realised volatility is the root mean square
  of log returns (not demeaned: a steady crash is volatile even though its returns are constant).

Liquidated notional of step t feeds back into the price of step t + 1 (the cascade): pass it to
the next call of :meth:`ExternalMarket.step`. Its impact is measured against the depth of the
step it was executed in. Taker trades (the whale, closing and panicking traders) feed back the
same way in markets whose ``taker_impact`` is set."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Sequence

import numpy as np

from simulator.market.paths import year_fraction
from simulator.scenarios.schema import LiquiditySettings, Scenario
from simulator.units import portable_exp, portable_log


class MakerState(str, Enum):
    """Why the book of a market has its depth."""

    QUOTING = "quoting"  # market makers present: full depth
    WITHDRAWN = "withdrawn"  # pulled out on volatility, waiting for calm
    OUTAGE = "outage"  # scheduled exchange-API outage


@dataclass(frozen=True)
class ExternalSnapshot:
    """The external market at one step, arrays indexed by market."""

    step: int
    prices: np.ndarray  # external price, USD
    residual_impact: np.ndarray  # r: price = fundamental * exp(-r); > 0 pushed down
    depth_factors: np.ndarray  # base_factor, times withdraw_factor while makers are away
    depth2pct: np.ndarray  # USD notional that moves the price 2%: market depth2pct * factor
    realised_vol: np.ndarray  # annualised, over the market's window (nan before two prices)
    maker_states: tuple[MakerState, ...]

    @property
    def makers_present(self) -> np.ndarray:
        return np.array([state is MakerState.QUOTING for state in self.maker_states])


class ExternalMarket:
    """External prices and depth of every market, stepped once per simulation step."""

    def __init__(
        self,
        base_depth2pct: Sequence[float],
        liquidity: Sequence[LiquiditySettings],
        step_seconds: int = 1,
        market_names: Optional[Sequence[str]] = None,
    ):
        if len(base_depth2pct) != len(liquidity):
            raise ValueError("base_depth2pct and liquidity need one entry per market")
        self.market_names = tuple(market_names) if market_names is not None else tuple(
            str(i) for i in range(len(liquidity))
        )
        self.settings = tuple(liquidity)
        self.base_depth2pct = np.asarray(base_depth2pct, dtype=float)
        self.step_seconds = step_seconds
        n = len(self.settings)
        self._annualise = 1.0 / math.sqrt(year_fraction(step_seconds))
        self._decay = np.array([0.5 ** (1.0 / s.resilience_half_life_steps) for s in self.settings])
        self._impact_coefficient = np.array([s.impact_coefficient for s in self.settings])
        self._taker_impact = np.array([s.taker_impact for s in self.settings], dtype=bool)
        self._base_factor = np.array([s.base_factor for s in self.settings])
        self._withdraw_factor = np.array([s.withdraw_factor for s in self.settings])
        self._residual = np.zeros(n)
        self._previous_depth = self.base_depth2pct * self._base_factor
        # The squared log returns of each market's window (the realised volatility needs only them).
        self._squared_returns = [deque(maxlen=s.vol_window_steps) for s in self.settings]
        self._previous_log_price: Optional[np.ndarray] = None
        self._withdrawn_on_vol = np.zeros(n, dtype=bool)
        self._calm_steps = np.zeros(n, dtype=int)
        self._next_step = 0

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> "ExternalMarket":
        return cls(
            base_depth2pct=[market.depth2pct for market in scenario.markets],
            liquidity=[scenario.liquidity.for_market(market.name) for market in scenario.markets],
            step_seconds=scenario.step_seconds,
            market_names=scenario.market_names,
        )

    def step(
        self,
        t: int,
        fundamentals: Sequence[float],
        liquidated_notional_by_market: Optional[Sequence[float]] = None,
        taker_notional_by_market: Optional[Sequence[float]] = None,
    ) -> ExternalSnapshot:
        """Advances to step `t` (0, 1, 2, ... in order).

        `liquidated_notional_by_market` is the signed notional liquidated during the previous
        step, USD: positive when long positions were closed (sold into the book, pushing the
        price down), negative for shorts (bought back, pushing it up).
        `taker_notional_by_market` is the previous step's taker flow, signed the same way
        (positive when takers sold); it counts only in markets with `taker_impact`."""
        if t != self._next_step:
            raise ValueError(f"steps must be taken in order: expected step {self._next_step}, got {t}")
        self._next_step += 1
        n = len(self.settings)
        fundamentals = np.asarray(fundamentals, dtype=float)
        liquidated = self._per_market(liquidated_notional_by_market)
        taker = self._per_market(taker_notional_by_market)
        if fundamentals.shape != (n,) or liquidated.shape != (n,) or taker.shape != (n,):
            raise ValueError(f"expected one fundamental price and one notional of each flow per market ({n})")
        flow = liquidated + np.where(self._taker_impact, taker, 0.0)

        if t > 0:
            self._residual = self._residual * self._decay
        self._residual = self._residual + self._impact_coefficient * flow / self._previous_depth
        prices = fundamentals * portable_exp(-self._residual)

        realised_vol = self._update_realised_vol(portable_log(prices))
        states = []
        factors = self._base_factor.copy()
        for i, settings in enumerate(self.settings):
            state = self._maker_state(i, settings, t, realised_vol[i])
            if state is not MakerState.QUOTING:
                factors[i] *= self._withdraw_factor[i]
            states.append(state)
        depth = self.base_depth2pct * factors
        self._previous_depth = depth
        return ExternalSnapshot(
            step=t,
            prices=prices,
            residual_impact=self._residual.copy(),
            depth_factors=factors,
            depth2pct=depth,
            realised_vol=realised_vol,
            maker_states=tuple(states),
        )

    def _per_market(self, notional: Optional[Sequence[float]]) -> np.ndarray:
        return np.zeros(len(self.settings)) if notional is None else np.asarray(notional, dtype=float)

    def _update_realised_vol(self, log_prices: np.ndarray) -> np.ndarray:
        if self._previous_log_price is not None:
            for window, log_return in zip(self._squared_returns, log_prices - self._previous_log_price):
                window.append(float(log_return) * float(log_return))
        self._previous_log_price = log_prices
        return np.array(
            [
                math.sqrt(sum(window) / len(window)) * self._annualise if window else math.nan
                for window in self._squared_returns
            ]
        )

    def _maker_state(self, i: int, settings: LiquiditySettings, t: int, realised_vol: float) -> MakerState:
        # Volatility is tracked even during an outage, so makers coming back from one stay away if
        # the market is still wild.
        volatile = settings.vol_threshold is not None and not math.isnan(realised_vol) and (
            realised_vol >= settings.vol_threshold
        )
        if volatile:
            self._withdrawn_on_vol[i] = True
            self._calm_steps[i] = 0
        elif self._withdrawn_on_vol[i]:
            self._calm_steps[i] += 1
            if self._calm_steps[i] >= settings.return_after_steps:
                self._withdrawn_on_vol[i] = False
                self._calm_steps[i] = 0
        if any(window.contains(t) for window in settings.outages):
            return MakerState.OUTAGE
        return MakerState.WITHDRAWN if self._withdrawn_on_vol[i] else MakerState.QUOTING
