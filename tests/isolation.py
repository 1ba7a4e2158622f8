"""Chain snapshots around test code that must not leak state: Ape isolates each test, but not the
examples hypothesis runs inside one test, nor the steps of a helper called several times.

Ape 0.8.51's `chain.isolate()` swallows every exception raised inside it (`except Exception: pass`),
so a failing assertion inside it passes. `isolated` snapshots, runs, re-raises and restores."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def isolated(chain):
    """Runs the block on a snapshot of `chain` and reverts to it afterwards, errors included (which
    propagate); the pending timestamp is put back too, as `chain.isolate()` does."""
    snapshot = chain.snapshot()
    pending = chain.pending_timestamp
    try:
        yield
    finally:
        chain.restore(snapshot)
        chain.pending_timestamp = pending


def isolated_chain_exchanges(project, accounts, chain, networks):
    """An exchange factory for `run_scenario` inside the test session's anvil: each run deploys the
    scenario's markets on a snapshot, which is reverted afterwards."""
    from simulator.chain.deploy import deploy_system
    from simulator.chain.exchange import ChainExchange

    @contextmanager
    def factory(scenario):
        with isolated(chain):
            system = deploy_system(project, accounts[0], accounts[9], scenario.market_specs(), vault_collateral_usd=0)
            exchange = ChainExchange(system, networks.provider.uri)
            try:
                yield exchange
            finally:
                exchange.close()

    return factory
