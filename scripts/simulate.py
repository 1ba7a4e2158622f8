"""Run a scenario against the contracts on the connected network (the same run as `perpsim run`).

    ape run simulate --scenario oct-2025 --accounts 200
    UPSTREAM_RPC=http://127.0.0.1:8545 ape run simulate --network ethereum:upstream:node   # your devnet

On your own devnet the contracts are deployed afresh and the run mines blocks there."""

import os
from contextlib import contextmanager
from pathlib import Path

import click
from ape import accounts, project
from ape.cli import ConnectedProviderCommand

from simulator.chain.deploy import deploy_system
from simulator.chain.exchange import ChainExchange
from simulator.report import default_run_folder
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides

# An anvil Ape starts for this script runs without step tracing (ten times faster blocks).
os.environ.setdefault("PERPSIM_ANVIL_NO_TRACING", "1")


@click.command(cls=ConnectedProviderCommand)
@click.option("--scenario", default="oct-2025", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--accounts", "n_accounts", type=int, default=None)
@click.option("--steps", type=int, default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def cli(provider, scenario, seed, n_accounts, steps, out):
    loaded = with_overrides(load_scenario(scenario), seed=seed, accounts=n_accounts, mode="chain")
    # Not perpsim run's folder: this run is on the connected network, not a fresh devnet.
    out = (out or default_run_folder(loaded, steps, mode=f"ape-{provider.network.name}")).resolve()

    @contextmanager
    def connected_exchange(s):
        system = deploy_system(project, accounts.test_accounts[0], accounts.test_accounts[9], s.market_specs(),
                               vault_collateral_usd=0)
        exchange = ChainExchange(system, provider.uri)
        try:
            yield exchange
        finally:
            exchange.close()

    result = run_scenario(loaded, out, connected_exchange, max_steps=steps)
    for key in ("status", "liquidations", "liquidated_notional_usd", "insurance_fund_end_usd", "bad_debt_usd",
                "adl_fills", "adl_notional_usd", "wall_seconds"):
        click.echo(f"{key:<26}{result.summary[key]}")
    click.echo(f"report: {result.report}")
