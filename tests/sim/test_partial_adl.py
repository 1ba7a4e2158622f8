"""The keepers' ADLs in parts (`agents.keepers.max_adl_counterparties`), on chain and in the model:
the contracts' partial ADLs, several of them for one position in one block, are the mirror's."""

from __future__ import annotations

import json

from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides, with_settings
from tests.golden import chain_exchange, comparable_summary, events_differ, model_exchange

ACCOUNTS, STEPS = 200, 2100  # oct-2025 into its crash: ADLs of up to a dozen winners


def _run(mode: str, out) -> tuple[dict, list[str], list[dict]]:
    scenario = with_settings(with_overrides(load_scenario("oct-2025"), accounts=ACCOUNTS, mode=mode),
                             {"agents.keepers.max_adl_counterparties": 1})
    factory = chain_exchange if mode == "chain" else model_exchange
    summary = run_scenario(scenario, out, factory, max_steps=STEPS, render=False).summary
    events = (out / "events.jsonl").read_text().splitlines()
    failed = [{k: v for k, v in json.loads(line).items() if k != "error"}
              for line in (out / "failed_actions.jsonl").read_text().splitlines()]
    return summary, events, failed


def test_adls_in_parts_agree_on_chain_and_in_the_model(tmp_path):
    model, chain = _run("model", tmp_path / "model"), _run("chain", tmp_path / "chain")
    assert {**comparable_summary(model[0]), "mode": None} == {**comparable_summary(chain[0]), "mode": None}
    difference = events_differ(model[1], chain[1])
    assert difference is None, difference
    assert model[2] == chain[2]
    # Parts there were: one position deleveraged by several calls in one block, one winner each.
    calls = [(e["step"], e["accountId"], e["marketId"], e["counterparties"])
             for e in map(json.loads, model[1]) if e["event"] == "Deleveraged"]
    assert {c[3] for c in calls} == {1}
    assert len({c[:3] for c in calls}) < len(calls)
