"""oct-2025 holds the shape of 10 October 2025 (issue 14): at 1,000 accounts, model mode, each fact
that is inside its band on seeds 0-2 (docs/calibration.md, "Result") stays inside it.

CI runs seed 0 only (a full run at 1,000 accounts takes about 5 s; the suite's budget leaves room
for one). ``PERPSIM_SHAPE_SEEDS=0,1,2`` runs the three seeds the calibration was measured on.
The facts still outside their band on some seed are listed in OPEN and in docs/calibration.md
("Not done yet"); move one to HELD when it is in band on seeds 0-2."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from simulator.facts import OCT_2025_BANDS, compute_facts
from simulator.model.exchange import ModelExchange
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides

ACCOUNTS = 1000
# In band on seeds 0, 1 and 2 (docs/calibration.md).
HELD = ("main_wave_in_crash", "crash_window_share", "long_share", "adl_to_liquidated", "first_adl_delay_s",
        "adl_profitable_share", "low_BTC", "low_SOL", "underwater_share")
# Outside on at least one of seeds 0-2, with the seeds 0 / 1 / 2 values at 1,000 accounts.
OPEN = {
    "underwater_equity_to_liquidated": "0.21% / 0.19% / 0.01%, band 0.5-2%",
}


def _seeds(raw: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in raw.split(","))
    except ValueError:
        seeds = ()
    if not seeds or any(seed < 0 for seed in seeds):
        raise ValueError(f"PERPSIM_SHAPE_SEEDS: expected seeds separated by commas, e.g. 0,1,2; got {raw!r}")
    return seeds


SEEDS = _seeds(os.environ.get("PERPSIM_SHAPE_SEEDS", "0"))


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


@pytest.fixture(scope="module")
def facts_of(tmp_path_factory):
    """The facts of oct-2025 at 1,000 accounts for a seed, each run once for the module."""
    cache: dict[int, dict] = {}

    def facts(seed: int) -> dict:
        if seed not in cache:
            out = tmp_path_factory.mktemp(f"oct-2025-seed{seed}")
            chosen = with_overrides(load_scenario("oct-2025"), accounts=ACCOUNTS, seed=seed, mode="model")
            summary = run_scenario(chosen, out, model_exchange, render=False).summary
            assert summary["status"] == "completed", summary.get("error")
            cache[seed] = compute_facts(out)
        return cache[seed]

    return facts


def test_every_band_is_held_or_open():
    assert set(HELD) | set(OPEN) == set(OCT_2025_BANDS) and not set(HELD) & set(OPEN)


def test_seeds_are_read_from_the_environment():
    assert _seeds("0,1,2") == (0, 1, 2)
    for bad in ("", "a", "0,-1", "0;1"):
        with pytest.raises(ValueError, match="PERPSIM_SHAPE_SEEDS"):
            _seeds(bad)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fact", HELD)
def test_oct_2025_fact_in_band(fact, seed, facts_of):
    value = facts_of(seed)[fact]
    band = OCT_2025_BANDS[fact]
    assert band.holds(value), f"{fact} = {value} at seed {seed}, {ACCOUNTS} accounts: outside {band.text}"
