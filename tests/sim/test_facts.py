"""`perpsim facts`: the stylized facts of a run, from its outputs (simulator/facts.py)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulator.facts import FactsError, compute_facts, crash_window, fact_rows, format_value
from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides

PERPSIM = [str(Path(sys.executable).with_name("perpsim"))]


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


def test_the_crash_window_of_oct_2025_is_its_crash_leg():
    assert crash_window(load_scenario("oct-2025")) == [1800, 2400]
    assert crash_window(load_scenario("calm")) is None  # no scripted path


def test_facts_of_a_small_oct_2025_run(tmp_path):
    chosen = with_overrides(load_scenario("oct-2025"), accounts=120, mode="model")
    summary = run_scenario(chosen, tmp_path, model_exchange, max_steps=2500, render=False).summary
    assert summary["crash_window"] == [1800, 2400] and summary["step_seconds"] == 1
    facts = compute_facts(tmp_path)
    assert facts["liquidated_notional_usd"] == pytest.approx(summary["liquidated_notional_usd"], rel=1e-9)
    assert facts["adl_notional_usd"] == pytest.approx(summary["adl_notional_usd"], rel=1e-9)
    assert 0 <= facts["long_share"] <= 1 and facts["main_wave_step"] is not None
    assert len(fact_rows(facts)) == len(facts)
    assert compute_facts(tmp_path, window=(0, 100))["crash_window"] == [0, 100]


def test_facts_of_a_missing_folder_is_one_clear_line(tmp_path):
    with pytest.raises(FactsError, match="no summary.json"):
        compute_facts(tmp_path)
    done = subprocess.run(PERPSIM + ["facts", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no such run folder" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_fact_banded_in_tenths_of_a_percent_reads_to_the_hundredth():
    """0.08% against a band of 0.5-2% must not print as 0.1%; the other shares keep one decimal."""
    assert format_value("underwater_equity_to_liquidated", 0.0008) == "0.08%"
    assert format_value("long_share", 0.9222) == "92.2%" and format_value("low_BTC", -0.139) == "-13.9%"
