"""The same scenario and seed give the same events and summary as main did before the
event-indexed keepers (tests/golden): every built-in at a small population, seed 0, both modes.
Each run also reconciles the position index with the exchange after every step and compares every
screen's liquidatable accounts with an exact scan of all accounts."""

from __future__ import annotations

import json

import pytest

from simulator.scenarios import list_scenarios
from tests.golden import FILES, comparable_summary, events_differ, folder, run

NAMES = [info.name for info in list_scenarios()]


def _compare(name: str, mode: str, out) -> None:
    summary = run(name, mode, out, check_index=True)
    golden = folder(name, mode)
    assert comparable_summary(summary) == json.loads((golden / "summary.json").read_text())
    for file in FILES:
        got, want = (out / file).read_text().splitlines(), (golden / file).read_text().splitlines()
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        assert got == want, f"{file}: first difference at line {first + 1}: got {got[first:first + 1]}, " \
                            f"golden {want[first:first + 1]} ({len(got)} vs {len(want)} lines)"


@pytest.mark.parametrize("name", NAMES)
def test_golden_model_run_unchanged(name, tmp_path):
    _compare(name, "model", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_golden_chain_run_unchanged(name, tmp_path):
    _compare(name, "chain", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_golden_model_agrees_with_chain(name):
    """The two modes' golden runs (each checked against its mode above) are the same run: the same
    summary and the same events, the vault's id aside (the model's vault is a constant, the
    chain's an account of the devnet). Failed keeper actions are the same actions at the same steps;
    their error texts may differ, because the chain names a failed transaction's error by replaying
    it on the block's final state."""
    model, chain = folder(name, "model"), folder(name, "chain")
    assert ({**json.loads((model / "summary.json").read_text()), "mode": None}
            == {**json.loads((chain / "summary.json").read_text()), "mode": None})
    difference = events_differ((model / "events.jsonl").read_text().splitlines(),
                               (chain / "events.jsonl").read_text().splitlines())
    assert difference is None, difference

    def actions(folder_):
        rows = [json.loads(line) for line in (folder_ / "failed_actions.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if k != "error"} for row in rows]

    assert actions(model) == actions(chain)
