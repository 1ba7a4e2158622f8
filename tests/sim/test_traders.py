"""Trader agents: the positions opened during a run (the whale, momentum traders) open at their
step, at the external price, and wait out an exchange-API outage."""

from __future__ import annotations

import numpy as np

from simulator.agents.traders import Entry, TraderAgents, uniform_pairs
from simulator.exchange import Trade
from simulator.scenarios import scenario_from_dict
from simulator.units import WAD
from tests.sim.conftest import base_scenario


def _agents(entries):
    return TraderAgents(scenario_from_dict(base_scenario()), [], entries, seed=0)


def test_plan_opens_each_entry_at_its_step_at_the_external_price():
    agents = _agents([Entry("0xB", 1, 8_000.0, 3), Entry("0xA", 0, -1_000_000.0, 2)])
    prices = [100_000.0, 4_000.0, 200.0]
    assert agents.plan(1, None, None, prices) == []
    assert agents.plan(2, None, None, prices) == [Trade("0xA", 0, -10 * WAD)]
    assert agents.plan(3, None, None, prices) == [Trade("0xB", 1, 2 * WAD)]
    assert agents.plan(4, None, None, prices) == []


def test_plan_keeps_an_entry_that_falls_in_an_api_outage_for_its_end():
    """Nothing reaches the exchange during an outage: the entries of steps 2 and 3 open together at
    step 5, when it has ended, at that step's price, in their order."""
    agents = _agents([Entry("0xA", 0, -1_000_000.0, 2), Entry("0xB", 0, -500_000.0, 3)])
    for step in (2, 3, 4):
        assert agents.plan(step, None, None, [100_000.0, 4_000.0, 200.0], api_outage=True) == []
    assert agents.plan(5, None, None, [125_000.0, 4_000.0, 200.0]) == [Trade("0xA", 0, -8 * WAD),
                                                                      Trade("0xB", 0, -4 * WAD)]


def test_uniform_pairs_are_the_generators_doubles():
    """The traders' draws from raw outputs are numpy's `Generator.random` doubles, bit for bit, in
    the same stream (calls of several sizes interleave as one sequence)."""
    raw = np.random.PCG64(np.random.SeedSequence(7, spawn_key=(3,)))
    generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence(7, spawn_key=(3,))))
    for n in (1, 5, 10_000, 3):
        assert np.array_equal(uniform_pairs(raw, n), generator.random((n, 2)))
