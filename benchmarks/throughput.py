"""Throughput of perpsim: the EVM ceiling, the health screen, and oct-2025 in both modes at each
population, with the ratios that say how close a chain run is to the ceiling, and whether the two
modes' summaries agree at each population. Prints figures and ratios in one run; asserts nothing.

    make bench                                  (1,000 and 10,000 accounts, both modes)
    make bench ARGS="--accounts 1000 --repeat 3" (medians of three runs)
    make bench ARGS="--calm-accounts 100000"     (adds calm, 3,600 steps, in the model)
    make bench ARGS="--no-cached"                (skips the reruns with the opened book cached)
    make bench ARGS="--sweep-only --sweep-runs 200" (the sweep alone: 200 runs on 1 and 2 workers)

The sweep measurement (default 20 runs; 0 skips it) runs the same Monte Carlo sweep of oct-2025
at 1,000 accounts in the model twice: in this process (1 worker) and on a Dask LocalCluster of 2
worker processes (cluster start included), and prints runs per minute and the parallel efficiency
(runs/min on 2 workers over twice the runs/min on 1).

oct-2025 runs with `population.reference_accounts=1000`: every population samples the same
exchange (the built-in's books), so 10,000 accounts is the same event as 1,000, ten times finer.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from threadpoolctl import threadpool_limits

from simulator.toolchain import PROJECT_ROOT

os.environ["PERPSIM_ANVIL_NO_TRACING"] = "1"
os.chdir(PROJECT_ROOT)

REFERENCE_ACCOUNTS = 1000
CEILING_TRADERS = 5000
CEILING_BLOCK = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="1000,10000", help="oct-2025 populations, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (medians are printed)")
    parser.add_argument("--modes", default="chain,model", help="chain, model or both")
    parser.add_argument("--calm-accounts", type=int, default=0, help="also run calm (3,600 steps) in the model")
    parser.add_argument("--no-cached", action="store_true",
                        help="skip the reruns whose opened book comes from the book cache")
    parser.add_argument("--sweep-runs", type=int, default=20,
                        help="model runs of oct-2025 (1,000 accounts) in the sweep measurement, 0 to skip")
    parser.add_argument("--sweep-workers", default="1,2", help="worker counts the sweep is measured with")
    parser.add_argument("--sweep-only", action="store_true", help="measure the sweep only")
    args = parser.parse_args()
    populations = [int(n) for n in args.accounts.split(",")]
    modes = args.modes.split(",")

    rows: list[tuple[str, str]] = []
    if args.sweep_runs:
        rows += measure_sweep(args.sweep_runs, [int(n) for n in args.sweep_workers.split(",")])
    if args.sweep_only:
        _print(rows)
        return
    ceiling = None
    if "chain" in modes:
        ceiling, evm_only = measure_ceiling()
        rows.append((f"ceiling: blocks of {CEILING_BLOCK} openPosition, sent, mined and read (median of "
                     f"{CEILING_TRADERS // CEILING_BLOCK})", f"{ceiling:,.0f} tx/s"))
        rows.append(("  ... mining alone (evm_mine: the EVM executing them)", f"{evm_only:,.0f} tx/s"))
    screen_ms, screened = measure_screen(max(populations))
    rows.append((f"health screen of {screened:,} accounts (position index, float64)", f"{screen_ms:.2f} ms"))

    for n in populations:
        summaries = {}
        for mode in modes:
            runs = [run_oct(n, mode) for _ in range(args.repeat)]
            wall = statistics.median(r["wall"] for r in runs)
            label = f"oct-2025, {n:,} accounts, {mode}"
            s = summaries[mode] = runs[0]["summary"]
            report = statistics.median(r["report"] for r in runs)
            rows.append((label, f"{wall:,.1f} s, the report's {report:,.1f} s included  ({s['liquidations']:,} "
                                f"liquidations, {s['adl_fills']:,} ADL fills, {s['steps']:,} steps)"))
            if mode == "chain":
                sent = runs[0]["sent"]
                at_ceiling = sent / ceiling
                rows.append(("  transactions sent / at the ceiling / wall over that",
                             f"{sent:,} / {at_ceiling:,.1f} s / {wall / at_ceiling:,.1f}x"))
                rows.append(("  peak memory: perpsim + anvils", f"{runs[0]['rss_mb']:,.0f} MB"))
                rows.append(("  accounts read back by the index / confirmed exactly",
                             f"{runs[0]['rows_read']:,} / {runs[0]['confirmed']:,}"))
            else:
                rows.append(("  account-steps per second (the run without its report)",
                             f"{n * s['steps'] / (wall - report):,.0f}"))
            if not args.no_cached:
                with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / ".cache") as books:
                    run_oct(n, mode, Path(books))  # opens the book and stores it (not timed)
                    cached = [run_oct(n, mode, Path(books)) for _ in range(args.repeat)]
                assert all(r["book_cache"] == "hit" for r in cached)
                rows.append(("  rerun with the opened book from the cache",
                             f"{statistics.median(r['wall'] for r in cached):,.1f} s"))
        if len(summaries) == 2:
            rows.append((f"  chain and model, {n:,} accounts: the same summary (timing aside)", _agreement(*summaries.values())))
    if args.calm_accounts:
        runs = [run_scenario_model("calm", args.calm_accounts, {}) for _ in range(args.repeat)]
        wall = statistics.median(r["wall"] for r in runs)
        report = statistics.median(r["report"] for r in runs)
        steps = runs[0]["summary"]["steps"]
        rows.append((f"calm, {args.calm_accounts:,} accounts, model", f"{wall:,.1f} s, the report's {report:,.1f} s "
                     f"included  ({args.calm_accounts * steps / (wall - report):,.0f} account-steps/s without it)"))
        if not args.no_cached:
            with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / ".cache") as books:
                run_scenario_model("calm", args.calm_accounts, {}, Path(books))  # opens and stores (not timed)
                cached = [run_scenario_model("calm", args.calm_accounts, {}, Path(books)) for _ in range(args.repeat)]
            assert all(r["book_cache"] == "hit" for r in cached)
            wall = statistics.median(r["wall"] for r in cached)
            report = statistics.median(r["report"] for r in cached)
            rows.append(("  rerun with the opened book from the cache",
                         f"{wall:,.1f} s ({args.calm_accounts * steps / (wall - report):,.0f} account-steps/s "
                         "without the report)"))

    _print(rows)


def _agreement(first: dict, second: dict) -> str:
    """"yes", or the fields in which two runs' summaries differ (the modes must agree to the wei)."""
    keys = sorted((set(first) | set(second)) - {"mode", "wall_seconds"})
    differ = [key for key in keys if first.get(key) != second.get(key)]
    return "yes" if not differ else "NO: " + ", ".join(differ)


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"{'measurement':<{width}}  figure")
    for label, figure in rows:
        print(f"{label:<{width}}  {figure}")


def measure_sweep(runs: int, worker_counts: list[int]) -> list[tuple[str, str]]:
    """The same sweep (oct-2025, 1,000 accounts, model, `runs` paths) on each worker count; the
    tables must come out the same."""
    from simulator.sweep import TIMING_COLUMNS, plan_sweep, run_sweep

    variants = plan_sweep(oct_scenario(REFERENCE_ACCOUNTS, "model"), {"markets.*.policy": ["ADL"]}, seeds=runs)
    rows, rates, tables = [], {}, {}
    scratch_root = PROJECT_ROOT / ".cache"
    scratch_root.mkdir(exist_ok=True)
    for workers in worker_counts:
        with tempfile.TemporaryDirectory(dir=scratch_root, prefix="bench-sweep-") as scratch:
            started, own = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            result = run_sweep(variants, Path(scratch), workers=workers, resume=False)
            wall = time.perf_counter() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
            own_cpu = used.ru_utime + used.ru_stime - own.ru_utime - own.ru_stime
        if result.not_completed:
            raise SystemExit(f"bench: {result.not_completed} sweep runs did not complete: {result.failed[:1]}")
        rates[workers] = runs / wall * 60
        tables[workers] = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in result.rows]
        run_median = statistics.median(row["wall_seconds"] for row in result.rows)
        where = "this process" if workers == 1 else f"LocalCluster of {workers}, start included"
        rows.append((f"sweep: {runs} runs of oct-2025, 1,000 accounts, model, {workers} worker(s) ({where})",
                     f"{wall:,.1f} s  ({rates[workers]:,.1f} runs/min; median run {run_median:.2f} s)"))
        if workers > 1:  # what the sweep's own process (scheduler, tables, progress) took from the cores
            rows.append(("  CPU of the sweep's own process (Dask scheduler, tables, files)",
                         f"{own_cpu:,.1f} s ({own_cpu / wall:.0%} of a core)"))
    if 1 in rates:
        for workers in worker_counts:
            if workers > 1:
                rows.append((f"  parallel efficiency on {workers} workers (runs/min over {workers}x the 1-worker rate)",
                             f"{rates[workers] / (workers * rates[1]):.0%}"))
    same = all(table == tables[worker_counts[0]] for table in tables.values())
    rows.append(("  tables identical whatever the number of workers", "yes" if same else "NO"))
    return rows


def measure_ceiling() -> tuple[float, float]:
    """Transactions per second of batched blocks of `openPosition` on a run's devnet: whole blocks
    (sent, mined, read back) and their mining alone."""
    from simulator.chain.rpc import Tx
    from simulator.chain.session import devnet
    from simulator.chain.deploy import MarketSpec
    from simulator.exchange import MAX_UINT, BookSeed, TraderSeed
    from simulator.runner import trader_address
    from simulator.units import usdc, wad

    with devnet([MarketSpec("BTC", 100_000), MarketSpec("ETH", 4_000)]) as exchange:
        traders = [TraderSeed(trader_address(7, i), usdc(10_000), {}) for i in range(CEILING_TRADERS)]
        exchange.open_book(BookSeed(traders, usdc(500_000_000), usdc(100_000)), exchange.timestamp + 1)
        txs = [Tx(t.address, "engine", "openPosition", (i % 2, wad("0.01") if i % 2 == 0 else wad("-0.2"), MAX_UINT if i % 2 == 0 else 0))
               for i, t in enumerate(traders)]
        chain, mined = exchange.chain, []
        mine = chain.mine

        def timed_mine(timestamp=None):
            began = time.perf_counter()
            mine(timestamp)
            mined.append(time.perf_counter() - began)

        chain.mine = timed_mine
        clock, rates = exchange.timestamp, []
        for start in range(0, len(txs), CEILING_BLOCK):
            clock += 1
            began = time.perf_counter()
            results = chain.transact(txs[start : start + CEILING_BLOCK], timestamp=clock)
            rates.append(len(results) / (time.perf_counter() - began))
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        chain.mine = mine
        return statistics.median(rates), CEILING_BLOCK / statistics.median(mined)


def measure_screen(accounts: int) -> tuple[float, int]:
    """Median time of one screen of an opened oct-2025 book in the model."""
    from simulator.model.exchange import ModelExchange
    from simulator.position_index import PositionIndex
    from simulator.runner import opening_book

    scenario = oct_scenario(accounts, "model")
    exchange = ModelExchange(scenario.market_specs())
    book, _, _ = opening_book(scenario, scenario.seed, accounts)
    exchange.open_book(book, exchange.timestamp + 1)
    index = PositionIndex(exchange, len(scenario.markets), exchange.vault_id)
    index.bootstrap(exchange.account_ids())
    snapshot = exchange.snapshot()
    times = []
    with threadpool_limits(limits=1, user_api="blas"):  # as in a run (simulator/runner.py)
        for _ in range(50):
            began = time.perf_counter()
            scan = index.screen(snapshot, exchange.timestamp)
            times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times), len(scan.ids)


def oct_scenario(accounts: int, mode: str):
    from simulator.scenarios import load_scenario, with_overrides, with_settings

    scenario = with_settings(load_scenario("oct-2025"), {"population.reference_accounts": REFERENCE_ACCOUNTS})
    return with_overrides(scenario, accounts=accounts, mode=mode)


def run_oct(accounts: int, mode: str, books: Path | None = None) -> dict:
    """oct-2025 at `accounts`; with `books`, through a cache of opened books in that folder."""
    if mode == "model":
        return run_scenario_model("oct-2025", accounts, {"population.reference_accounts": REFERENCE_ACCOUNTS}, books)
    from simulator.book_cache import BookCache
    from simulator.chain.session import devnet
    from simulator.runner import run_scenario

    seen: dict = {}

    @contextmanager
    def chain(s):
        with devnet(s.market_specs()) as exchange:
            seen["exchange"] = exchange
            yield exchange
            seen["rss_mb"] = _resident_mb()

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = run_scenario(oct_scenario(accounts, "chain"), Path(scratch), chain,
                              book_cache=BookCache(books) if books else None)
        wall = time.perf_counter() - started
    _check(result.summary)
    return {"wall": wall, "report": result.counters["report_seconds"], "summary": result.summary,
            "sent": seen["exchange"].chain.sent,
            "rss_mb": seen["rss_mb"], "rows_read": result.counters["index_rows_read"],
            "confirmed": result.counters["index_confirmed"], "book_cache": result.counters.get("book_cache")}


def run_scenario_model(name: str, accounts: int, settings: dict, books: Path | None = None) -> dict:
    from simulator.book_cache import BookCache
    from simulator.model.exchange import ModelExchange
    from simulator.runner import run_scenario
    from simulator.scenarios import load_scenario, with_overrides, with_settings

    scenario = with_overrides(with_settings(load_scenario(name), settings) if settings else load_scenario(name),
                              accounts=accounts, mode="model")

    @contextmanager
    def model(s):
        yield ModelExchange(s.market_specs())

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = run_scenario(scenario, Path(scratch), model, book_cache=BookCache(books) if books else None)
        wall = time.perf_counter() - started
    _check(result.summary)
    return {"wall": wall, "report": result.counters["report_seconds"], "summary": result.summary,
            "book_cache": result.counters.get("book_cache")}


def _check(summary: dict) -> None:
    if summary["status"] != "completed":
        raise SystemExit(f"bench: a run {summary['status']}: {summary.get('error')}")


def _resident_mb() -> float:
    """Peak resident memory of this process and its children (the anvils), in MB."""
    pids = [os.getpid()] + [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


if __name__ == "__main__":
    main()
