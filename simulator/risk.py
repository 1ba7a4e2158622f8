"""Risk figures of a sweep: for each combination of settings, what its paths (runs with different
seeds) say about bad debt, the insurance fund, liquidations and ADL, with bootstrap confidence
intervals. Pure numpy; the definitions are in the README ("Risk figures").

Conventions, for a loss X observed on n paths x_1..x_n (sorted x_(1) <= ... <= x_(n)):

- VaR_a(X) = x_(ceil(a n)): the smallest observed loss with at least a fraction a of the paths
  at or below it (the empirical quantile, numpy's ``inverted_cdf``);
- ES_a(X) = the mean of the ceil((1 - a) n) largest losses (at least one): the average loss in
  the worst (1 - a) of paths;
- P(event) = the fraction of paths where it happens;
- each figure's 95% interval is the 2.5th..97.5th percentile of the figure over
  ``BOOTSTRAP_RESAMPLES`` resamples of the paths with replacement (percentile bootstrap), with a
  generator seeded from the combination's number, so the table is the same on every run.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable, Mapping, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
# Distinguishes the bootstrap's random stream from the runs' seeds.
BOOTSTRAP_STREAM = 5


def quantile_sorted(sorted_rows: np.ndarray, level: float) -> np.ndarray:
    """The empirical `level` quantile of each row of an ascending-sorted (rows, n) array."""
    n = sorted_rows.shape[1]
    return sorted_rows[:, max(1, math.ceil(level * n - 1e-9)) - 1]


def tail_mean_sorted(sorted_rows: np.ndarray, level: float) -> np.ndarray:
    """Expected shortfall: the mean of the ceil((1 - level) n) largest values of each row."""
    n = sorted_rows.shape[1]
    k = max(1, math.ceil((1 - level) * n - 1e-9))
    return sorted_rows[:, n - k:].mean(axis=1)


def _mean(rows: np.ndarray) -> np.ndarray:
    return rows.mean(axis=1)


def _probability(rows: np.ndarray) -> np.ndarray:
    return (rows > 0).mean(axis=1)


# (figure name, the run column it is computed from, statistic of ascending-sorted rows)
Figure = tuple[str, str, Callable[[np.ndarray], np.ndarray]]


def _loss_figures(prefix: str, column: str) -> list[Figure]:
    return [
        (f"{prefix}_mean", column, _mean),
        (f"{prefix}_var95", column, lambda rows: quantile_sorted(rows, 0.95)),
        (f"{prefix}_var99", column, lambda rows: quantile_sorted(rows, 0.99)),
        (f"{prefix}_es95", column, lambda rows: tail_mean_sorted(rows, 0.95)),
    ]


FIGURES: list[Figure] = [
    ("p_insolvency", "bad_debt_usd", _probability),
    ("p_adl", "adl_notional_usd", _probability),
    *_loss_figures("bad_debt", "bad_debt_usd"),
    *_loss_figures("fund_drawdown", "insurance_fund_drawdown_usd"),
    *_loss_figures("adl_notional", "adl_notional_usd"),
    ("liquidated_mean", "liquidated_notional_usd", _mean),
    ("lar95", "liquidated_notional_usd", lambda rows: quantile_sorted(rows, 0.95)),
    ("socialized_mean", "socialized_loss_usd", _mean),
    ("socialized_var95", "socialized_loss_usd", lambda rows: quantile_sorted(rows, 0.95)),
    ("adl_overshoot_mean", "adl_overshoot_usd", _mean),
    ("adl_overshoot_var95", "adl_overshoot_usd", lambda rows: quantile_sorted(rows, 0.95)),
    ("adl_closed_mean", "adl_winner_notional_closed_usd", _mean),
    ("adl_closed_var95", "adl_winner_notional_closed_usd", lambda rows: quantile_sorted(rows, 0.95)),
    ("adl_fairness_mean", "adl_fairness_max", _mean),
    ("adl_fairness_p95", "adl_fairness_max", lambda rows: quantile_sorted(rows, 0.95)),
    ("vault_pnl_mean", "vault_pnl_usd", _mean),
    ("vault_pnl_p05", "vault_pnl_usd", lambda rows: quantile_sorted(rows, 0.05)),
]
FIGURE_NAMES = tuple(name for name, _, _ in FIGURES)


def risk_figures(runs: Sequence[Mapping], combination: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Every figure of FIGURES over `runs` (the completed runs of one combination, each a mapping
    of run columns), with ``<figure>_ci_low`` / ``<figure>_ci_high``. A figure whose column is
    missing (None) on every run is None."""
    figures: dict = {}
    columns = {column for _, column, _ in FIGURES}
    samples: dict[str, np.ndarray | None] = {}
    for column in sorted(columns):
        values = np.array([float(run[column]) for run in runs if run.get(column) is not None])
        if values.size == 0:
            samples[column] = None
            continue
        # One generator per (combination, column), keyed by the column's name: the table does not
        # depend on the order figures are computed in, on how many other combinations there are,
        # nor on which other figures exist (a new figure leaves the others' intervals alone).
        sequence = np.random.SeedSequence(combination, spawn_key=(BOOTSTRAP_STREAM, zlib.crc32(column.encode())))
        rng = np.random.Generator(np.random.PCG64(sequence))
        resampled = values[rng.integers(0, values.size, size=(resamples, values.size))]
        samples[column] = (np.sort(values)[None, :], np.sort(resampled, axis=1))
    tail = (1 - CONFIDENCE) / 2
    for name, column, statistic in FIGURES:
        if samples[column] is None:
            figures.update({name: None, f"{name}_ci_low": None, f"{name}_ci_high": None})
            continue
        observed, resampled = samples[column]
        estimates = statistic(resampled)
        figures[name] = float(statistic(observed)[0])
        figures[f"{name}_ci_low"] = float(np.quantile(estimates, tail))
        figures[f"{name}_ci_high"] = float(np.quantile(estimates, 1 - tail))
    return figures


def fund_drawdown(start: float, series: Sequence[float] | np.ndarray) -> float:
    """The insurance fund's largest fall from a running peak (the start included), in USD."""
    values = np.concatenate([[start], np.asarray(series, dtype=float)])
    return float(np.max(np.maximum.accumulate(values) - values))
