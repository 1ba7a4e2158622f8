"""perpsim sweep: settings by dotted key path, the grid of variants, the runs and their table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from simulator.errors import PerpsimError
from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.market.paths import generate_fundamental_paths, sample_shocks
from simulator.risk import fund_drawdown, risk_figures
from simulator.scenarios import ScenarioError, load_scenario, scenario_from_dict, with_overrides, with_settings
from simulator.sweep import LABEL_PART, TIMING_COLUMNS, SweepError, parse_vary, plan_sweep, run_labels, run_sweep
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
    # Run folders are named by their settings, not by their number.
    assert variants[0].label == "policy=ADL_long_fraction=0.5-seed5" and variants[1].label.endswith("0.5-seed6")
    assert variants[-1].label == "policy=NONE_long_fraction=1-seed6"
    assert variants[-1].settings == {"markets.*.policy": "NONE", "population.long_fraction": 1.0}
    assert variants[-1].scenario.population.long_fraction == 1.0 and variants[-1].scenario.seed == 6
    # A value refused in the last combination stops the sweep before any run.
    with pytest.raises(ScenarioError, match="long_fraction"):
        plan_sweep(scenario, {"markets.*.policy": ["ADL", "NONE"], "population.long_fraction": [0.5, 1.5]})


def test_run_labels_are_safe_unique_folder_names():
    # a shell's and a file system's troublemakers become _, thousands lose their commas
    assert run_labels([{"insurance_fund.usd": 1_000_000.0}, {"insurance_fund.usd": "a/b c"}]) == [
        "insurance_fund.usd=1000000", "insurance_fund.usd=a_b_c"]
    # two paths ending in the same key keep enough of the path to tell them apart
    assert run_labels([{"markets.BTC.mmr": 0.01, "markets.ETH.mmr": 0.02}]) == ["BTC.mmr=0.01_ETH.mmr=0.02"]
    # values that come out alike: every folder takes its combination's number in front
    assert run_labels([{"x": "a b"}, {"x": "a_b"}]) == ["v01-x=a_b", "v02-x=a_b"]
    # a long value is cut
    assert len(run_labels([{"x": "y" * 500}])[0]) == LABEL_PART


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
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "runs.csv")))
    assert [r["run"] for r in rows] == ["policy=ADL-seed0", "policy=ADL-seed1", "policy=NONE-seed0", "policy=NONE-seed1"]
    assert [r["markets.*.policy"] for r in rows] == ["ADL", "ADL", "NONE", "NONE"]
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert (document["planned"], document["finished"], document["varied"]) == (4, 4, ["markets.*.policy"])
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    risk = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv")))
    assert [(r["combination"], r["markets.*.policy"], r["paths"], r["completed"]) for r in risk] == [
        ("v01", "ADL", "2", "2"), ("v02", "NONE", "2", "2")]
    assert document["combinations"][1]["liquidated_mean"] == pytest.approx(
        sum(row["liquidated_notional_usd"] for row in document["runs"][2:]) / 2)
    assert not result.failed
    # Each row is the summary of a plain run of the same settings and seed.
    alone = run_scenario(with_overrides(with_settings(scenario, {"markets.*.policy": "NONE"}), seed=1),
                         tmp_path / "alone", model_exchange, max_steps=2_300).summary
    row = document["runs"][3]
    assert {k: v for k, v in row.items() if k in alone and k != "wall_seconds"} == {
        k: alone[k] for k in row if k in alone and k != "wall_seconds"}
    assert row["liquidations"] > 0
    stored = json.loads((tmp_path / "sweep" / "policy=NONE-seed1" / "summary.json").read_text())
    assert stored["liquidations"] == row["liquidations"] and stored["seed"] == 1


def test_a_failed_run_is_recorded_and_the_others_still_run(tmp_path):
    calls = []

    @contextmanager
    def flaky(scenario):
        calls.append(scenario.seed)
        if len(calls) == 2:
            raise PerpsimError("the devnet went away")
        if len(calls) == 4:
            1 / 0
        yield ModelExchange(scenario.market_specs())

    variants = plan_sweep(small_oct(accounts=20), {"markets.*.policy": ["ADL"]}, seeds=4)
    result = run_sweep(variants, tmp_path, flaky, max_steps=20)
    assert [row["status"] for row in result.rows] == ["completed", "failed", "completed", "failed"]
    assert result.rows[1]["error"] == "the devnet went away"
    assert result.rows[3]["error"] == "ZeroDivisionError: division by zero"
    assert [row["run"] for row in result.failed] == ["policy=ADL-seed1", "policy=ADL-seed3"]
    assert result.not_completed == 2
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert [r["status"] for r in rows] == ["completed", "failed", "completed", "failed"]
    # The traceback of the run that raised is kept, with the run's own files.
    recorded = json.loads((tmp_path / "policy=ADL-seed3" / "run.json").read_text())
    assert recorded["status"] == "failed" and "1 / 0" in recorded["traceback"]
    assert json.loads((tmp_path / "policy=ADL-seed3" / "summary.json").read_text())["status"] == "failed"
    # Resuming runs the failed runs only.
    rerun = []

    @contextmanager
    def counting(scenario):
        rerun.append(scenario.seed)
        yield ModelExchange(scenario.market_specs())

    result = run_sweep(variants, tmp_path, counting, max_steps=20)
    assert rerun == [1, 3] and result.resumed == 2 and result.not_completed == 0
    assert [row["status"] for row in result.rows] == ["completed"] * 4


def test_the_command_line_sweeps_and_reports_bad_input(tmp_path):
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--vary", "markets.*.policy=ADL,NONE", "--accounts", "20",
                                     "--steps", "30", "--workers", "1", "--out", str(tmp_path / "ok")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "policy=NONE-seed0" in done.stdout and "sweep.csv" in done.stdout and "P(insolvency)" in done.stdout
    assert len(list(csv.DictReader(open(tmp_path / "ok" / "runs.csv")))) == 2
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--vary", "markets.*.polcy=ADL", "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "unknown key 'polcy' (did you mean 'policy'?)" in done.stderr
    assert not (tmp_path / "bad").exists()
    done = subprocess.run(PERPSIM + ["sweep", "calm", "--out", str(tmp_path / "none")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "has no sweep: section" in done.stderr


def test_a_sweep_section_can_ask_for_chain_mode(tmp_path, write_scenario):
    """One fresh devnet per run, inside a Dask worker (a LocalCluster of 2), none left behind. One
    tiny run: a worker's first chain run imports Ape and takes several seconds."""
    data = base_scenario()
    data["steps"] = 5
    data["population"] = {"accounts": 5}
    data["sweep"] = {"vary": {"markets.*.policy": ["NONE"]}, "mode": "chain"}
    # The sweep's processes (Dask workers, their anvils) inherit a marker in their environment:
    # only those are counted, not anvils of other tests, parallel test workers or other checkouts.
    marker = f"PERPSIM_TEST_SWEEP={uuid.uuid4().hex}"
    sweep = subprocess.Popen(PERPSIM + ["sweep", str(write_scenario(data)), "--json", "--workers", "2",
                                        "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, marker.split("=")[0]: marker.split("=")[1]})
    anvils_seen: set[int] = set()
    with ThreadPoolExecutor(2) as pool:  # drain the pipes while watching for the sweep's anvils
        out, err = pool.submit(sweep.stdout.read), pool.submit(sweep.stderr.read)
        deadline = time.monotonic() + 600
        while sweep.poll() is None and time.monotonic() < deadline:
            anvils_seen.update(pid for pid, name in _processes_marked(marker) if name == "anvil")
            time.sleep(0.05)
        if sweep.poll() is None:
            sweep.kill()
        sweep.wait()
        stdout, stderr = out.result(), err.result()
    assert sweep.returncode == 0, stderr
    document = json.loads(stdout)
    assert (document["mode"], document["finished"]) == ("chain", 1)
    assert [row["status"] for row in document["runs"]] == ["completed"]
    assert json.loads((tmp_path / "out" / "policy=NONE-seed0" / "summary.json").read_text())["mode"] == "chain"
    assert anvils_seen, "the sweep's devnet was never seen: the check below would prove nothing"
    left = [pid for pid, name in _processes_marked(marker) if name == "anvil"]
    assert not left, f"the sweep left anvil processes behind: {left}"


def _processes_marked(marker: str) -> list[tuple[int, str]]:
    """(pid, name) of the live processes whose environment holds `marker` (NAME=value)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            name = (entry / "comm").read_text().strip()
        except OSError:  # gone, or not ours to read
            continue
        if marker.encode() in environ:
            found.append((int(entry.name), name))
    return found


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


# --- Monte Carlo: parallel, resumable, drawn shocks, risk figures ------------------------------------


def adl_paths(accounts=30, **overrides):
    """adl-policies with its BTC crash drawn per path: a family of crashes, not one."""
    data = yaml.safe_load(resources.files("simulator.scenarios").joinpath("builtin/adl-policies.yaml").read_text())
    data["price_paths"]["BTC"]["legs"][0]["to"] = {"dist": "uniform", "low": -0.30, "high": -0.10}
    return with_overrides(scenario_from_dict(data, source="adl-paths"), accounts=accounts, mode="model", **overrides)


def test_drawn_shocks_depend_on_the_seed_only():
    scenario = adl_paths()
    first, drawn = sample_shocks(scenario, 7)
    assert list(drawn) == ["price_paths.BTC.legs.0.to"] and -0.30 <= drawn["price_paths.BTC.legs.0.to"] <= -0.10
    assert first.price_paths["BTC"].legs[0].to == drawn["price_paths.BTC.legs.0.to"]
    assert sample_shocks(scenario, 7)[1] == drawn and sample_shocks(scenario, 8)[1] != drawn
    # Varying another setting (a policy) keeps the draw: combinations see the same crashes.
    assert sample_shocks(with_settings(scenario, {"markets.*.policy": "NONE"}), 7)[1] == drawn
    paths = generate_fundamental_paths(scenario, seed=7)
    assert paths.of("BTC")[330] == pytest.approx(100_000 * (1 + drawn["price_paths.BTC.legs.0.to"]))
    draws = [sample_shocks(scenario, seed)[1]["price_paths.BTC.legs.0.to"] for seed in range(200)]
    assert min(draws) < -0.27 and max(draws) > -0.13  # spread over [low, high]
    # A scenario without draws uses no random numbers and is returned as it is.
    plain = load_scenario("adl-policies")
    assert sample_shocks(plain, 7) == (plain, {})


@pytest.mark.parametrize("draw, message", [
    ({"dist": "unifrom", "low": -0.2, "high": -0.1}, "legs[0].to.dist: should be one of uniform, normal, choice, got 'unifrom' "
                                                     "(did you mean 'uniform'?)"),
    ({"dist": "uniform", "low": -0.2}, "legs[0].to: a uniform draw needs 'high'"),
    ({"dist": "uniform", "low": -0.1, "high": -0.2}, "legs[0].to.high: must be above low (-0.1), got -0.2"),
    ({"dist": "normal", "mean": -0.1, "std": 0.05}, "legs[0].to.low: this draw can give a move of -1 (-100%) or less: "
                                                    "set low above -1"),
    ({"dist": "choice", "values": [-0.1, -1.2]}, "legs[0].to.values: every value must be above -1, got -1.2"),
    ({"dist": "uniform", "low": -0.2, "high": -0.1, "std": 1}, "legs[0].to.std: a uniform draw takes high, low, not 'std'"),
])
def test_a_bad_draw_is_named(load_dict, draw, message):
    data = base_scenario()
    data["price_paths"] = {"BTC": {"type": "scripted", "legs": [{"to": draw, "duration_steps": 10}]}}
    with pytest.raises(ScenarioError) as error:
        load_dict(data)
    assert f"price_paths.BTC.{message}" in str(error.value)


def test_risk_figures_follow_their_definitions():
    losses = [{"bad_debt_usd": float(x), "adl_notional_usd": 0.0, "liquidated_notional_usd": float(x),
               "socialized_loss_usd": 0.0,
               "insurance_fund_drawdown_usd": None, "adl_overshoot_usd": 0.0, "vault_pnl_usd": float(x - 50)}
              for x in range(100)]  # 0, 1, ..., 99
    figures = risk_figures(losses, combination=1)
    assert figures["p_insolvency"] == 0.99 and figures["p_adl"] == 0.0
    assert (figures["bad_debt_var95"], figures["bad_debt_var99"], figures["bad_debt_es95"]) == (94.0, 98.0, 97.0)
    assert figures["bad_debt_mean"] == 49.5 and figures["lar95"] == 94.0 and figures["vault_pnl_p05"] == -46.0
    assert figures["bad_debt_var95_ci_low"] < 94.0 < figures["bad_debt_var95_ci_high"] <= 99.0
    assert figures["p_insolvency_ci_low"] < 0.99 <= figures["p_insolvency_ci_high"] <= 1.0
    assert figures["fund_drawdown_mean"] is None  # not known on any path
    assert risk_figures(losses, combination=1) == figures  # the bootstrap is seeded
    assert fund_drawdown(100.0, [120.0, 90.0, 130.0, 125.0]) == 30.0



def test_a_new_risk_figure_leaves_the_others_intervals_alone(monkeypatch):
    import simulator.risk as risk

    runs = [{"bad_debt_usd": float(x % 7), "liquidated_notional_usd": float(x)} for x in range(30)]
    before = risk.risk_figures(runs, combination=2)
    # a figure over a new column, sorted before the others
    monkeypatch.setattr(risk, "FIGURES", [("aaa_mean", "aaa_usd", risk._mean), *risk.FIGURES])
    after = risk.risk_figures([{**run, "aaa_usd": 1.0} for run in runs], combination=2)
    assert after["aaa_mean"] == 1.0
    assert {name: value for name, value in after.items() if not name.startswith("aaa")} == before


def test_two_dask_workers_write_the_tables_one_process_writes(tmp_path):
    """A LocalCluster of 2 workers; each path's seed is the sweep's, never the worker's."""
    variants = plan_sweep(adl_paths(), {"markets.*.policy": ["ADL", "NONE"]}, seeds=3)
    alone = run_sweep(variants, tmp_path / "one", max_steps=400, workers=1)
    parallel = run_sweep(variants, tmp_path / "two", max_steps=400, workers=2)
    assert parallel.not_completed == 0 and parallel.resumed == 0
    assert _without_timing(parallel.rows) == _without_timing(alone.rows)
    assert (tmp_path / "two" / "sweep.csv").read_text() == (tmp_path / "one" / "sweep.csv").read_text()
    table = pq.read_table(tmp_path / "two" / "runs.parquet").to_pylist()
    assert _without_timing(table) == _without_timing([{**row, "error": None} for row in alone.rows])
    shocks = [row["shock:price_paths.BTC.legs.0.to"] for row in alone.rows]
    assert shocks[:3] == shocks[3:] and len(set(shocks)) == 3  # three crashes, the same for both policies
    assert sum(row["liquidations"] for row in alone.rows) > 0
    assert not (tmp_path / "two" / ".partial").exists()


def test_a_killed_sweep_resumes_with_only_what_was_missing(tmp_path, write_scenario):
    data = yaml.safe_load(resources.files("simulator.scenarios").joinpath("builtin/adl-policies.yaml").read_text())
    path = write_scenario(data, "adl.yaml")
    command = PERPSIM + ["sweep", str(path), "--vary", "markets.*.policy=ADL,NONE", "--paths", "4", "--accounts", "30",
                         "--steps", "600", "--workers", "1", "--json", "--out", str(tmp_path / "out")]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_finished(tmp_path / "out")) < 3 and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sweep.kill()
    sweep.wait()
    before = {label: (tmp_path / "out" / label / "run.json").stat().st_mtime_ns for label in _finished(tmp_path / "out")}
    assert 3 <= len(before) < 8, sweep.stderr.read()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["finished"], document["failed"]) == (8, 0)
    after = {label: (tmp_path / "out" / label / "run.json").stat().st_mtime_ns for label in before}
    assert after == before  # the runs finished before the kill were not run again
    assert len(_finished(tmp_path / "out")) == 8 and not (tmp_path / "out" / ".partial").exists()
    # A different setting is a different run: nothing is resumed under another key.
    changed = subprocess.run([c if c != "600" else "500" for c in command], capture_output=True, text=True, timeout=300)
    assert changed.returncode == 0, changed.stderr
    assert all((tmp_path / "out" / label / "run.json").stat().st_mtime_ns != mtime for label, mtime in before.items())


def _finished(out: Path) -> list[str]:
    return sorted(p.parent.name for p in out.glob("*/run.json"))


def _without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_tables_are_rewritten_less_often_when_writing_them_is_slow(monkeypatch, tmp_path):
    import simulator.sweep as sweep

    clock = [100.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    writes = []

    def slow_write(final):  # a write that takes 0.5 s of the clock
        writes.append(clock[0])
        clock[0] += 0.5

    tables = sweep._Tables(sweep.SweepResult(tmp_path), [], {})
    monkeypatch.setattr(tables, "_write", slow_write)
    tables.write(final=False)
    assert tables.interval == sweep.TABLE_SHARE * 0.5 > sweep.TABLE_INTERVAL_SECONDS
    clock[0] += sweep.TABLE_INTERVAL_SECONDS  # 2 s later: too soon for a write that slow
    tables.write(final=False)
    assert len(writes) == 1
    clock[0] += tables.interval
    tables.write(final=False)
    tables.write(final=True)  # the end always writes
    assert len(writes) == 3
