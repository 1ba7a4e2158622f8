"""perpsim sweep: settings by dotted key path, the grid of variants, the runs and their table."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulator.errors import PerpsimError
from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.scenarios import ScenarioError, load_scenario, with_overrides, with_settings
from simulator.sweep import SweepError, parse_vary, plan_sweep, run_sweep
from tests.sim.conftest import base_scenario

PERPSIM = [str(Path(sys.executable).with_name("perpsim"))]


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


def small_oct(accounts=60, **overrides):
    return with_overrides(load_scenario("oct-2025"), accounts=accounts, mode="model", **overrides)


# --- settings by key path ------------------------------------------------------------------------


def test_settings_follow_names_indices_wildcards_and_defaults():
    scenario = load_scenario("oct-2025")
    varied = with_settings(scenario, {
        "markets.*.policy": "SOCIALIZE",
        "markets.BTC.max_deviation": 0.1,
        "markets.1.imr": 0.05,
        "price_paths.*.noise_vol": 0.0,
        "population.insurance_fund.usd": 123.0,  # a key the file leaves at its default
    })
    assert [m.policy for m in varied.markets] == ["SOCIALIZE"] * 4
    assert [m.max_deviation for m in varied.markets][:2] == [0.1, scenario.markets[1].max_deviation]
    assert varied.markets[1].imr == 0.05 and varied.markets[0].imr == scenario.markets[0].imr
    assert all(path.noise_vol == 0.0 for path in varied.price_paths.values())
    assert varied.population.insurance_fund.usd == 123.0
    assert scenario.markets[0].policy == "ADL"  # the original is untouched


@pytest.mark.parametrize("settings, message", [
    ({"markets.*.polcy": "ADL"}, "markets[0].polcy: unknown key 'polcy' (did you mean 'policy'?)"),
    ({"markets.XBT.policy": "ADL"}, "markets has no entry named 'XBT' (did you mean 'BTC'?)"),
    ({"markets.7.imr": 0.1}, "markets has 4 entries, no [7]"),
    ({"markets.*.policy": "ADLX"}, "markets[0].policy: should be one of ADL, SOCIALIZE, NONE, got 'ADLX'"),
    ({"steps.first": 1}, "steps is a value (3600), not a mapping or list"),
    ({"steps": -5}, "steps: should be greater than 0"),
    ({"markets..imr": 0.1}, "'markets..imr' is not a dotted key path"),
])
def test_a_bad_setting_is_named(settings, message):
    with pytest.raises(ScenarioError) as error:
        with_settings(load_scenario("oct-2025"), settings, source="--vary")
    assert message in str(error.value)
    assert str(error.value).startswith("--vary")


def test_vary_options_are_read_as_yaml_values():
    assert parse_vary("markets.*.policy=ADL,SOCIALIZE") == ("markets.*.policy", ["ADL", "SOCIALIZE"])
    assert parse_vary("population.cross_fraction = 0, 0.5,1") == ("population.cross_fraction", [0, 0.5, 1])
    assert parse_vary("agents.traders.panic_threshold=null,0.9") == ("agents.traders.panic_threshold", [None, 0.9])
    for malformed in ("markets.*.policy", "=ADL", "markets.*.policy="):
        with pytest.raises(SweepError, match="expected KEY.PATH=VALUE"):
            parse_vary(malformed)


# --- the grid ----------------------------------------------------------------------------------


def test_every_combination_for_every_seed_is_planned_and_validated_first():
    scenario = small_oct(seed=5)
    variants = plan_sweep(scenario, {"markets.*.policy": ["ADL", "NONE"], "population.long_fraction": [0.5, 0.9, 1.0]},
                          seeds=2)
    assert len(variants) == 12
    assert variants[0].label == "v01-seed5" and variants[1].label == "v01-seed6" and variants[-1].label == "v06-seed6"
    assert variants[-1].settings == {"markets.*.policy": "NONE", "population.long_fraction": 1.0}
    assert variants[-1].scenario.population.long_fraction == 1.0 and variants[-1].scenario.seed == 6
    # A value refused in the last combination stops the sweep before any run.
    with pytest.raises(ScenarioError, match="long_fraction"):
        plan_sweep(scenario, {"markets.*.policy": ["ADL", "NONE"], "population.long_fraction": [0.5, 1.5]})


def test_the_scenario_sweep_section_is_the_default(write_scenario):
    data = base_scenario()
    data["sweep"] = {"vary": {"markets.*.policy": ["ADL", "NONE"], "population.accounts": [10, 20]}, "seeds": 3}
    scenario = load_scenario(write_scenario(data))
    variants = plan_sweep(scenario)
    assert len(variants) == 12
    assert {v.scenario.account_count for v in variants} == {10, 20}
    assert len(plan_sweep(scenario, seeds=1)) == 4
    assert scenario.sweep.mode == "model" and {v.scenario.mode for v in variants} == {"model"}
    assert {v.scenario.mode for v in plan_sweep(scenario, mode="chain")} == {"chain"}
    del data["sweep"]
    with pytest.raises(SweepError, match="has no sweep: section"):
        plan_sweep(load_scenario(write_scenario(data, "plain.yaml")))


def test_a_bad_sweep_section_names_the_file(write_scenario):
    data = base_scenario()
    data["sweep"] = {"vary": {"markets.*.policy": []}}
    with pytest.raises(ScenarioError, match=r"sweep.vary.markets.\*.policy: needs at least 1 entry"):
        load_scenario(write_scenario(data))
    data["sweep"] = {"vary": {"markets.DOGE.imr": [0.1]}}
    path = write_scenario(data, "doge.yaml")
    with pytest.raises(ScenarioError, match="doge.yaml, sweep.*no entry named 'DOGE'"):
        plan_sweep(load_scenario(path))


# --- running ---------------------------------------------------------------------------------------


def test_a_sweep_runs_each_variant_as_perpsim_run_would(tmp_path):
    scenario = small_oct()
    variants = plan_sweep(scenario, {"markets.*.policy": ["ADL", "NONE"]}, seeds=2)
    result = run_sweep(variants, tmp_path / "sweep", model_exchange, max_steps=2_300)
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv")))
    assert [r["run"] for r in rows] == ["v01-seed0", "v01-seed1", "v02-seed0", "v02-seed1"]
    assert [r["markets.*.policy"] for r in rows] == ["ADL", "ADL", "NONE", "NONE"]
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert (document["planned"], document["finished"], document["varied"]) == (4, 4, ["markets.*.policy"])
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    assert not result.failed
    # Each row is the summary of a plain run of the same settings and seed.
    alone = run_scenario(with_overrides(with_settings(scenario, {"markets.*.policy": "NONE"}), seed=1),
                         tmp_path / "alone", model_exchange, max_steps=2_300).summary
    row = document["runs"][3]
    assert {k: v for k, v in row.items() if k in alone and k != "wall_seconds"} == {
        k: alone[k] for k in row if k in alone and k != "wall_seconds"}
    assert row["liquidations"] > 0
    stored = json.loads((tmp_path / "sweep" / "v02-seed1" / "summary.json").read_text())
    assert stored["liquidations"] == row["liquidations"] and stored["seed"] == 1


def test_a_failed_run_is_recorded_and_the_others_still_run(tmp_path):
    calls = []

    @contextmanager
    def flaky(scenario):
        calls.append(scenario.seed)
        if len(calls) == 2:
            raise PerpsimError("the devnet went away")
        yield ModelExchange(scenario.market_specs())

    variants = plan_sweep(small_oct(accounts=20), {"markets.*.policy": ["ADL"]}, seeds=3)
    result = run_sweep(variants, tmp_path, flaky, max_steps=20)
    assert [row["status"] for row in result.rows] == ["completed", "failed", "completed"]
    assert result.rows[1]["error"] == "the devnet went away"
    assert [row["run"] for row in result.failed] == ["v01-seed1"]
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]


def test_the_command_line_sweeps_and_reports_bad_input(tmp_path):
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--vary", "markets.*.policy=ADL,NONE", "--accounts", "20",
                                     "--steps", "30", "--out", str(tmp_path / "ok")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "v02-seed0" in done.stdout and "sweep.csv" in done.stdout
    assert len(list(csv.DictReader(open(tmp_path / "ok" / "sweep.csv")))) == 2
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--vary", "markets.*.polcy=ADL", "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "unknown key 'polcy' (did you mean 'policy'?)" in done.stderr
    assert not (tmp_path / "bad").exists()
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--out", str(tmp_path / "none")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "has no sweep: section" in done.stderr


def test_a_sweep_section_can_ask_for_chain_mode(tmp_path, write_scenario):
    """One fresh anvil per run, none left behind."""
    data = base_scenario()
    data["steps"] = 5
    data["population"] = {"accounts": 5}
    data["sweep"] = {"vary": {"markets.*.policy": ["ADL", "NONE"]}, "mode": "chain"}
    anvils_before = set(_anvil_pids())
    done = subprocess.run(PERPSIM + ["sweep", str(write_scenario(data)), "--json", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["mode"], document["finished"]) == ("chain", 2)
    assert [row["status"] for row in document["runs"]] == ["completed", "completed"]
    assert json.loads((tmp_path / "out" / "v02-seed0" / "summary.json").read_text())["mode"] == "chain"
    assert set(_anvil_pids()) <= anvils_before


def _anvil_pids() -> list[str]:
    return subprocess.run(["pgrep", "-x", "anvil"], capture_output=True, text=True).stdout.split()


def test_run_takes_settings_by_key_path(tmp_path):
    done = subprocess.run(PERPSIM + ["run", "calm", "--mode", "model", "--accounts", "20", "--steps", "5", "--json",
                                     "--set", "population.reference_accounts=10", "--set", "markets.BTC.imr=0.2",
                                     "--out", str(tmp_path / "ok")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    done = subprocess.run(PERPSIM + ["run", "calm", "--mode", "model", "--set", "population.refrence_accounts=10",
                                     "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and not (tmp_path / "bad").exists()
    assert "--set" in done.stderr and "did you mean 'reference_accounts'?" in done.stderr
    done = subprocess.run(PERPSIM + ["run", "calm", "--set", "population"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "expected KEY.PATH=VALUE" in done.stderr
