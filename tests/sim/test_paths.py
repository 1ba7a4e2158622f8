"""Fundamental price paths: determinism, GBM statistics, correlation, jumps, bridge, CSV replay and
the scripted oct-2025 shock."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.market.paths import SECONDS_PER_YEAR, generate_fundamental_paths, year_fraction
from simulator.scenarios import load_scenario, scenario_from_dict
from tests.sim.conftest import base_scenario
from simulator.units import portable_exp, portable_log
from tests.sim.float_digest import float_digest

DAY = 86_400


def _scenario(price_paths, steps=100, step_seconds=1, correlation=None, seed=0):
    data = base_scenario()
    data.update(steps=steps, step_seconds=step_seconds, seed=seed, price_paths=price_paths)
    if correlation is not None:
        data["correlation"] = correlation
    return scenario_from_dict(data)


GBM_ALL = {
    "BTC": {"type": "gbm", "vol": 0.6, "drift": 0.1},
    "ETH": {"type": "gbm", "vol": 0.8},
    "SOL": {"type": "gbm", "vol": 1.0, "jumps": {"intensity": 0.01, "mean": -0.02, "std": 0.01}},
}
CORRELATION = {"markets": ["BTC", "ETH", "SOL"], "matrix": [[1, 0.8, 0.6], [0.8, 1, 0.5], [0.6, 0.5, 1]]}


def test_shape_and_initial_prices():
    scenario = _scenario(GBM_ALL, steps=50, correlation=CORRELATION)
    paths = generate_fundamental_paths(scenario)
    assert paths.prices.shape == (50, 3)
    assert paths.markets == ("BTC", "ETH", "SOL")
    np.testing.assert_array_equal(paths.prices[0], [100000, 4000, 200])
    assert np.all(paths.prices > 0)


def test_same_seed_same_paths_other_seed_other_paths():
    scenario = _scenario(GBM_ALL, steps=500, correlation=CORRELATION)
    first = generate_fundamental_paths(scenario).prices
    again = generate_fundamental_paths(scenario).prices
    other = generate_fundamental_paths(scenario, seed=1).prices
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[1:], other[1:])
    seeded = generate_fundamental_paths(_scenario(GBM_ALL, steps=500, correlation=CORRELATION, seed=1)).prices
    np.testing.assert_array_equal(seeded, other)


def test_a_market_path_does_not_depend_on_later_markets():
    one = base_scenario()
    one["markets"] = one["markets"][:1]
    one["price_paths"] = {"BTC": GBM_ALL["BTC"]}
    three = base_scenario()
    three["price_paths"] = {"BTC": GBM_ALL["BTC"], "ETH": GBM_ALL["ETH"]}
    alone = generate_fundamental_paths(scenario_from_dict(one)).of("BTC")
    among_others = generate_fundamental_paths(scenario_from_dict(three)).of("BTC")
    np.testing.assert_array_equal(alone, among_others)


def test_market_without_path_is_flat():
    paths = generate_fundamental_paths(_scenario({"BTC": GBM_ALL["BTC"]}))
    assert np.all(paths.of("ETH") == 4000) and np.all(paths.of("SOL") == 200)


def test_gbm_marginal_statistics_on_a_long_run():
    steps = 20_001  # daily steps over ~55 years
    spec = {"BTC": {"type": "gbm", "vol": 0.6, "drift": 0.1}}
    prices = generate_fundamental_paths(_scenario(spec, steps=steps, step_seconds=DAY)).of("BTC")
    returns = np.diff(np.log(prices))
    dt = year_fraction(DAY)
    step_std = 0.6 * np.sqrt(dt)
    assert np.std(returns) == pytest.approx(step_std, rel=0.03)
    expected_mean = (0.1 - 0.5 * 0.6**2) * dt
    standard_error = step_std / np.sqrt(len(returns))
    assert abs(np.mean(returns) - expected_mean) < 4 * standard_error


def test_correlation_is_recovered():
    steps = 20_001
    scenario = _scenario(GBM_ALL, steps=steps, step_seconds=DAY, correlation=CORRELATION)
    returns = np.diff(np.log(generate_fundamental_paths(scenario).prices), axis=0)
    # Jumps on SOL add variance that is not correlated: compare the diffusive markets exactly and
    # SOL loosely.
    measured = np.corrcoef(returns.T)
    assert measured[0, 1] == pytest.approx(0.8, abs=0.02)
    assert measured[0, 2] == pytest.approx(0.6, abs=0.05)
    assert measured[1, 2] == pytest.approx(0.5, abs=0.05)


def test_uncorrelated_gbm_markets_are_independent():
    spec = {"BTC": GBM_ALL["BTC"], "ETH": GBM_ALL["ETH"]}
    prices = generate_fundamental_paths(_scenario(spec, steps=20_001, step_seconds=DAY)).prices[:, :2]
    returns = np.diff(np.log(prices), axis=0)
    assert abs(np.corrcoef(returns.T)[0, 1]) < 0.03


def test_jumps_arrive_at_the_intensity_with_their_size():
    intensity, mean = 0.02, -0.05
    spec = {"BTC": {"type": "gbm", "vol": 0.0, "jumps": {"intensity": intensity, "mean": mean, "std": 0.0}}}
    steps = 50_001
    returns = np.diff(np.log(generate_fundamental_paths(_scenario(spec, steps=steps)).of("BTC")))
    jumps = returns[returns < -1e-12]
    assert len(jumps) / (steps - 1) == pytest.approx(intensity, rel=0.1)
    # With zero std every jump (or pair of jumps in one step) is a multiple of the mean.
    np.testing.assert_allclose(np.round(jumps / mean), jumps / mean, atol=1e-9)


def test_bridge_ends_at_its_target():
    spec = {
        "BTC": {"type": "bridge", "to": -0.3, "at_step": 600, "vol": 2.0},
        "ETH": {"type": "bridge", "to_price": 5000, "at_step": 999, "vol": 1.0},
    }
    paths = generate_fundamental_paths(_scenario(spec, steps=1000))
    btc, eth = paths.of("BTC"), paths.of("ETH")
    assert btc[0] == pytest.approx(100000)
    assert btc[600] == pytest.approx(70000, rel=1e-12)
    assert eth[999] == pytest.approx(5000, rel=1e-12)
    # After the target the path keeps moving with the same volatility.
    assert np.std(np.diff(np.log(btc[601:]))) == pytest.approx(2.0 * np.sqrt(year_fraction(1)), rel=0.15)
    # Between the ends it is random, not a straight line.
    straight = np.exp(np.linspace(np.log(100000), np.log(70000), 601))
    assert np.max(np.abs(btc[:601] / straight - 1)) > 1e-3


def test_csv_replay_interpolates_and_holds(tmp_path, write_scenario):
    (tmp_path / "series.csv").write_text("timestamp,price\n1000,100\n1010,110\n1020,90\n")
    data = base_scenario()
    data.update(steps=8, step_seconds=5)
    data["markets"][0]["price"] = 100
    data["markets"][1]["price"] = 50
    data["price_paths"] = {
        "BTC": {"type": "csv", "file": "series.csv"},
        "ETH": {"type": "csv", "file": "series.csv"},  # rescaled to start at 50
        "SOL": {"type": "csv", "file": "series.csv", "rescale": False},
    }
    paths = generate_fundamental_paths(load_scenario(write_scenario(data)))
    expected = np.array([100, 105, 110, 100, 90, 90, 90, 90], dtype=float)
    np.testing.assert_allclose(paths.of("BTC"), expected)
    np.testing.assert_allclose(paths.of("ETH"), expected / 2)
    np.testing.assert_allclose(paths.of("SOL"), expected)


def test_csv_replay_reads_iso_timestamps(tmp_path, write_scenario):
    (tmp_path / "iso.csv").write_text(
        "time,close\n2025-10-10T21:00:00Z,100\n2025-10-10T21:00:04Z,104\n2025-10-10T21:00:08+00:00,96\n"
    )
    data = base_scenario()
    data.update(steps=5, step_seconds=2)
    data["markets"][0]["price"] = 100
    data["price_paths"] = {"BTC": {"type": "csv", "file": "iso.csv"}}
    paths = generate_fundamental_paths(load_scenario(write_scenario(data)))
    np.testing.assert_allclose(paths.of("BTC"), [100, 102, 104, 100, 96])


def test_scripted_legs_are_linear_in_log_price():
    legs = [{"to": -0.19, "duration_steps": 2}, {"to_price": 90000, "duration_steps": 4}]
    spec = {"BTC": {"type": "scripted", "start_step": 10, "legs": legs}}
    btc = generate_fundamental_paths(_scenario(spec, steps=20)).of("BTC")
    assert np.all(btc[:11] == 100000)
    assert btc[11] == pytest.approx(90000)  # geometric midpoint of 100k and 81k
    assert btc[12] == pytest.approx(81000)
    assert btc[16] == pytest.approx(90000)
    np.testing.assert_allclose(btc[16:], 90000, rtol=1e-12)


def test_oct_2025_drops_reach_the_stated_levels():
    scenario = load_scenario("oct-2025")
    paths = generate_fundamental_paths(scenario)
    stated = {"BTC": -0.12, "ETH": -0.16, "SOL": -0.24, "ALT": -0.80}
    first_move = min(path.start_step for path in scenario.price_paths.values())
    for name, drop in stated.items():
        prices = paths.of(name)
        initial = scenario.market(name).price
        trough_step = int(np.argmin(prices))
        assert prices.min() / initial - 1 == pytest.approx(drop, abs=0.01), name
        # The stated level is hit exactly at the end of the crash leg (noise is pinned there).
        crash_end = scenario.price_paths[name].knot_steps()[1]
        assert prices[crash_end] == pytest.approx(initial * (1 + drop), rel=1e-12), name
        # ... within ~45 minutes of the first move.
        assert abs(trough_step - crash_end) < 120 and crash_end - first_move <= 2700, name
    assert paths.steps == scenario.steps and SECONDS_PER_YEAR == 31_536_000


@settings(max_examples=40, deadline=None)
@given(
    start_step=st.integers(0, 20),
    legs=st.lists(st.tuples(st.floats(-0.95, 3.0), st.integers(1, 30)), min_size=1, max_size=4),
    noise_vol=st.sampled_from([0.0, 0.5, 5.0]),
    seed=st.integers(0, 1000),
)
def test_scripted_paths_hit_every_leg_target(start_step, legs, noise_vol, seed):
    steps = start_step + sum(duration for _, duration in legs) + 5
    spec = {"type": "scripted", "start_step": start_step, "noise_vol": noise_vol,
            "legs": [{"to": move, "duration_steps": duration} for move, duration in legs]}
    scenario = _scenario({"SOL": spec}, steps=steps, seed=seed)
    sol = generate_fundamental_paths(scenario).of("SOL")
    assert sol[0] == 200
    for (move, _), end in zip(legs, scenario.price_paths["SOL"].knot_steps()):
        assert sol[end] == pytest.approx(200 * (1 + move), rel=1e-9)
    assert np.all(sol > 0)


def test_floats_before_the_contracts_do_not_depend_on_the_cpu():
    """Every built-in's paths, population and external market (tests/sim/float_digest.py) are the
    same bits when numpy may use only its baseline code (no AVX, AVX2, AVX-512) and OpenBLAS an older
    kernel: a run on another machine sends the same prices, depths and positions. numpy's own
    vectorised exp and log on an AVX-512 CPU differ from the C library's in the last bit."""
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    extra = [feature for feature in __cpu_dispatch__ if __cpu_features__.get(feature)]
    if not extra:
        pytest.skip("numpy runs only its baseline code on this CPU: nothing to turn off")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(extra), "OPENBLAS_CORETYPE": "Sandybridge"}
    baseline = subprocess.run([sys.executable, "-m", "tests.sim.float_digest"], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()
    assert baseline == float_digest()


def test_portable_exp_and_log_are_the_c_librarys_with_numpys_edges():
    """Element by element the C library's exp and log (Python's math), shaped like their input, and
    numpy's answers where math raises: exp overflows to inf, log is -inf at 0 and nan below."""
    values = np.array([[-745.2, -1.0, 0.0], [0.5, 709.7, 1e-300]])
    assert portable_exp(values).shape == values.shape
    assert portable_exp(values).tolist() == [[math.exp(v) for v in row] for row in values.tolist()]
    positive = np.abs(values) + 1e-300
    assert portable_log(positive).tolist() == [[math.log(v) for v in row] for row in positive.tolist()]
    with np.errstate(all="ignore"):
        edges = np.array([0.0, -1.0, np.inf, np.nan, 710.0])
        np.testing.assert_array_equal(portable_log(edges[:4]), np.log(edges[:4]))
        np.testing.assert_array_equal(portable_exp(edges[2:]), np.exp(edges[2:]))
    assert portable_exp(0.0).shape == () and float(portable_log(1.0)) == 0.0
