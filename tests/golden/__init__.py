"""Golden runs: the nine built-in scenarios at a small population, seed 0, in both modes, as main
produced them before the event-indexed keepers. `tests/sim/test_golden.py` reruns them and
compares; `python -m tests.golden` rewrites the files (only for a change that is a correction,
explained in its commit)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

DATA = Path(__file__).parent / "data"
ACCOUNTS = 120
SEED = 0
# What may differ between two runs of the same scenario and seed.
TIMING_FIELDS = ("wall_seconds",)
FILES = ("events.jsonl", "failed_actions.jsonl")


def scenario_for(name: str, mode: str):
    from simulator.scenarios import load_scenario, with_overrides

    return with_overrides(load_scenario(name), accounts=ACCOUNTS, seed=SEED, mode=mode)


@contextmanager
def model_exchange(scenario):
    from simulator.model.exchange import ModelExchange

    yield ModelExchange(scenario.market_specs())


@contextmanager
def chain_exchange(scenario):
    from simulator.chain.session import devnet

    with devnet(scenario.market_specs()) as exchange:
        yield exchange


def run(name: str, mode: str, out: Path, check_index: bool = False) -> dict:
    from simulator.runner import run_scenario

    factory = chain_exchange if mode == "chain" else model_exchange
    return run_scenario(scenario_for(name, mode), out, factory, check_index=check_index).summary


def events_differ(model_lines: list[str], chain_lines: list[str]) -> str | None:
    """Where two runs' events.jsonl lines differ beyond the vault's id (the model's vault is a
    constant, the chain's an account of the devnet: one id on each side), or None."""
    from simulator.model.exchange import VAULT

    if len(model_lines) != len(chain_lines):
        return f"{len(model_lines)} events in the model, {len(chain_lines)} on chain"
    chain_vault = set()
    for number, (ours, theirs) in enumerate(zip(model_lines, chain_lines), start=1):
        ours, theirs = json.loads(ours), json.loads(theirs)
        if ours.keys() != theirs.keys():
            return f"event {number}: fields {sorted(ours)} in the model, {sorted(theirs)} on chain"
        for key in ours:
            if ours[key] != theirs[key]:
                if ours[key] != VAULT:
                    return f"event {number}: {key} is {ours[key]} in the model, {theirs[key]} on chain"
                chain_vault.add(theirs[key])
    return f"the model's vault is {len(chain_vault)} accounts on chain" if len(chain_vault) > 1 else None


def comparable_summary(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING_FIELDS}


def folder(name: str, mode: str) -> Path:
    return DATA / f"{name}-{mode}"


def write(name: str, mode: str, out: Path) -> None:
    """Copies a finished run's files into the golden folder."""
    target = folder(name, mode)
    target.mkdir(parents=True, exist_ok=True)
    summary = json.loads((out / "summary.json").read_text())
    (target / "summary.json").write_text(json.dumps(comparable_summary(summary), indent=2, sort_keys=True) + "\n")
    for file in FILES:
        (target / file).write_text((out / file).read_text())
