"""The run loop: one scenario, one seed, one mode (chain or model), from the opening book to the
outputs. Each step: fundamentals -> external market (with last step's liquidation flow) -> oracle
pushes, depth changes, trader and keeper actions as one block -> events -> the position index
(accounts the events name are read back) -> its health screen -> keepers' and traders' plans ->
metrics."""

from __future__ import annotations

import time
import traceback
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from eth_hash.auto import keccak

from simulator.agents.keepers import Keepers
from simulator.agents.traders import TraderAccount, TraderAgents
from simulator.book_cache import BookCache, StaleEntry
from simulator.errors import PerpsimError
from simulator.exchange import BookSeed, Exchange, PushPrice, SetDepth, SetupReport, Snapshot, TraderSeed
from simulator.market.external import ExternalMarket
from simulator.market.oracle_agent import OracleAgent
from simulator.market.paths import generate_fundamental_paths, sample_shocks
from simulator.metrics import Metrics
from simulator.position_index import PositionIndex
from simulator.population import population_for_scenario, size_vault_and_insurance_fund
from simulator.report import render_report, write_data
from simulator.scenarios.schema import Scenario
from simulator.units import WAD, oracle_answer

# A depth change smaller than this fraction is not sent (market makers requote, not every tick).
DEPTH_TOLERANCE = 0.005
# Keepers rescan at least this often even when no price moved (funding moves health slowly).
RESCAN_EVERY = 60


@dataclass
class RunResult:
    out_dir: Path
    summary: dict
    report: Path | None
    # What the run asked of the exchange beyond its transactions (for benchmarks).
    counters: dict = field(default_factory=dict)


def trader_address(seed: int, index: int) -> str:
    """A trader's address: the last 20 bytes of keccak("perpsim-trader-<seed>-<index>"), EIP-55
    checksummed (a letter is upper case where the keccak of the lower-case hex has a nibble >= 8)."""
    raw = keccak(f"perpsim-trader-{seed}-{index}".encode())[12:].hex()
    nibbles = keccak(raw.encode()).hex()
    return "0x" + "".join(c.upper() if n >= "8" else c for c, n in zip(raw, nibbles))


def opening_book(scenario: Scenario, seed: int, accounts: int) -> tuple[BookSeed, list[TraderAccount], str | None]:
    """The population as accounts to open: sizes at the initial prices, collateral in tokens."""
    population = population_for_scenario(scenario, seed=seed, accounts=accounts)
    funds = size_vault_and_insurance_fund(population, scenario.population, scenario.markets)
    prices = [m.price for m in scenario.markets]
    sizes = population.sizes(prices)
    traders, agents = [], []
    for i in range(population.n_accounts):
        address = trader_address(seed, i)
        positions = {m: int(round(sizes[i, m] * WAD)) for m in range(len(prices)) if sizes[i, m] != 0}
        collateral = int(round(population.collateral_usd[i] * 10**6))
        isolated = next(iter(positions)) if population.isolated[i] and positions else None
        traders.append(TraderSeed(address, collateral, positions, isolated_market=isolated))
        account_id = int(address, 16) | ((isolated + 1) << 160 if isolated is not None else 0)
        agents.append(TraderAccount(address, account_id, isolated, collateral * 10**12))
    whale_address = None
    whale = scenario.agents.whale
    if whale is not None:
        whale_address = trader_address(seed, 10**9)
        imr = scenario.market(whale.market).imr
        traders.append(TraderSeed(whale_address, int(whale.notional * float(imr) * 2 * 10**6), {}))
    book = BookSeed(
        traders=traders,
        vault_collateral=int(round(funds.vault_collateral_usd * 10**6)),
        insurance_fund=int(round(funds.insurance_fund_usd * 10**6)),
    )
    return book, agents, whale_address


@contextmanager
def _opened_exchange(factory, scenario: Scenario, book: BookSeed,
                     cache: BookCache | None) -> Iterator[tuple[Exchange, SetupReport]]:
    """An exchange from `factory` with the book opened in its first blocks; through `cache` when
    given. A cache entry that fails to load or verify may leave a half-loaded exchange: that one
    is closed and the book opened on a fresh one (the entry is replaced)."""
    with ExitStack() as stack:
        exchange = stack.enter_context(factory(scenario))
        if cache is None:
            report = exchange.open_book(book, exchange.timestamp + 1)
        else:
            try:
                report = cache.open_book(exchange, scenario.market_specs(), book, exchange.timestamp + 1)
            except StaleEntry:
                stack.close()
                exchange = stack.enter_context(factory(scenario))
                report = cache.open_book(exchange, scenario.market_specs(), book, exchange.timestamp + 1)
        yield exchange, report


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    exchange_factory: Callable[[Scenario], "contextmanager[Exchange]"],
    progress: Callable[[int, int], None] | None = None,
    max_steps: int | None = None,
    check_index: bool = False,
    book_cache: BookCache | None = None,
    render: bool = True,
) -> RunResult:
    """Runs `scenario` (seed, accounts and mode already applied) and writes its outputs; with
    `max_steps`, only the scenario's first steps. Whatever was computed before an error is written
    too, with the error in summary.json. With `check_index` (tests), the position index is
    reconciled with the exchange after every step and each screen's liquidatable accounts are
    compared with an exact scan of every account. With `book_cache`, the opened book is loaded
    from it when it holds this one, and stored in it when not. Without `render`, only the data
    files are written (no plots, no report.html: `perpsim report` renders them later)."""
    started = time.perf_counter()
    seed, accounts = scenario.seed, scenario.account_count
    steps = min(scenario.steps, max_steps) if max_steps else scenario.steps
    metrics = Metrics(market_names=scenario.market_names)
    final: Snapshot | None = None
    index: PositionIndex | None = None
    status, error, setup_extra = "completed", None, {}
    completed_steps = 0
    try:
        sampled, shocks = sample_shocks(scenario, seed)
        if shocks:  # the shock sizes this run drew (a scenario whose targets are distributions)
            setup_extra["shocks"] = shocks
        paths = generate_fundamental_paths(sampled, seed=seed)
        external = ExternalMarket.from_scenario(scenario)
        oracle = OracleAgent.from_scenario(scenario)
        book, trader_accounts, whale_address = opening_book(scenario, seed, accounts)
        keepers = Keepers([spec.ranking for spec in scenario.market_specs()], scenario.agents.keepers.leg_order)
        traders = TraderAgents(scenario, trader_accounts, whale_address, seed)
        with _opened_exchange(exchange_factory, scenario, book, book_cache) as (exchange, report):
            setup_extra.update({
                "positions_opened": report.positions_opened,
                "positions_rejected": len(report.positions_rejected),
            })
            clock = exchange.timestamp
            final = exchange.snapshot()
            metrics.insurance_fund_start = final.insurance_fund
            metrics.vault_value_start = final.vault_value
            depths = list(final.depth2pct)
            index = PositionIndex(exchange, len(scenario.markets), exchange.vault_id)
            index.bootstrap(exchange.account_ids())
            scan = index.screen(final, exchange.timestamp)
            latency = scenario.agents.keepers.latency_steps
            # Keeper plans waiting for their block: (step they land in, actions), in step order.
            keeper_queue = deque([(latency - 1, keepers.plan(exchange, scan, final.insurance_fund, index))])
            last_flow = (None, None)  # last step's liquidation and taker flow, fed back into the external market
            for step in range(steps):
                timestamp = clock + (step + 1) * scenario.step_seconds
                fundamentals = paths.prices[step]
                market = external.step(step, fundamentals, *last_flow)
                actions = [PushPrice(m, oracle_answer(price)) for m, price in oracle.step(step, market.prices)]
                for m, depth in enumerate(market.depth2pct):
                    target = int(depth * WAD)
                    if depths[m] == 0 or abs(target - depths[m]) > DEPTH_TOLERANCE * depths[m]:
                        actions.append(SetDepth(m, target))
                        depths[m] = target
                # Keepers first: their bots are faster than traders' clicks.
                while keeper_queue and keeper_queue[0][0] <= step:
                    actions += keeper_queue.popleft()[1]
                api_outage = any(state.name == "OUTAGE" for state in market.maker_states)
                actions += traders.plan(step, exchange, scan, list(market.prices), api_outage, index)
                results = exchange.execute(actions, timestamp) if actions else []
                index.apply(results)
                flow = metrics.record_results(step, results)
                last_flow = flow["signed_notional"], flow["taker_signed_notional"]
                acted = bool(results)
                # A refused price (breaker, staleness) can clear with time alone: read it again
                # every step until it does, so the series shows when, and the keepers rescan then.
                refused = any(final.price_status)
                if acted or refused:
                    final = exchange.snapshot()
                cleared = refused and not any(final.price_status)
                if acted or cleared or step % RESCAN_EVERY == 0:
                    scan = index.screen(final, exchange.timestamp)
                    if check_index:
                        index.check(scan)
                    keeper_queue.append((step + latency, keepers.plan(exchange, scan, final.insurance_fund, index)))
                metrics.record_step(step, fundamentals, market, final, flow)
                completed_steps = step + 1
                if progress:
                    progress(step + 1, steps)
            final = exchange.snapshot()
            sheet = exchange.balance_sheet()
            index.reconcile()  # the index followed every change: an error names what it missed
            setup_extra["keeper_liquidations_held"] = keepers.held
            setup_extra["tokens_usd"] = sheet[0] / WAD
            setup_extra["claims_usd"] = sheet[1] / WAD
    except PerpsimError as exc:
        status, error = "failed", exc.user_message
    except (KeyboardInterrupt, SystemExit):
        # Ape's SIGINT handler raises SystemExit, not KeyboardInterrupt: both mean the user stopped us.
        status, error = "interrupted", "interrupted by the user"
    except Exception as exc:  # keep what was computed; the traceback goes into the summary
        status, error = "failed", "".join(traceback.format_exception_only(type(exc), exc)).strip()
        setup_extra["traceback"] = traceback.format_exc()
    summary = metrics.summary(
        scenario=scenario.name, seed=seed, mode=scenario.mode, accounts=accounts, steps=completed_steps,
        final=final, wall_seconds=time.perf_counter() - started, status=status, error=error, extra=setup_extra,
    )
    write_data(out_dir, metrics, summary)
    report_path = None
    if metrics.series and render:
        report_path = render_report(out_dir)
    counters = {"index_rows_read": index.rows_read, "index_confirmed": index.confirmed} if index else {}
    if book_cache is not None:
        counters["book_cache"] = book_cache.outcome
    return RunResult(out_dir=out_dir, summary=summary, report=report_path, counters=counters)
