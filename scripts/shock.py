"""Move one market's oracle price on a perpsim deployment, then run the keepers and print what
they did: liquidations, insurance-fund payments, bad debt, ADL.

    ape run shock --market BTC --move -0.15                      # deploys on a fresh anvil first
    UPSTREAM_RPC=http://127.0.0.1:8545 ape run shock --market BTC --move -0.15 --network ethereum:upstream:node"""

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from simulator.chain import deployment_file
from simulator.chain.keeper import run_keepers

WAD = 10**18


@click.command(cls=ConnectedProviderCommand)
@click.option("--market", default="BTC", show_default=True, help="Market name.")
@click.option("--move", type=float, required=True, help="Relative price move, e.g. -0.15.")
def cli(provider, market, move):
    try:
        system, names = deployment_file.connect()
    except deployment_file.DeploymentNotFound:
        click.echo("no deployment on this chain yet: deploying the demonstration set-up first")
        from scripts import deploy  # noqa: F401  (ape adds the scripts folder to the path)

        raise SystemExit("run `ape run deploy` with the same --network, then this command")
    if market not in names:
        raise click.BadParameter(f"unknown market {market!r}; markets: {', '.join(names)}", param_hint="--market")
    market_id = names.index(market)
    engine, liquidator = system.engine, system.liquidator
    before = engine.insuranceFund(), engine.badDebt()
    price = system.router.price(market_id) / WAD
    new_price = round(price * (1 + move), 8)
    start = chain.blocks.height
    system.set_price(market_id, new_price)
    click.echo(f"{market}: ${price:,.2f} -> ${new_price:,.2f} ({move:+.1%})")
    report = run_keepers(system, accounts.test_accounts[8])
    for log in liquidator.Liquidation.range(start, chain.blocks.height + 1):
        click.echo(f"liquidated {log.accountId:#x} size {log.sizeClosed / WAD:,.4f} at ${log.fillPrice / WAD:,.2f} "
                   f"penalty ${log.penalty / WAD:,.2f} fund paid ${log.fundPaid / WAD:,.2f} bad debt ${log.badDebt / WAD:,.2f}")
    for log in liquidator.AdlFill.range(start, chain.blocks.height + 1):
        click.echo(f"ADL {log.accountId:#x} against {log.counterpartyId:#x} size {log.size / WAD:,.4f} at ${log.price / WAD:,.2f}")
    for account_id, market_id_, reason in report.stalled:
        click.echo(f"stalled {account_id:#x} in {names[market_id_]}: {reason}")
    after = engine.insuranceFund(), engine.badDebt()
    click.echo(f"insurance fund ${before[0] / WAD:,.2f} -> ${after[0] / WAD:,.2f}; "
               f"bad debt ${before[1] / WAD:,.2f} -> ${after[1] / WAD:,.2f}")
