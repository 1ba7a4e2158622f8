"""Gas used by every public contract function, measured on a fresh anvil.

    ape run gas            (or: make gas)

Each state-changing function runs at least once in a realistic state (deposits, trades, a
liquidation, an ADL, a socialised loss); views are measured with eth_estimateGas. Prints one
table, sorted by contract and function."""

from collections import defaultdict

import click
from ape import accounts, chain, project
from ape.logging import logger
from ape.cli import ConnectedProviderCommand
from rich.console import Console
from rich.table import Table

from simulator.chain.deploy import BadDebtPolicy, MarketSpec, deploy_system
from simulator.units import oracle_answer, usdc, wad

MAX = 2**256 - 1
WAD = 10**18


@click.command(cls=ConnectedProviderCommand)
def cli(provider):
    logger.set_level("WARNING")  # one line per transaction would bury the table
    used: dict[tuple[str, str], list[int]] = defaultdict(list)

    def tx(contract, name, *args, sender):
        receipt = getattr(contract, name)(*args, sender=sender)
        used[(contract.contract_type.name, name)].append(receipt.gas_used)
        return receipt

    def view(contract, name, *args):
        calldata = getattr(contract, name).encode_input(*args)
        gas = provider.web3.eth.estimate_gas({"to": contract.address, "data": calldata, "from": deployer.address})
        used[(contract.contract_type.name, f"{name} (view)")].append(gas)

    deployer, alice, bob, carol, dave, keeper, erin, frank, vault = (
        accounts.test_accounts[i] for i in (0, 1, 2, 3, 4, 5, 6, 7, 9)
    )
    markets = [
        MarketSpec("BTC", 100_000, depth2pct=10_000_000, max_funding_rate="0.000001", skew_scale=100,
                   max_deviation="0.5", cooldown=60),
        MarketSpec("ETH", 4_000, depth2pct=5_000_000, policy=BadDebtPolicy.SOCIALIZE),
    ]
    system = deploy_system(project, deployer, vault, markets, insurance_fund_usd=1_000)
    engine, liquidator, router, token = system.engine, system.liquidator, system.router, system.usdc
    feed = system.feeds[0]
    for contract in (token, router, engine, liquidator, feed):
        used[(contract.contract_type.name, "constructor")].append(provider.get_receipt(contract.txn_hash).gas_used)

    # Administration, on top of what deploy_system did.
    spec = markets[1]
    tx(engine, "createMarket", b"SOL".ljust(32, b"\0"), spec.params(), sender=deployer)
    tx(router, "setMarket", 2, system.feeds[1], 3600, 0, 0, sender=deployer)
    tx(engine, "setMarketParams", 2, spec.params(), sender=deployer)
    tx(engine, "setTiers", 2, [0, wad(1_000_000)], [wad(spec.mmr), wad("0.1")], sender=deployer)
    tx(engine, "setRole", engine.OPERATOR_ROLE(), keeper, True, sender=deployer)
    tx(engine, "setVault", vault, sender=deployer)
    tx(liquidator, "setLiquidationParams", 2, spec.liquidation_params(), sender=deployer)
    for contract in (engine, router, liquidator):
        tx(contract, "transferOwnership", deployer, sender=deployer)
        tx(contract, "acceptOwnership", sender=deployer)

    for who, dollars in ((alice, 10_000), (bob, 5_000), (carol, 50_000), (dave, 200_000), (erin, 4_000), (frank, 4_000)):
        tx(token, "mint", who, usdc(dollars), sender=deployer)
        tx(token, "approve", engine, MAX, sender=who)
        tx(engine, "deposit", usdc(dollars), sender=who)
    tx(token, "mint", deployer, usdc(1_001), sender=deployer)
    tx(token, "approve", engine, MAX, sender=deployer)
    tx(engine, "depositFor", dave, usdc(500), sender=deployer)
    tx(engine, "depositInsurance", usdc(500), sender=deployer)
    tx(token, "transfer", bob, 1, sender=deployer)
    tx(token, "approve", carol, 10, sender=bob)
    tx(token, "transferFrom", bob, carol, 1, sender=carol)

    tx(engine, "settleMatchedFill", alice, bob, 0, WAD // 2, wad(100_000), sender=deployer)
    tx(engine, "settleMatchedFill", alice, carol, 0, WAD // 2, wad(100_000), sender=deployer)
    tx(engine, "openPosition", 1, wad(10), MAX, sender=dave)
    tx(engine, "openPosition", 1, -wad(5), 0, sender=dave)
    tx(engine, "transferMargin", 1, wad(20_000), sender=dave)
    tx(engine, "openIsolatedPosition", 1, wad(20), MAX, sender=dave)
    tx(engine, "openPosition", 1, wad(9), MAX, sender=erin)
    tx(engine, "openPosition", 1, wad(9), MAX, sender=frank)
    tx(engine, "withdraw", usdc(100), sender=dave)
    chain.pending_timestamp += 600
    tx(engine, "accrueFunding", 0, sender=keeper)
    tx(engine, "settleFunding", int(alice.address, 16), 0, sender=keeper)
    tx(engine, "setDepth", 1, wad(4_000_000), sender=deployer)

    for name, args in (
        ("accountValue", (alice,)), ("maintenanceMargin", (alice,)), ("initialMargin", (alice,)),
        ("isLiquidatable", (alice,)), ("getPosition", (alice, 0)), ("health", (int(alice.address, 16),)),
        ("healthRange", (0, 100)), ("marketViews", ()), ("quote", (0, WAD)), ("balanceSheet", ()),
        ("bankruptcyPrice", (alice, 0)),
    ):
        view(engine, name, *args)
    view(router, "price", 0)

    # Oracle: a submit and an update that trips the breaker, then one after the cooldown.
    tx(feed, "submit", oracle_answer(85_000), sender=deployer)
    tx(router, "update", 0, sender=keeper)
    chain.pending_timestamp += 61
    tx(router, "update", 0, sender=keeper)
    tx(router, "setBreaker", 0, wad("0.5"), 60, sender=deployer)
    tx(feed, "setUpdater", keeper, True, sender=deployer)
    view(liquidator, "adlRanking", 0, WAD)
    view(liquidator, "adlRequired", int(alice.address, 16), 0)
    # Keeper views over many accounts: the traders' cross accounts in both markets.
    ids = [int(who.address, 16) for who in (alice, bob, carol, dave, erin, frank)]
    view(liquidator, "adlRequiredMany", ids * 2, [0] * 6 + [1] * 6)
    view(liquidator, "positionSizes", ids, 0)
    view(liquidator, "marketMasksAndReserves", ids)
    view(liquidator, "unrealizedPnls", ids * 2, [0] * 6 + [1] * 6)

    # ADL: alice is $5,000 under water with a $1,000 fund.
    ranking, _ = liquidator.adlRanking(0, WAD)
    tx(liquidator, "deleverage", alice, 0, list(ranking), sender=keeper)

    # Liquidations with socialised losses: ETH drops 30% under dave's isolated long and erin's
    # 10x cross long.
    system.set_price(1, 2_800)
    tx(liquidator, "liquidateIsolated", dave, 1, MAX, sender=keeper)
    tx(liquidator, "liquidate", erin, 1, MAX, sender=keeper)
    tx(liquidator, "liquidateAccount", int(frank.address, 16), 1, MAX, sender=keeper)

    table = Table(
        title="Gas per public function (anvil, solc 0.8.37, optimizer 200 runs)",
        caption="Transactions: gas used from receipts. Views: eth_estimateGas, which includes the 21,000 base cost.",
    )
    for column in ("contract", "function", "calls", "min", "max", "mean"):
        table.add_column(column, justify="right" if column in ("calls", "min", "max", "mean") else "left")
    for (contract, name), gas in sorted(used.items()):
        table.add_row(contract, name, str(len(gas)), f"{min(gas):,}", f"{max(gas):,}", f"{sum(gas) // len(gas):,}")
    Console(width=120).print(table)
