"""Steps 1-4 and 6 of a simulation step chained together on whole scenarios (no chain, no keepers):
fundamental path -> external market -> oracle agent, with liquidations fed back."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from simulator.market import ExternalMarket, OracleAgent, generate_fundamental_paths
from simulator.population import population_for_scenario, size_vault_and_insurance_fund
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides, with_settings
from tests.golden import model_exchange


def _run(scenario, liquidate=None):
    """Runs the market side of a scenario; `liquidate(t, snapshot)` returns the signed notional
    liquidated at step t, fed back into step t + 1."""
    paths = generate_fundamental_paths(scenario)
    external = ExternalMarket.from_scenario(scenario)
    oracle = OracleAgent.from_scenario(scenario)
    liquidated = np.zeros(len(scenario.markets))
    snapshots, pushes = [], []
    for t in range(scenario.steps):
        snapshot = external.step(t, paths.prices[t], liquidated)
        pushes.append(oracle.step(t, snapshot.prices))
        liquidated = liquidate(t, snapshot) if liquidate else liquidated
        snapshots.append(snapshot)
    return paths, snapshots, pushes


@pytest.mark.parametrize("name", ["calm", "oct-2025", "reference"])
def test_whole_scenarios_run(name):
    source = resources.files("simulator.scenarios").joinpath("reference.yaml") if name == "reference" else name
    scenario = load_scenario(str(source))
    paths, snapshots, pushes = _run(scenario)
    prices = np.array([s.prices for s in snapshots])
    assert prices.shape == (scenario.steps, len(scenario.markets)) and np.all(np.isfinite(prices))
    np.testing.assert_allclose(prices, paths.prices)  # no liquidations: external = fundamental
    assert any(pushes)
    population = population_for_scenario(scenario)
    funds = size_vault_and_insurance_fund(population, scenario.population, scenario.markets)
    assert funds.vault_collateral_usd > 0 and funds.insurance_fund_usd >= 0


def test_liquidations_feed_back_into_the_external_price():
    # The book withdrawn to 1% of ALT's $1M (the calibration moves oct-2025's own factor).
    scenario = with_settings(load_scenario("oct-2025"), {"liquidity.withdraw_factor": 0.01})
    alt = scenario.market_index("ALT")

    def sell_alt_in_the_crash(t, snapshot):
        liquidated = np.zeros(len(scenario.markets))
        if 2000 <= t < 2010:
            liquidated[alt] = 100_000.0
        return liquidated

    paths, snapshots, _ = _run(scenario, sell_alt_in_the_crash)
    gap = 1 - snapshots[2010].prices[alt] / paths.prices[2010, alt]
    # Ten sales of $100k into the withdrawn book ($10k at 2%) add ~0.5 of residual impact: ~40% below.
    assert 0.3 < gap < 0.6
    assert snapshots[-1].residual_impact[alt] < snapshots[2010].residual_impact[alt] / 100  # the book recovered


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_run_scenario_holds_blas_to_one_thread_and_restores_it(tmp_path):
    """A run's matrix products are small and many: numpy's BLAS runs them on one thread in the run
    (simulator/runner.py), and the process's setting is back when the run returns."""
    seen = []
    with threadpool_limits(limits=2, user_api="blas"):
        result = run_scenario(with_overrides(load_scenario("calm"), accounts=50, mode="model"), tmp_path,
                              model_exchange, progress=lambda step, steps: seen.append(_blas_threads()),
                              max_steps=5, render=False)
        after = _blas_threads()
    assert result.summary["status"] == "completed"
    assert seen and all(threads == {1} for threads in seen)
    assert after == {2}
