"""Throughput of the simulator's chain path: batched JSON-RPC against one call at a time, and a
whole scenario in chain mode against model mode. Prints figures and ratios; asserts nothing.

    make bench                   (or: .venv/bin/python benchmarks/throughput.py --accounts 500)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from simulator.toolchain import PROJECT_ROOT

os.environ["PERPSIM_ANVIL_NO_TRACING"] = "1"
os.chdir(PROJECT_ROOT)


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500, help="accounts in the micro-benchmarks")
    parser.add_argument("--run-accounts", type=int, default=200, help="accounts in the scenario runs")
    args = parser.parse_args()

    from ape import accounts, networks, project
    from ape.logging import logger

    from simulator.chain.deploy import MarketSpec, deploy_system
    from simulator.chain.exchange import ChainExchange
    from simulator.chain.rpc import Call
    from simulator.exchange import BookSeed, PushPrice, TraderSeed
    from simulator.model.exchange import ModelExchange
    from simulator.runner import run_scenario, trader_address
    from simulator.scenarios import load_scenario, with_overrides
    from simulator.units import oracle_answer, usdc, wad

    logger.set_level("ERROR")
    n = args.accounts
    rows: list[tuple[str, float, str]] = []
    with networks.parse_network_choice("ethereum:local:foundry") as provider:
        markets = [MarketSpec("BTC", 100_000), MarketSpec("ETH", 4_000)]
        system = deploy_system(project, accounts.test_accounts[0], accounts.test_accounts[9], markets,
                               vault_collateral_usd=0)
        exchange = ChainExchange(system, provider.uri)
        traders = [TraderSeed(trader_address(7, i), usdc(10_000), {0: wad("0.02"), 1: wad("-0.5")}) for i in range(n)]
        seconds, _ = timed(lambda: exchange.open_book(BookSeed(traders, usdc(50_000_000), usdc(100_000)),
                                                       exchange.timestamp + 1))
        rows.append((f"open a book of {n} accounts ({2 * n} positions, {3 * n} transactions)", seconds, f"{3 * n / seconds:,.0f} tx/s"))

        batched, scan = timed(exchange.scan)
        rows.append((f"health scan of {len(scan.ids)} accounts, batched healthRange", batched, f"{len(scan.ids) / batched:,.0f} accounts/s"))
        ids = scan.ids[:200]
        single, _ = timed(lambda: [exchange.chain.call([Call("engine", "health", (i,))]) for i in ids])
        rows.append(("  ... one eth_call per account (200 accounts)", single, f"{len(ids) / single:,.0f} accounts/s"))
        ape_calls, _ = timed(lambda: [system.engine.health(i) for i in ids[:50]])
        rows.append(("  ... one Ape call per account (50 accounts)", ape_calls, f"{50 / ape_calls:,.0f} accounts/s"))

        pairs = [(i, m) for i in scan.ids for m in (0, 1)]
        views, _ = timed(lambda: (exchange.adl_required(pairs), exchange.positions(scan.ids, 0),
                                  exchange.open_markets(scan.ids)))
        rows.append((f"keeper questions on {len(scan.ids)} accounts, many-account views", views,
                     f"{len(scan.ids) / views:,.0f} accounts/s"))
        per_account, _ = timed(lambda: exchange.chain.call(
            [Call("liquidator", "adlRequired", pair) for pair in pairs]
            + [Call("engine", "positionOf", (i, 0)) for i in scan.ids]
            + [Call("engine", "marketMaskOf", (i,)) for i in scan.ids]))
        rows.append(("  ... one eth_call per question, batched", per_account, f"{len(scan.ids) / per_account:,.0f} accounts/s"))

        pushes = [PushPrice(m, oracle_answer(price)) for m, price in ((0, 99_000), (1, 3_990))] * 100
        batch_tx, _ = timed(lambda: exchange.execute(pushes, exchange.timestamp + 1))
        tx_count = 2 * len(pushes)
        rows.append((f"{tx_count} oracle transactions in one batched block", batch_tx, f"{tx_count / batch_tx:,.0f} tx/s"))
        feed = system.feeds[0]
        exchange.chain.request("evm_setAutomine", [True])
        ape_tx, _ = timed(lambda: [feed.submit(oracle_answer(98_000 + i), sender=system.deployer) for i in range(50)])
        rows.append(("  ... 50 Ape transactions one at a time (automine)", ape_tx, f"{50 / ape_tx:,.0f} tx/s"))
        exchange.chain.request("evm_setAutomine", [False])
        exchange.close()

    scenario = with_overrides(load_scenario("oct-2025"), accounts=args.run_accounts)
    with tempfile.TemporaryDirectory() as scratch:

        @contextmanager
        def model(s):
            yield ModelExchange(s.market_specs())

        from simulator.chain.session import devnet

        @contextmanager
        def chain(s):
            with devnet(s.market_specs()) as ex:
                yield ex

        chain_run = run_scenario(scenario, Path(scratch) / "chain", chain).summary
        model_run = run_scenario(with_overrides(scenario, mode="model"), Path(scratch) / "model", model).summary
    rows.append((f"oct-2025, {args.run_accounts} accounts, chain mode ({chain_run['liquidations']} liquidations)",
                 chain_run["wall_seconds"], f"{scenario.steps / chain_run['wall_seconds']:,.0f} steps/s"))
    rows.append((f"oct-2025, {args.run_accounts} accounts, model mode ({model_run['liquidations']} liquidations)",
                 model_run["wall_seconds"], f"{scenario.steps / model_run['wall_seconds']:,.0f} steps/s"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'seconds':>9}  rate")
    for label, seconds, rate in rows:
        print(f"{label:<{width}}  {seconds:>9.3f}  {rate}")
    print()
    print(f"batched scan vs one eth_call per account: {(single / len(ids)) / (batched / len(scan.ids)):,.1f}x faster")
    print(f"batched scan vs one Ape call per account: {(ape_calls / 50) / (batched / len(scan.ids)):,.1f}x faster")
    print(f"many-account keeper views vs one eth_call per question: {per_account / views:,.1f}x faster")
    print(f"batched transactions vs Ape one at a time: {(ape_tx / 50) / (batch_tx / tx_count):,.1f}x faster")
    print(f"model mode vs chain mode on oct-2025: {chain_run['wall_seconds'] / model_run['wall_seconds']:,.1f}x faster")


if __name__ == "__main__":
    main()
