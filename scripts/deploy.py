"""Deploy perpsim on the connected network, open a small demonstration book, and print it.

    ape run deploy                                                    # a fresh anvil, stopped afterwards
    UPSTREAM_RPC=http://127.0.0.1:8545 ape run deploy --network ethereum:upstream:node   # a devnet you keep running

The addresses are saved in deployments/ so `ape run shock` and `ape run status` find them later."""

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from simulator.chain import deployment_file
from simulator.chain.deploy import BadDebtPolicy, MarketSpec, deploy_system
from simulator.units import wad

MARKETS = [
    MarketSpec("BTC", 100_000, depth2pct=10_000_000),
    MarketSpec("ETH", 4_000, depth2pct=5_000_000, policy=BadDebtPolicy.SOCIALIZE),
]


@click.command(cls=ConnectedProviderCommand)
@click.option("--insurance", default=50_000, show_default=True, help="Insurance fund in USD.")
def cli(provider, insurance):
    deployer, vault = accounts.test_accounts[0], accounts.test_accounts[9]
    system = deploy_system(project, deployer, vault, MARKETS, vault_collateral_usd=10_000_000,
                           insurance_fund_usd=insurance)
    # A demonstration book: four traders from 2x to 10x, long and short.
    for index, (dollars, market, size) in enumerate(
        [(10_000, 0, "0.9"), (50_000, 0, "-1"), (20_000, 1, "25"), (5_000, 1, "12")], start=1
    ):
        trader = accounts.test_accounts[index]
        system.fund(trader, dollars)
        limit = 2**256 - 1 if not size.startswith("-") else 0
        system.engine.openPosition(market, wad(size), limit, sender=trader)
    saved = deployment_file.save(chain.blocks[0].hash.hex(), system, MARKETS)
    click.echo(f"network   {provider.network.choice} (chain id {provider.chain_id}, block {chain.blocks.height})")
    for name in ("usdc", "router", "engine", "liquidator"):
        click.echo(f"{name:<11}{getattr(system, name).address}")
    for spec, feed in zip(MARKETS, system.feeds):
        click.echo(f"feed {spec.name:<5}{feed.address}  price ${spec.price:,}  policy {spec.policy.name}")
    click.echo(f"insurance ${system.engine.insuranceFund() / 1e18:,.2f}")
    for index in range(1, 5):
        trader = accounts.test_accounts[index]
        value = system.engine.accountValue(trader) / 1e18
        margin = system.engine.maintenanceMargin(trader) / 1e18
        click.echo(f"trader {index}  {trader.address}  value ${value:,.2f}  maintenance ${margin:,.2f}")
    click.echo(f"saved     {saved}")
