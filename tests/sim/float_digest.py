"""A digest of every float a run derives from its scenario before the contracts see it: each
built-in's fundamental paths, its population at 1,000 accounts, and its external market stepped
through every step with a liquidation flow. `python -m tests.sim.float_digest` prints it, so a test
can compare it with the digest of a process whose numpy runs other CPU code (tests/sim/test_paths.py)."""

from __future__ import annotations

import hashlib

import numpy as np

from simulator.market.external import ExternalMarket
from simulator.market.paths import generate_fundamental_paths, sample_shocks
from simulator.population import population_for_scenario
from simulator.scenarios import list_scenarios, load_scenario


def float_digest() -> str:
    digest = hashlib.sha256()
    for info in list_scenarios():
        scenario, _ = sample_shocks(load_scenario(info.name), 0)
        paths = generate_fundamental_paths(scenario, seed=0)
        digest.update(np.ascontiguousarray(paths.prices).tobytes())
        population = population_for_scenario(scenario, seed=0, accounts=1000)
        digest.update(population.sizes([m.price for m in scenario.markets]).tobytes())
        digest.update(population.collateral_usd.tobytes())
        external = ExternalMarket.from_scenario(scenario)
        flow = np.zeros(len(scenario.markets))
        for step in range(scenario.steps):
            snapshot = external.step(step, paths.prices[step], flow)
            digest.update(snapshot.prices.tobytes() + snapshot.depth2pct.tobytes())
            # A sale of a twentieth of the book every third step: the residual impact moves.
            flow = np.where(step % 3 == 0, snapshot.depth2pct / 20, 0.0)
    return digest.hexdigest()


if __name__ == "__main__":
    print(float_digest())
