"""Every field summary.json has is documented in docs/design.md §10.2, and every field documented
there is one a run writes: a field added, renamed or removed without its line fails here."""

from __future__ import annotations

import re
from contextlib import contextmanager

from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides, with_settings
from simulator.toolchain import PROJECT_ROOT

DESIGN = PROJECT_ROOT / "docs" / "design.md"


def documented_fields() -> set[str]:
    """The `keys` in the first column of §10.2's table."""
    text = DESIGN.read_text()
    section = text[text.index("### 10.2 summary.json"):]
    section = section[:section.index("\n### ", 1)]
    fields = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            fields.update(re.findall(r"`([A-Za-z0-9_]+)`", line.split("|")[1]))
    return fields


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


@contextmanager
def broken(scenario):
    raise RuntimeError("an unexpected error")  # not a PerpsimError: the summary keeps its traceback
    yield


def test_every_summary_field_is_documented_and_every_documented_field_is_written(tmp_path):
    # a completed run that draws its crash (`shocks`) and a run that fails (`error`, `traceback`)
    drawn = with_settings(with_overrides(load_scenario("adl-policies"), accounts=20, mode="model"),
                          {"price_paths.BTC.legs.0.to": {"dist": "uniform", "low": -0.25, "high": -0.1}})
    completed = run_scenario(drawn, tmp_path / "completed", model_exchange, max_steps=40, render=False).summary
    failed = run_scenario(drawn, tmp_path / "failed", broken, max_steps=40, render=False).summary
    assert completed["status"] == "completed" and failed["status"] == "failed"
    written = set(completed) | set(failed)
    documented = documented_fields()
    assert written - documented == set(), "summary.json fields missing from docs/design.md §10.2"
    assert documented - written == set(), "docs/design.md §10.2 documents fields no run writes"
    assert {"tokens_usd", "claims_usd", "vault_pnl_usd", "shocks", "error", "traceback"} <= documented
