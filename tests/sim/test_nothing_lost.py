"""Nothing lost, nothing hangs (issue 16): a run killed without a word keeps its steps up to the
last flush and renders; bad output folders, bad run folders, bad signals and values beyond the
contracts' units are refused with one line; the loader's work is bounded for any document."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simulator import cli
from simulator.metrics import SERIES_FIELDS, Metrics
from simulator.report import RunWriter, read_run, render_report
from simulator.scenarios import load_scenario, scenario_from_dict
from simulator.scenarios.errors import ScenarioError
from simulator.scenarios.loader import MAX_BYTES, parse_yaml
from simulator.toolchain import PROJECT_ROOT
from tests.sim.conftest import base_scenario

PERPSIM = [str(Path(sys.executable).parent / "perpsim")]


def _perpsim(*args, capsys) -> tuple[int, str, str]:
    """Runs the perpsim command line in this process: (exit status, stdout, stderr)."""
    saved = sys.argv
    sys.argv = ["perpsim", *map(str, args)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return code, out, err


def _summary(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(args: list[str], out: Path) -> subprocess.Popen:
    return subprocess.Popen([*PERPSIM, "run", *args, "--out", str(out), "--no-progress", "--no-cache"],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PERPSIM_FLUSH_SECONDS": "0.5"})


def _wait_for(process: subprocess.Popen, folder: Path, ready, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = _summary(folder)
        if summary is not None and ready(summary):
            return summary
        if process.poll() is not None:
            raise AssertionError(f"the run ended first ({process.returncode}): {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no progress in {timeout} s: {_summary(folder)}")


# --- a run killed without a word ------------------------------------------------------------------


def test_sigkill_of_a_chain_run_keeps_its_steps_and_renders(tmp_path, capsys):
    """kill -9 of `perpsim run` in chain mode midway: its anvils die with it; the folder holds a
    summary (status running, the steps of the last flush), every row and event of those steps, and
    `perpsim report` renders them, saying the run did not finish."""
    out = tmp_path / "run"
    process = _start(["oct-2025", "--accounts", "40", "--set", "steps=40000"], out)
    anvils: list[int] = []
    try:
        _wait_for(process, out, lambda s: s["status"] == "running" and s.get("positions_opened"), 60)
        anvils = _children(process.pid)
        first = _wait_for(process, out, lambda s: s["steps"] > 0, 30)["steps"]
        summary = _wait_for(process, out, lambda s: s["steps"] > first, 30)  # a second flush, midway
        assert summary["status"] == "running"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert len(anvils) == 2, f"the run's two anvils, children of perpsim: {anvils}"
    deadline = time.monotonic() + 10
    while any(map(_alive, anvils)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in anvils if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "an anvil outlived its killed run"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "running" and summary["steps"] > 0
    steps = summary["steps"]
    kept, series, events = read_run(out)
    assert kept == summary
    assert sorted(series) == ["ALT", "BTC", "ETH", "SOL"]
    for rows in series.values():
        assert [int(row["step"]) for row in rows] == list(range(steps))
    assert summary["liquidations"] == sum(1 for e in events if e["event"] == "Liquidation")
    code, stdout, stderr = _perpsim("report", out, capsys=capsys)
    assert code == 0 and stdout == f"{out / 'report.html'}\n", stderr
    assert stderr.startswith("note: the run did not finish: it stopped without a word (killed, e.g. kill -9")
    page = (out / "report.html").read_text()
    assert "the run did not finish" in page and f"the {steps} steps written" in page


def test_a_flush_writes_what_was_recorded_and_a_cut_line_is_left_out(tmp_path):
    metrics = Metrics(market_names=["BTC"])
    writer = RunWriter(tmp_path, metrics)

    def record(step):
        row = {key: 1.0 for key in SERIES_FIELDS}
        row.update(step=step, market="BTC", oracle_status=0)
        metrics.series.append(row)
        metrics.events.append({"step": step, "event": "Liquidation"})

    record(0)
    record(1)
    writer.flush({"status": "running", "steps": 2})
    record(2)  # recorded, not flushed: a kill -9 now loses it
    assert len((tmp_path / "timeseries.csv").read_text().splitlines()) == 3
    with open(tmp_path / "timeseries.csv", "a") as handle:
        handle.write("2,BT")  # a line cut by the kill
    with open(tmp_path / "events.jsonl", "a") as handle:
        handle.write('{"step": 2, "ev')
    summary, series, events = read_run(tmp_path)
    assert summary["steps"] == 2 and len(series["BTC"]) == 2 and len(events) == 2


# --- signals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, code, words", [(signal.SIGINT, 130, "interrupted by Ctrl-C (SIGINT)"),
                                                 (signal.SIGTERM, 143, "stopped by SIGTERM (kill)")])
def test_a_signal_stops_a_run_with_its_exit_status_and_words(tmp_path, signum, code, words):
    out = tmp_path / "run"
    process = _start(["calm", "--mode", "model", "--accounts", "40", "--set", "steps=100000"], out)
    try:
        _wait_for(process, out, lambda s: s.get("positions_opened") is not None, 60)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines() == [f"perpsim: the run was {words} after {_summary(out)['steps']} steps "
                                           f"(what was computed is in {out})"]
    assert _summary(out)["status"] == "interrupted" and _summary(out)["error"] == words


# --- the output folder, checked first ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    extra = ["--vary", "markets.*.policy=ADL,NONE", "--workers", "1"] if command == "sweep" else []
    for out, reason in ((blocker / "sub", "a parent is a file, not a folder"),
                        (Path("/proc/x"), "No such file or directory")):
        started = time.monotonic()
        code, stdout, err = _perpsim(command, "calm", "--mode", "model", "--accounts", "20", *extra, "--out", out,
                                     "--json", capsys=capsys)
        assert code == 1 and stdout == ""
        assert err == f"perpsim: cannot write the output folder {out}: {reason}\n"
        assert time.monotonic() - started < 5  # before anything ran


# --- perpsim report on a bad folder -------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.golden import model_exchange
    from simulator.runner import run_scenario
    from simulator.scenarios import with_overrides

    out = tmp_path_factory.mktemp("finished")
    scenario = with_overrides(load_scenario("calm"), accounts=20)
    run_scenario(scenario, out, model_exchange, max_steps=20, render=False)
    return out


def _copy(folder: Path, target: Path) -> Path:
    target.mkdir()
    for path in folder.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


@pytest.mark.parametrize("damage, file, problem", [
    (lambda f: (f / "summary.json").write_text('{"status": "comp'), "summary.json",
     "not valid JSON (line 1, column 12: Unterminated string starting at)"),
    (lambda f: (f / "summary.json").write_text('[1, 2]'), "summary.json", "not a run summary (a JSON object)"),
    (lambda f: (f / "timeseries.csv").unlink(), "timeseries.csv", "missing: the run folder is incomplete"),
    (lambda f: (f / "events.jsonl").write_text("{not json\n"), "events.jsonl",
     "line 1: not valid JSON (column 2: Expecting property name enclosed in double quotes)"),
    (lambda f: (f / "timeseries.csv").write_text("step,market\n0\n"), "timeseries.csv",
     "line 2: 1 fields, the header has 2"),
    (lambda f: (f / "summary.json").unlink(), None, "no summary.json: not a perpsim run folder"),
])
def test_report_on_a_bad_run_folder_is_one_line(finished_run, tmp_path, capsys, damage, file, problem):
    folder = _copy(finished_run, tmp_path / "run")
    damage(folder)
    code, out, err = _perpsim("report", folder, capsys=capsys)
    assert code == 1 and out == ""
    assert err == f"perpsim: {folder / file if file else folder}: {problem}\n"


def test_report_on_a_run_with_no_step_says_so(tmp_path, capsys):
    metrics = Metrics(market_names=["BTC"])
    RunWriter(tmp_path, metrics).close({"status": "failed", "steps": 0, "error": "the devnet died"})
    code, out, err = _perpsim("report", tmp_path, capsys=capsys)
    assert code == 1 and out == ""
    assert err == (f"perpsim: {tmp_path}: no step completed, nothing to plot (the run failed after 0 steps: "
                   "the devnet died)\n")
    assert not (tmp_path / "report.html").exists()


# --- values beyond the contracts' units ------------------------------------------------------------


AMOUNT = "must be at most 1e+18 (the engine's bound on amounts, MAX_DEPTH: 1e36 in WAD),"


def _with(change) -> dict:
    data = base_scenario()
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d["markets"][0].update(price=1e60),
     "markets[0].price: must be at most 3.403e+20 USD (the oracle router's MAX_PRICE), got 1e+60"),
    (lambda d: d["markets"][1].update(price=1e-9),
     "markets[1].price: must be at least 1e-08 USD (the oracle's resolution: 8 decimals; below it the answer is 0), "
     "got 1e-09"),
    (lambda d: d["markets"][2].update(depth2pct=1e80),
     f"markets[2].depth2pct: {AMOUNT} got 1e+80"),
    (lambda d: d["markets"][0].update(max_open_interest=1e30),
     f"markets[0].max_open_interest: {AMOUNT} got 1e+30"),
    (lambda d: d["markets"][0].update(imr=1e-20), "markets[0].imr: has more than 18 decimals (the contracts' WAD), "
                                                  "got 1e-20"),
    (lambda d: d.update(liquidity={"base_factor": 1e14}),
     "liquidity.base_factor: BTC's depth2pct x base_factor (370000 x 1e+14) must be at most 1e+18 USD "
     "(the engine's MAX_DEPTH)"),
    (lambda d: d.update(population={"notional": {"median": 1e40}}),
     f"population.notional.median: {AMOUNT} got 1e+40"),
    (lambda d: d.update(price_paths={"SOL": {"type": "scripted", "legs": [{"to_price": 1e-10, "duration_steps": 5}]}}),
     "price_paths.SOL.legs[0].to_price: the target price must be at least 1e-08 USD (the oracle's resolution: "
     "8 decimals; below it the answer is 0), got 1e-10"),
])
def test_values_the_contracts_cannot_represent_are_refused_at_load(change, message):
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_with(change), source="s.yaml")
    assert info.value.user_message == f"s.yaml: {message}"


def test_a_path_that_falls_below_the_oracle_resolution_is_refused_with_step_and_market(write_scenario, capsys):
    data = base_scenario()
    data["price_paths"] = {"SOL": {"type": "gbm", "vol": 10000.0}}  # -vol^2/2 drifts it to 0 in ~100 steps
    path = write_scenario(data)
    code, out, err = _perpsim("run", path, "--mode", "model", "--accounts", "20", capsys=capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"perpsim: {path}: price_paths.SOL: market SOL's price reaches ")
    assert "USD at step " in err and "below the oracle's resolution (1e-08 USD: 8 decimals) (seed 0)" in err
    assert len(err.splitlines()) == 1


def test_a_run_whose_every_opening_position_is_rejected_stops(tmp_path):
    from tests.golden import model_exchange
    from simulator.runner import run_scenario
    from simulator.scenarios import with_overrides

    data = base_scenario()
    for market in data["markets"]:
        market["price"] = 3e20  # representable, but $10 buys less than a wei of it
    data["population"] = {"notional": {"median": 10, "min": 10, "max": 10}}
    scenario = with_overrides(scenario_from_dict(data, source="s.yaml"), accounts=10, mode="model")
    summary = run_scenario(scenario, tmp_path, model_exchange, render=False).summary
    assert summary["status"] == "failed" and summary["steps"] == 0
    assert summary["error"].startswith("every opening position was rejected (")



def test_an_interrupt_before_the_first_step_completes_leaves_no_report_and_no_error(tmp_path, monkeypatch):
    """Ctrl-C landing after step 0's row is recorded but before the step counts: the run is
    interrupted after 0 steps, with no report to render (it used to fail rendering one, so the
    command exited 1 instead of 130)."""
    from tests.golden import model_exchange
    from simulator.runner import run_scenario
    from simulator.scenarios import with_overrides

    record_step = Metrics.record_step

    def interrupted(self, *args, **kwargs):
        record_step(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Metrics, "record_step", interrupted)
    scenario = with_overrides(load_scenario("calm"), accounts=20, mode="model")
    result = run_scenario(scenario, tmp_path, model_exchange)
    assert result.summary["status"] == "interrupted" and result.summary["steps"] == 0
    assert result.report is None and not (tmp_path / "report.html").exists()

# --- the sweep: section, checked by run too ------------------------------------------------------------


def test_run_checks_the_sweep_section(write_scenario, capsys, tmp_path):
    data = base_scenario()
    data["sweep"] = {"vary": {"markets.*.polcy": ["ADL", "NONE"]}}
    path = write_scenario(data)
    code, out, err = _perpsim("run", path, "--mode", "model", "--out", tmp_path / "out", capsys=capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"perpsim: {path}, sweep (markets.*.polcy='ADL'): ") and "polcy" in err
    assert not (tmp_path / "out").exists()
    data["sweep"] = {"vary": {"markets.7.policy": ["ADL"]}}
    code, _, err = _perpsim("run", write_scenario(data), "--mode", "model", capsys=capsys)
    assert code == 1 and "setting markets.7.policy: markets has 3 entries, no [7]" in err


# --- the loader: bounded work for any document ---------------------------------------------------------


BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                 + [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]) + "\n"


@pytest.mark.parametrize("text, problem", [
    (BOMB, "line 6: the document holds more than 100,000 values, counting each alias as the values it stands for "
           "(an alias bomb?): refused"),
    ("x: &x [*x]\n", "line 1: an alias refers to the anchor it is inside (a recursive document): refused"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "line 1: nested more than 64 levels deep: refused"),
    ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 100)), "line 65: nested more than 64 levels deep: refused"),
    ("a: " + "x" * MAX_BYTES + "\n", f"the file is {MAX_BYTES + 4:,} characters long; a scenario is at most "
                                    f"{MAX_BYTES:,}: refused"),
])
def test_the_loader_refuses_documents_that_would_take_unbounded_work(write_scenario, text, problem):
    path = write_scenario(text)
    started = time.monotonic()
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert time.monotonic() - started < 2
    assert info.value.user_message == (f"{path}, {problem}" if problem.startswith("line") else f"{path}: {problem}")


def test_anchors_used_legitimately_still_work(write_scenario):
    path = write_scenario("""
name: anchored
steps: 100
markets:
  - &btc {name: BTC, price: 100000, imr: 0.05, depth2pct: 5000000}
  - {<<: *btc, name: ETH, price: 3000, imr: 0.1}
  - {<<: *btc, name: SOL, price: 200, imr: 0.1, imr: 0.2}
""")
    with pytest.raises(ScenarioError, match=r"line 7: YAML syntax error: duplicate key 'imr' \(first given on line 7\)"):
        load_scenario(path)
    path.write_text(path.read_text().replace(", imr: 0.2}", "}"))
    scenario = load_scenario(path)
    assert [(m.name, m.price, m.imr, m.depth2pct) for m in scenario.markets] == [
        ("BTC", 100000, 0.05, 5000000), ("ETH", 3000, 0.1, 5000000), ("SOL", 200, 0.1, 5000000)]


def test_set_values_are_read_with_the_same_bounds(capsys):
    bomb = "[" + ",".join(["&a0 [1,1,1,1,1,1,1,1,1,1]"] + [f"&a{i} [{','.join(['*a' + str(i - 1)] * 10)}]"
                                                           for i in range(1, 7)]) + "]"
    code, out, err = _perpsim("run", "calm", "--mode", "model", "--set", f"description={bomb}", capsys=capsys)
    assert code == 2 and "cannot read the value: the document holds more than 100,000 values" in " ".join(err.split())


# --- fuzz: any document either loads or is one ScenarioError, quickly ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from simulator.scenarios import list_scenarios  # noqa: E402
from simulator.scenarios.loader import _builtin_files  # noqa: E402

FUZZ_SECONDS = 2.0  # of CPU per document, however malformed (CPU: other jobs on the machine do not count)
TOKENS = ["\n", "\n  ", "\n    ", "- ", ": ", ", ", "[", "]", "{", "}", "&a ", "*a", "&b ", "*b", "<<: ", "? ", "!!str ",
          "!!binary ", "!!python/object:os.system ", "!!timestamp ", "!!set ", "---\n", "...\n", "#", "'", '"', "|\n  ",
          "name", "steps", "markets", "price", "depth2pct", "price_paths", "type", "scripted", "legs", "to", "sweep",
          "vary", "population", "accounts", "oracle", "wick", "1", "-1", "0", "1e400", "-.inf", ".nan", "1e-30",
          "100000", "BTC", "true", "null", "~", "0x10", "1_000", "2025-10-10", "\t", "\\u0000", "é"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                             max_size=4), max_leaves=12)
BUILTINS = sorted(info.name for info in list_scenarios())


def _loads_or_refuses(text: str, tmp_path: Path) -> None:
    started = time.process_time()
    try:
        data, lines = parse_yaml(text, "fuzz.yaml")
        scenario_from_dict(data, source="fuzz.yaml", base_dir=tmp_path, lines=lines)
    except ScenarioError as exc:
        assert exc.user_message.startswith("fuzz.yaml")
    assert time.process_time() - started < FUZZ_SECONDS


@settings(max_examples=60)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_fuzz_random_yaml_loads_or_is_a_scenario_error(tmp_path_factory, tokens):
    _loads_or_refuses("".join(tokens), tmp_path_factory.getbasetemp())


@settings(max_examples=40)
@given(st.sampled_from(BUILTINS), st.data())
def test_fuzz_mutated_builtins_load_or_are_a_scenario_error(tmp_path_factory, name, data):
    document = yaml.safe_load(_builtin_files()[name].read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        # Walk to a random mapping or list, then replace, delete or add one entry.
        node = document
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            nested = [key for key, value in children if isinstance(value, (dict, list)) and value]
            if not nested or data.draw(st.booleans(), label="stop here"):
                break
            node = node[data.draw(st.sampled_from(nested), label="into")]
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
        if action == "add" or not keys:
            value = data.draw(VALUES, label="value")
            if isinstance(node, dict):
                node[data.draw(st.sampled_from(keys + ["extra", "name", "to_price"]) if keys else st.just("x"),
                               label="key")] = value
            else:
                node.append(value)
        else:
            key = data.draw(st.sampled_from(keys), label="key")
            if action == "delete":
                del node[key]
            else:
                node[key] = data.draw(VALUES, label="value")
    _loads_or_refuses(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), tmp_path_factory.getbasetemp())
