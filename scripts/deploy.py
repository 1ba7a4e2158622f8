"""Deploy the perpsim contracts on the connected network and print what was done.

    ape run deploy                                   # a fresh anvil, stopped afterwards
    ape run deploy --network ethereum:local:foundry
"""

import click
from ape import accounts, project
from ape.cli import ConnectedProviderCommand


@click.command(cls=ConnectedProviderCommand)
def cli(provider):
    deployer = accounts.test_accounts[0]
    trader = accounts.test_accounts[1]
    click.echo(f"network:  {provider.network.choice} (chain id {provider.chain_id})")
    click.echo(f"deployer: {deployer.address}")

    usdc = deployer.deploy(project.MockUSDC)
    receipt = usdc.mint(trader, 10_000 * 10**6, sender=deployer)
    click.echo(f"MockUSDC deployed at {usdc.address} ({usdc.decimals()} decimals)")
    click.echo(
        f"minted {usdc.balanceOf(trader) / 10**6:,.2f} USDC to {trader.address} "
        f"in block {receipt.block_number} (gas {receipt.gas_used:,})"
    )
