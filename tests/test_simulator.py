"""The simulator end to end: scenarios run in chain and model mode, agree, repeat, and fail with a
clear message that keeps what was computed."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from eth_utils import keccak

from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides
from simulator.toolchain import PROJECT_ROOT
from tests.golden import events_differ
from tests.isolation import isolated_chain_exchanges

PERPSIM = [str(Path(sys.executable).with_name("perpsim"))]
COMPARED = ("liquidations", "liquidated_notional_usd", "bad_debt_usd", "adl_fills", "adl_notional_usd",
            "insurance_fund_end_usd", "insurance_fund_reserved_end_usd", "socialized_loss_usd", "first_liquidation_step",
            "first_adl_step", "vault_value_start_usd", "vault_value_end_usd", "vault_pnl_usd")


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


@pytest.fixture
def chain_exchange(project, accounts, chain, networks):
    """Runs inside the test session's anvil, each run isolated."""
    return isolated_chain_exchanges(project, accounts, chain, networks)


def scenario(name, **overrides):
    return with_overrides(load_scenario(name), **overrides)


def run(chosen, out, factory, steps=None):
    return run_scenario(chosen, out, factory, max_steps=steps)


def without_timing(summary):
    return {k: v for k, v in summary.items() if k not in ("wall_seconds",)}


def test_calm_has_no_liquidations_and_no_bad_debt(tmp_path):
    result = run_scenario(scenario("calm", mode="model"), tmp_path, model_exchange)
    summary = result.summary
    assert summary["status"] == "completed"
    assert summary["liquidations"] == 0 and summary["bad_debt_usd"] == 0 and summary["adl_fills"] == 0
    assert summary["positions_opened"] > 0 and summary["positions_rejected"] == 0


def test_calm_on_chain_has_no_liquidations(tmp_path, chain_exchange):
    result = run(scenario("calm", accounts=40), tmp_path, chain_exchange, steps=600)
    assert result.summary["status"] == "completed", result.summary.get("error")
    assert result.summary["liquidations"] == 0 and result.summary["bad_debt_usd"] == 0


def test_oct_2025_liquidates_and_draws_the_fund(tmp_path):
    result = run_scenario(scenario("oct-2025", mode="model", accounts=1000), tmp_path, model_exchange)
    summary = result.summary
    assert summary["liquidations"] > 500 and summary["adl_fills"] > 0
    assert summary["first_liquidation_step"] is not None
    for name in ("summary.json", "timeseries.csv", "events.jsonl", "report.html"):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.glob("*.png"))  # the charts live in report.html
    # The fund pays losses beyond bankruptcy during the crash and ends well below where it started.
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sum(e["amount"] for e in events if e["event"] == "InsuranceFundPayment") > 0
    assert summary["insurance_fund_end_usd"] < summary["insurance_fund_start_usd"] / 2


def test_same_seed_gives_the_same_summary(tmp_path):
    first = run(scenario("oct-2025", mode="model", accounts=120), tmp_path / "a", model_exchange, steps=2600)
    second = run(scenario("oct-2025", mode="model", accounts=120), tmp_path / "b", model_exchange, steps=2600)
    assert without_timing(first.summary) == without_timing(second.summary)
    assert (tmp_path / "a" / "events.jsonl").read_text() == (tmp_path / "b" / "events.jsonl").read_text()
    other = run(scenario("oct-2025", mode="model", accounts=120, seed=1), tmp_path / "c", model_exchange, steps=2600)
    assert without_timing(other.summary) != without_timing(first.summary)


def test_same_seed_on_chain_gives_the_same_summary(tmp_path, chain_exchange):
    runs = [run(scenario("oct-2025", accounts=40), tmp_path / str(i), chain_exchange, steps=2500) for i in range(2)]
    assert runs[0].summary["status"] == "completed", runs[0].summary.get("error")
    assert without_timing(runs[0].summary) == without_timing(runs[1].summary)


def test_chain_and_model_agree_on_a_small_population(tmp_path, chain_exchange):
    chosen = scenario("oct-2025", accounts=60)
    on_chain = run(chosen, tmp_path / "chain", chain_exchange, steps=2700).summary
    in_model = run(with_overrides(chosen, mode="model"), tmp_path / "model", model_exchange, steps=2700).summary
    assert on_chain["status"] == in_model["status"] == "completed"
    assert on_chain["liquidations"] > 0
    assert {k: on_chain[k] for k in COMPARED} == {k: in_model[k] for k in COMPARED}
    chain_events = (tmp_path / "chain" / "events.jsonl").read_text().splitlines()
    model_events = (tmp_path / "model" / "events.jsonl").read_text().splitlines()
    difference = events_differ(model_events, chain_events)  # the vault's id aside
    assert difference is None, difference


def test_bad_scenario_file_names_file_key_and_problem(tmp_path):
    bad = tmp_path / "typo.yaml"
    text = (PROJECT_ROOT / "simulator" / "scenarios" / "builtin" / "calm.yaml").read_text()
    bad.write_text(text.replace("depth2pct:", "depht2pct:", 1))
    done = subprocess.run(PERPSIM + ["run", str(bad), "--mode", "model", "--no-progress"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "typo.yaml" in done.stderr and "depht2pct" in done.stderr and "did you mean 'depth2pct'" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_anvil_is_named_and_summary_written(tmp_path):
    env = dict(os.environ, PERPSIM_ANVIL_NATIVE=str(tmp_path / "no-anvil"))
    done = subprocess.run(PERPSIM + ["run", "calm", "--steps", "5", "--accounts", "5", "--no-progress", "--out",
                                     str(tmp_path / "run")], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "anvil" in done.stderr and "make setup" in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "anvil" in summary["error"]


def interrupted_run(out: Path, interrupt, code: int = 1) -> tuple[subprocess.CompletedProcess, int, dict]:
    """Runs oct-2025 (1,000 accounts, about 15 s) on its own devnet, calls `interrupt(anvil pid,
    perpsim process)` after set-up and some steps, and checks that what was computed is written
    and the exit status is `code`. Returns the finished process, anvil's pid and the summary."""
    # --no-cache: the book must be opened in blocks (a cached one is loaded without openPosition calls).
    process = subprocess.Popen(PERPSIM + ["run", "oct-2025", "--accounts", "1000", "--no-progress", "--no-cache",
                                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        anvil = None
        for _ in range(600):
            # The run's anvil is the one forking the (empty) base anvil perpsim also starts.
            children = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "anvil.*--fork-url"],
                                      capture_output=True, text=True).stdout.split()
            if children:
                anvil = int(children[0])
                break
            time.sleep(0.1)
        assert anvil, "perpsim did not start anvil"
        _wait_for_steps(anvil)  # however loaded the machine, then a second more of steps
        time.sleep(1)
        interrupt(anvil, process)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stdout + stderr
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["steps"] < 3600, (summary, stderr)
    rows = (out / "timeseries.csv").read_text().splitlines()
    assert len(rows) - 1 == summary["steps"] * 4, (len(rows), summary, stderr)  # four markets per step
    assert (out / "report.html").is_file(), stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), anvil, summary


def _wait_for_steps(anvil: int, blocks: int = 3, timeout: float = 180) -> None:
    """Waits until the run on the anvil with pid `anvil` has opened its book (the block with the
    traders' `openPosition`s) and mined `blocks` blocks after it: the last set-up block, then steps
    (a step mines a block when it acts), so at least one step is recorded however loaded the
    machine. Walks every block, so none is missed."""
    arguments = Path(f"/proc/{anvil}/cmdline").read_bytes().split(b"\0")
    port = int(arguments[arguments.index(b"--port") + 1])
    open_position = "0x" + keccak(text="openPosition(uint256,int256,uint256)")[:4].hex()
    deadline, number, opened_at = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        try:
            block = requests.post(f"http://127.0.0.1:{port}", timeout=5, json={
                "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": [hex(number), True]}).json()["result"]
        except requests.exceptions.RequestException:
            block = None  # not listening yet
        if block is None:
            time.sleep(0.1)
            continue
        if opened_at is None and any(tx["input"].startswith(open_position) for tx in block["transactions"]):
            opened_at = number
        if opened_at is not None and number >= opened_at + blocks:
            return
        number += 1
    raise AssertionError(f"the run did not open its book and take steps in {timeout} s (book opened in block {opened_at})")


def test_anvil_dying_mid_run_keeps_what_was_computed(tmp_path):
    done, _, summary = interrupted_run(tmp_path / "run", lambda anvil, _: os.kill(anvil, signal.SIGKILL))
    assert "not reachable" in done.stderr or "did not answer" in done.stderr, done.stderr
    assert summary["status"] == "failed"


def test_interrupting_a_chain_run_keeps_what_was_computed(tmp_path):
    """Ctrl-C mid-run (Ape turns SIGINT into SystemExit): the steps done are written, status
    "interrupted", the devnet is stopped, and the exit status is 130."""
    done, anvil, summary = interrupted_run(tmp_path / "run", lambda _, perpsim: perpsim.send_signal(signal.SIGINT),
                                           code=130)
    assert "the run was interrupted by Ctrl-C (SIGINT) after" in done.stderr, done.stderr
    assert summary["status"] == "interrupted" and summary["error"] == "interrupted by Ctrl-C (SIGINT)"
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(anvil, 0)
