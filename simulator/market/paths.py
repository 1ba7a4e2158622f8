"""Fundamental price paths: the price each market would have without the simulated exchange's own
liquidations (step 1 of a simulation step).

Everything is deterministic in the seed. Each market draws from its own generator,
``Generator(PCG64(child))`` with ``child`` the market's entry of
``SeedSequence(seed, spawn_key=(PATHS_STREAM,)).spawn(n_markets)``, so a market's path depends on
the seed and its position only, and other purposes (the population) use other streams of the
same seed. Correlated GBM markets take their independent standard normals from their own
generators and mix them with the Cholesky factor of the correlation matrix.

Interpolation conventions:

- scripted legs are linear in log-price (a constant return per step, so -12% over 600 steps is
  the same percentage move each step);
- a Brownian bridge is built in log-price;
- CSV replay interpolates linearly in price between rows (the data's own convention).

Time: a step is ``step_seconds`` of chain time, and annualised volatility uses a 365-day year.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from simulator.scenarios.price_csv import PriceSeries
from simulator.units import portable_exp, portable_log, portable_matmul
from simulator.scenarios.schema import BridgePath, CsvPath, Draw, GbmPath, Jumps, Scenario, ScriptedPath

SECONDS_PER_YEAR = 365 * 24 * 3600
# Distinguishes the price paths' random stream from other uses of the same scenario seed.
PATHS_STREAM = 1
# The stream of drawn shock sizes (a leg's `to` given as a distribution); 2 and 3 are the
# population's and the traders'.
SHOCKS_STREAM = 4


def year_fraction(step_seconds: float) -> float:
    """The length of one step in years (dt of the annualised volatilities)."""
    return step_seconds / SECONDS_PER_YEAR


def market_generators(seed: int, n_markets: int) -> list[np.random.Generator]:
    """One independent generator per market, in market order."""
    children = np.random.SeedSequence(seed, spawn_key=(PATHS_STREAM,)).spawn(n_markets)
    return [np.random.Generator(np.random.PCG64(child)) for child in children]


@dataclass(frozen=True)
class FundamentalPaths:
    """Fundamental prices, ``prices[t, i]`` for step t and market i; row 0 holds initial prices."""

    markets: tuple[str, ...]
    prices: np.ndarray
    step_seconds: int = 1

    @property
    def steps(self) -> int:
        return self.prices.shape[0]

    def of(self, market: str) -> np.ndarray:
        """The path of one market by name."""
        return self.prices[:, self.markets.index(market)]


# ---------------------------------------------------------------------------------------------
# One path type each


def scripted_path(
    initial_price: float, path: ScriptedPath, steps: int, step_seconds: int, rng: Optional[np.random.Generator] = None
) -> np.ndarray:
    """Flat at `initial_price` until `start_step`, then each leg linear in log-price to its target,
    then flat. With `noise_vol`, Brownian noise pinned to zero at step 0, at `start_step` and at
    every leg's end is added, so the stated levels are reached exactly."""
    knot_steps = [0]
    knot_logs = [portable_log(initial_price)]
    if path.start_step > 0:
        knot_steps.append(path.start_step)
        knot_logs.append(portable_log(initial_price))
    for leg, end in zip(path.legs, path.knot_steps()):
        knot_steps.append(end)
        knot_logs.append(portable_log(leg.target_price(initial_price)))
    t = np.arange(steps)
    log_prices = np.interp(t, knot_steps, knot_logs)
    if path.noise_vol > 0:
        if rng is None:
            raise ValueError("a scripted path with noise_vol needs a random generator")
        walk = _brownian_walk(rng, steps, path.noise_vol * np.sqrt(year_fraction(step_seconds)))
        # Subtracting the walk's own piecewise-linear interpolation between knots turns each
        # segment into a Brownian bridge (zero at both ends); after the last knot it runs free.
        pinned = walk - np.interp(t, knot_steps, walk[knot_steps])
        log_prices = log_prices + pinned
    prices = portable_exp(log_prices)
    # exp(log(p)) can be off by an ulp: the flat start is exactly the deployed price.
    if path.noise_vol == 0:
        prices[: path.start_step + 1] = initial_price
    prices[0] = initial_price
    return prices


def _brownian_walk(rng: np.random.Generator, steps: int, step_std: float) -> np.ndarray:
    """W[0] = 0, W[t] = sum of t normal increments with standard deviation `step_std`."""
    walk = np.zeros(steps)
    walk[1:] = np.cumsum(rng.standard_normal(steps - 1) * step_std)
    return walk


def jump_log_returns(rng: np.random.Generator, jumps: Optional[Jumps], n_returns: int) -> np.ndarray:
    """Merton jumps per step: N ~ Poisson(intensity) jumps each normal(mean, std) in log-price."""
    if jumps is None or jumps.intensity == 0:
        return np.zeros(n_returns)
    counts = rng.poisson(jumps.intensity, n_returns)
    # The sum of N normal(mean, std) draws is normal(N mean, sqrt(N) std).
    return counts * jumps.mean + np.sqrt(counts) * jumps.std * rng.standard_normal(n_returns)


def gbm_paths(
    initial_prices: Sequence[float],
    specs: Sequence[GbmPath],
    steps: int,
    step_seconds: int,
    rngs: Sequence[np.random.Generator],
    cholesky: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Exact GBM (log-normal steps) for several markets at once, shape (steps, len(specs)).

    Market j's independent shocks come from ``rngs[j]``; with `cholesky` (L, L @ L.T = the
    correlation matrix) the shocks of step t are ``L @ z_t``. Each generator then draws its jumps."""
    n = len(specs)
    dt = year_fraction(step_seconds)
    shocks = np.column_stack([rng.standard_normal(steps - 1) for rng in rngs]) if n else np.zeros((steps - 1, 0))
    if cholesky is not None:
        shocks = portable_matmul(shocks, cholesky.T)
    log_prices = np.zeros((steps, n))
    for j, (spec, rng) in enumerate(zip(specs, rngs)):
        # Itô: the median path drifts at drift - vol^2 / 2, so the mean grows at `drift`.
        returns = (spec.drift - 0.5 * spec.vol**2) * dt + spec.vol * np.sqrt(dt) * shocks[:, j]
        returns = returns + jump_log_returns(rng, spec.jumps, steps - 1)
        log_prices[1:, j] = np.cumsum(returns)
    return np.asarray(initial_prices, dtype=float) * portable_exp(log_prices)


def bridge_path(
    initial_price: float, path: BridgePath, steps: int, step_seconds: int, rng: np.random.Generator
) -> np.ndarray:
    """Brownian bridge in log-price from `initial_price` at step 0 to the target at `at_step`;
    after it, a driftless random walk in log-price with the same vol."""
    target = path.target_price(initial_price)
    horizon = path.at_step
    walk = _brownian_walk(rng, steps, path.vol * np.sqrt(year_fraction(step_seconds)))
    t = np.arange(steps, dtype=float)
    log_prices = np.empty(steps)
    before = t <= horizon
    fraction = t[before] / horizon
    straight_line = portable_log(initial_price) + fraction * (portable_log(target) - portable_log(initial_price))
    log_prices[before] = straight_line + walk[before] - fraction * walk[horizon]
    after = ~before
    log_prices[after] = portable_log(target) + walk[after] - walk[horizon]
    prices = portable_exp(log_prices)
    prices[0] = initial_price  # exactly the deployed price, not exp(log(price))
    return prices


def csv_path(
    initial_price: float, series: PriceSeries, steps: int, step_seconds: int, rescale: bool = True
) -> np.ndarray:
    """The series sampled at ``t * step_seconds`` after its first row, linearly interpolated in
    price, holding the last price after the series ends; optionally rescaled so that the first
    row equals `initial_price`."""
    step_times = np.arange(steps, dtype=float) * step_seconds
    prices = np.interp(step_times, series.seconds, series.prices)
    if rescale:
        prices = prices * (initial_price / series.prices[0])
    return prices


# ---------------------------------------------------------------------------------------------
# A whole scenario


def sample_shocks(scenario: Scenario, seed: Optional[int] = None) -> tuple[Scenario, dict[str, float]]:
    """The scenario with every drawn target (a leg's or a bridge's `to` / `to_price` given as a
    distribution) replaced by a number drawn for `seed` (default: the scenario's), and the drawn
    values by key path (``price_paths.BTC.legs.1.to``).

    Each target draws from its own generator, ``SeedSequence(seed, spawn_key=(SHOCKS_STREAM,
    market index, leg index))`` (a bridge is leg 0), so a draw depends on the seed and its place
    only: adding a draw elsewhere does not change it, nor do the settings a sweep varies. A
    scenario without draws is returned unchanged and uses no random numbers."""
    seed = scenario.seed if seed is None else seed
    drawn: dict[str, float] = {}
    paths = dict(scenario.price_paths)

    def resolve(target, market_index: int, leg_index: int, at: str):
        update = {}
        for key in ("to", "to_price"):
            value = getattr(target, key)
            if isinstance(value, Draw):
                sequence = np.random.SeedSequence(seed, spawn_key=(SHOCKS_STREAM, market_index, leg_index))
                update[key] = value.sample(np.random.Generator(np.random.PCG64(sequence)))
                drawn[f"{at}.{key}"] = update[key]
        return target.model_copy(update=update) if update else target

    for name, path in scenario.price_paths.items():
        market_index = scenario.market_index(name)
        if isinstance(path, ScriptedPath) and any(leg.drawn for leg in path.legs):
            legs = [resolve(leg, market_index, i, f"price_paths.{name}.legs.{i}") for i, leg in enumerate(path.legs)]
            paths[name] = path.model_copy(update={"legs": legs})
        elif isinstance(path, BridgePath) and path.drawn:
            paths[name] = resolve(path, market_index, 0, f"price_paths.{name}")
    if not drawn:
        return scenario, drawn
    sampled = scenario.model_copy(update={"price_paths": paths})
    sampled._source = scenario.source
    return sampled, drawn


def generate_fundamental_paths(scenario: Scenario, seed: Optional[int] = None) -> FundamentalPaths:
    """The fundamental price of every market at every step, shape (steps, markets).

    `seed` defaults to the scenario's; markets without a price path keep their initial price.
    Drawn shock sizes are sampled for `seed` first (:func:`sample_shocks`)."""
    seed = scenario.seed if seed is None else seed
    scenario, _ = sample_shocks(scenario, seed)
    steps, step_seconds = scenario.steps, scenario.step_seconds
    names = scenario.market_names
    rngs = market_generators(seed, len(names))
    prices = np.empty((steps, len(names)))

    gbm_columns = [i for i, name in enumerate(names) if isinstance(scenario.price_paths.get(name), GbmPath)]
    correlated = list(scenario.correlation.markets) if scenario.correlation is not None else []
    independent = [i for i in gbm_columns if names[i] not in correlated]
    if correlated:
        columns = [names.index(name) for name in correlated]
        prices[:, columns] = gbm_paths(
            [scenario.markets[i].price for i in columns],
            [scenario.price_paths[names[i]] for i in columns],
            steps,
            step_seconds,
            [rngs[i] for i in columns],
            cholesky=scenario.correlation.cholesky(),
        )
    for i in independent:
        prices[:, [i]] = gbm_paths(
            [scenario.markets[i].price], [scenario.price_paths[names[i]]], steps, step_seconds, [rngs[i]]
        )

    for i, market in enumerate(scenario.markets):
        path = scenario.price_paths.get(market.name)
        if path is None:
            prices[:, i] = market.price
        elif isinstance(path, ScriptedPath):
            prices[:, i] = scripted_path(market.price, path, steps, step_seconds, rngs[i])
        elif isinstance(path, BridgePath):
            prices[:, i] = bridge_path(market.price, path, steps, step_seconds, rngs[i])
        elif isinstance(path, CsvPath):
            prices[:, i] = csv_path(market.price, path.series, steps, step_seconds, path.rescale)
    return FundamentalPaths(markets=names, prices=prices, step_seconds=step_seconds)
