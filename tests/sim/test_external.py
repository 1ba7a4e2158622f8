"""The external market: residual impact of liquidations and its decay, market makers withdrawing on
volatility and outages and returning after calm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.market import ExternalMarket, MakerState, generate_fundamental_paths
from simulator.scenarios import LiquiditySettings, StepWindow, load_scenario

DEPTH = 1_000_000.0


def _market(**settings) -> ExternalMarket:
    return ExternalMarket([DEPTH], [LiquiditySettings(**settings)], step_seconds=1, market_names=["BTC"])


def _run(market: ExternalMarket, fundamentals, liquidated=None):
    liquidated = liquidated or {}
    return [market.step(t, [price], [liquidated.get(t, 0.0)]) for t, price in enumerate(fundamentals)]


def test_without_liquidations_the_external_price_is_the_fundamental():
    snapshots = _run(_market(), [100.0, 101.0, 99.5])
    assert [s.prices[0] for s in snapshots] == [100.0, 101.0, 99.5]
    assert all(s.depth2pct[0] == DEPTH and s.maker_states == (MakerState.QUOTING,) for s in snapshots)


def test_liquidation_selling_pushes_the_price_down_by_coefficient_times_notional_over_depth():
    snapshots = _run(_market(impact_coefficient=0.02), [100.0] * 3, liquidated={1: DEPTH})
    assert snapshots[1].residual_impact[0] == pytest.approx(0.02)
    assert snapshots[1].prices[0] == pytest.approx(100 * math.exp(-0.02))
    assert snapshots[1].prices[0] < 100


def test_liquidated_shorts_push_the_price_up():
    snapshots = _run(_market(), [100.0] * 2, liquidated={1: -DEPTH / 2})
    assert snapshots[1].residual_impact[0] == pytest.approx(-0.01)
    assert snapshots[1].prices[0] > 100


def test_taker_flow_moves_the_price_only_where_taker_impact_is_on():
    markets = ExternalMarket([DEPTH, DEPTH], [LiquiditySettings(), LiquiditySettings(taker_impact=True)],
                             market_names=["OFF", "ON"])
    markets.step(0, [100.0, 100.0])
    # Takers sold DEPTH in both markets and longs of DEPTH / 2 were liquidated in both.
    snapshot = markets.step(1, [100.0, 100.0], [DEPTH / 2, DEPTH / 2], [DEPTH, DEPTH])
    assert snapshot.residual_impact == pytest.approx([0.01, 0.03])
    with pytest.raises(ValueError, match="one notional of each flow per market"):
        markets.step(2, [100.0, 100.0], None, [DEPTH])


def test_residual_impact_decays_with_the_half_life():
    half_life = 25
    snapshots = _run(_market(resilience_half_life_steps=half_life), [100.0] * 102, liquidated={1: DEPTH})
    residual = np.array([s.residual_impact[0] for s in snapshots])
    assert residual[1 + half_life] == pytest.approx(residual[1] / 2)
    assert residual[1 + 2 * half_life] == pytest.approx(residual[1] / 4)
    assert residual[1 + 4 * half_life] == pytest.approx(residual[1] / 16)
    assert np.all(np.diff(residual[1:]) < 0)


def test_impacts_accumulate_in_a_cascade():
    snapshots = _run(_market(resilience_half_life_steps=1e9), [100.0] * 4, liquidated={1: DEPTH, 2: DEPTH, 3: DEPTH})
    assert snapshots[3].residual_impact[0] == pytest.approx(0.06)


def _volatile_then_calm(calm_before=100, volatile=50, calm_after=200):
    """Flat, then alternating +1%/-1% moves (about 56 annualised at 1 s steps), then flat."""
    volatile_prices = [100.0 * (1.01 if k % 2 == 0 else 1.0) for k in range(volatile)]
    return [100.0] * calm_before + volatile_prices + [100.0] * calm_after


def test_market_makers_withdraw_on_volatility_and_return_after_calm():
    window, return_after = 10, 20
    market = _market(vol_threshold=5.0, vol_window_steps=window, return_after_steps=return_after, withdraw_factor=0.1)
    snapshots = _run(market, _volatile_then_calm())
    states = [s.maker_states[0] for s in snapshots]
    assert states[99] is MakerState.QUOTING
    assert states[100] is MakerState.WITHDRAWN  # the first big return already crosses the threshold
    assert snapshots[100].depth2pct[0] == pytest.approx(DEPTH * 0.1)
    # The last big return is at step 149; it leaves the window at step 149 + window, the first calm
    # step; makers are back after return_after calm steps.
    first_calm = 149 + window
    back = first_calm + return_after - 1
    assert snapshots[first_calm - 1].realised_vol[0] >= 5.0 > snapshots[first_calm].realised_vol[0]
    assert states[back - 1] is MakerState.WITHDRAWN and states[back] is MakerState.QUOTING
    assert snapshots[back].depth2pct[0] == DEPTH


def test_liquidation_impact_is_measured_against_the_depth_it_hit():
    market = _market(vol_threshold=5.0, vol_window_steps=10, return_after_steps=20, withdraw_factor=0.1,
                     resilience_half_life_steps=1e9)
    prices = _volatile_then_calm(volatile=2, calm_after=5)
    # Liquidations of step 100 (depth already withdrawn) arrive at step 101.
    snapshots = _run(market, prices, liquidated={101: DEPTH * 0.1})
    assert snapshots[101].residual_impact[0] == pytest.approx(0.02)


def test_outage_withdraws_market_makers_for_its_window():
    market = _market(outages=[StepWindow(start_step=5, end_step=8)], withdraw_factor=0.25, base_factor=2.0)
    snapshots = _run(market, [100.0] * 10)
    states = [s.maker_states[0] for s in snapshots]
    assert states == [MakerState.QUOTING] * 5 + [MakerState.OUTAGE] * 3 + [MakerState.QUOTING] * 2
    assert [s.depth_factors[0] for s in snapshots] == [2.0] * 5 + [0.5] * 3 + [2.0] * 2
    assert snapshots[6].depth2pct[0] == DEPTH * 0.5
    assert not snapshots[6].makers_present[0]


def test_steps_must_be_taken_in_order():
    market = _market()
    market.step(0, [100.0])
    with pytest.raises(ValueError, match="expected step 1, got 2"):
        market.step(2, [100.0])


def test_oct_2025_depth_collapses_in_the_crash_and_returns():
    scenario = load_scenario("oct-2025")
    paths = generate_fundamental_paths(scenario)
    market = ExternalMarket.from_scenario(scenario)
    snapshots = [market.step(t, paths.prices[t]) for t in range(scenario.steps)]
    factors = np.array([s.depth_factors for s in snapshots])
    outage = scenario.liquidity.outages[0]
    assert np.all(factors[:1700] == 1.0)  # full books before the crash
    withdrawn = scenario.liquidity.withdraw_factor
    assert withdrawn <= 0.02  # calibrated: docs/calibration.md
    assert np.all(factors[outage.start_step:outage.end_step] == pytest.approx(withdrawn))  # the own book collapses ~60x
    btc = scenario.market_index("BTC")
    assert factors[-1, btc] == 1.0  # BTC makers are back by the end of the hour
