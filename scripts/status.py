"""Print the state of a perpsim deployment: markets, insurance fund, bad debt, accounts at risk.

    UPSTREAM_RPC=http://127.0.0.1:8545 ape run status --network ethereum:upstream:node"""

import click
from ape.cli import ConnectedProviderCommand

from simulator.chain import deployment_file

WAD = 10**18


@click.command(cls=ConnectedProviderCommand)
def cli(provider):
    system, names = deployment_file.connect()
    engine, router = system.engine, system.router
    prices, status = router.prices(list(range(len(names))))
    for market, name in enumerate(names):
        view = engine.marketView(market)
        click.echo(f"{name:<5} price ${prices[market] / WAD:>12,.2f} (status {status[market]})  "
                   f"long OI {view.longOpenInterest / WAD:,.4f}  short OI {view.shortOpenInterest / WAD:,.4f}  "
                   f"vault {view.vaultSize / WAD:,.4f}  depth ${view.depth2pct / WAD:,.0f}")
    click.echo(f"insurance fund ${engine.insuranceFund() / WAD:,.2f}   bad debt ${engine.badDebt() / WAD:,.2f}")
    if any(status):
        click.echo("health is unknown while a price is unusable")
        return
    ids, values, mms = engine.healthRange(0, engine.accountCount())
    vault_id = int(system.vault.address, 16)
    for account_id, value, mm in zip(ids, values, mms):
        if account_id == vault_id or mm == 0:
            continue
        flag = "LIQUIDATABLE" if value < mm else ""
        click.echo(f"account {account_id:#x}  value ${value / WAD:,.2f}  maintenance ${mm / WAD:,.2f}  {flag}")
