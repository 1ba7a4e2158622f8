"""The oracle agent: heartbeat, deviation threshold, lag, outages and the single-venue wick."""

from __future__ import annotations

import pytest

from simulator.market import OracleAgent, OraclePush
from simulator.scenarios import OracleSettings, Wick, load_scenario
from simulator.scenarios.schema import OracleOutage


def _agent(heartbeat=1000, deviation=0.005, lag=0, outages=(), wick=None, markets=("BTC", "ETH"), initial=None):
    initial = initial or [100.0] * len(markets)
    settings = [OracleSettings(heartbeat_steps=heartbeat, deviation_threshold=deviation, lag_steps=lag)] * len(markets)
    return OracleAgent(initial, settings, markets, outages=outages, wick=wick)


def _run(agent, prices_by_step):
    """{step: [pushes]} for steps with pushes; prices_by_step[t] is the external price vector."""
    pushes = {}
    for t, prices in enumerate(prices_by_step):
        pushed = agent.step(t, prices)
        if pushed:
            pushes[t] = pushed
    return pushes


def test_heartbeat_pushes_an_unchanged_price():
    pushes = _run(_agent(heartbeat=10), [[100.0, 100.0]] * 31)
    assert sorted(pushes) == [10, 20, 30]
    assert pushes[10] == [OraclePush(0, 100.0), OraclePush(1, 100.0)]
    market, price = pushes[10][0]  # a push unpacks as (market, price)
    assert (market, price) == (0, 100.0)


def test_deviation_above_threshold_pushes_below_does_not():
    pushes = _run(_agent(deviation=0.005), [[100.0, 100.0], [100.4, 100.0], [100.6, 100.0], [100.6, 99.0]])
    assert pushes == {2: [OraclePush(0, 100.6)], 3: [OraclePush(1, 99.0)]}


def test_deviation_is_measured_from_the_last_pushed_price():
    # A slow drift of 0.2% a step is never a 0.5% jump, but it adds up past the threshold.
    prices = [[100.0 * 1.002**t, 100.0] for t in range(8)]
    agent = _agent(deviation=0.005)
    pushes = _run(agent, prices)
    assert sorted(pushes) == [3, 6]
    assert agent.last_pushed_prices[0] == pytest.approx(100 * 1.002**6)
    assert agent.last_push_steps[0] == 6


def test_lag_reports_the_price_from_lag_steps_ago():
    prices = [[100.0, 100.0]] * 5 + [[90.0, 100.0]] * 6
    pushes = _run(_agent(lag=3), prices)
    assert pushes == {8: [OraclePush(0, 90.0)]}


def test_outage_blocks_pushes_then_the_gap_is_pushed():
    outage = OracleOutage(start_step=2, end_step=6)
    prices = [[100.0, 100.0]] * 2 + [[80.0, 70.0]] * 6
    pushes = _run(_agent(outages=[outage]), prices)
    assert pushes == {6: [OraclePush(0, 80.0), OraclePush(1, 70.0)]}


def test_outage_of_some_markets_only():
    outage = OracleOutage(start_step=1, end_step=4, markets=["ETH"])
    prices = [[100.0, 100.0]] + [[90.0, 90.0]] * 4
    pushes = _run(_agent(outages=[outage]), prices)
    assert pushes == {1: [OraclePush(0, 90.0)], 4: [OraclePush(1, 90.0)]}


def test_heartbeat_does_not_fire_during_an_outage():
    pushes = _run(_agent(heartbeat=3, outages=[OracleOutage(start_step=2, end_step=8)]), [[100.0, 100.0]] * 10)
    assert sorted(pushes) == [8]


def test_wick_spikes_the_reported_price_for_its_duration():
    wick = Wick(market="ETH", step=3, move=-0.2, duration_steps=2)
    agent = _agent(wick=wick)
    pushes = _run(agent, [[100.0, 100.0]] * 8)
    assert pushes == {3: [OraclePush(1, 80.0)], 5: [OraclePush(1, 100.0)]}
    assert agent.wick_multiplier(1, 4) == pytest.approx(0.8) and agent.wick_multiplier(0, 4) == 1.0


def test_small_wick_below_the_threshold_is_not_pushed():
    pushes = _run(_agent(wick=Wick(market="BTC", step=1, move=0.003, duration_steps=3)), [[100.0, 100.0]] * 5)
    assert pushes == {}


def test_from_scenario_uses_per_market_settings():
    scenario = load_scenario("oct-2025")
    agent = OracleAgent.from_scenario(scenario)
    alt = scenario.market_index("ALT")
    btc = scenario.market_index("BTC")
    assert agent.settings[alt].deviation_threshold == 0.02
    assert agent.settings[btc].deviation_threshold == 0.005
    assert list(agent.last_pushed_prices) == [market.price for market in scenario.markets]
    assert agent.step(0, [market.price for market in scenario.markets]) == []


def test_steps_must_be_taken_in_order():
    agent = _agent()
    with pytest.raises(ValueError, match="expected step 0, got 1"):
        agent.step(1, [100.0, 100.0])
