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
from sha3 import keccak_256
from threadpoolctl import threadpool_limits

from simulator.agents.keepers import Keepers
from simulator.agents.traders import WARNING_MULTIPLE, Entry, TraderAccount, TraderAgents
from simulator.book_cache import BookCache, StaleEntry
from simulator.errors import SIGNAL_WORDS, PerpsimError, interrupt_signal
from simulator.exchange import BookSeed, Deleverage, Exchange, PushPrice, SetDepth, SetupReport, Snapshot, TraderSeed
from simulator.facts import crash_window
from simulator.market.external import ExternalMarket
from simulator.market.oracle_agent import OracleAgent
from simulator.market.paths import generate_fundamental_paths, sample_shocks
from simulator.metrics import Metrics
from simulator.position_index import PositionIndex
from simulator.population import generate_momentum, population_for_scenario, size_vault_and_insurance_fund
from simulator.report import OutputError, RunWriter, render_report
from simulator.scenarios.errors import ScenarioError
from simulator.scenarios.schema import MAX_PRICE, MIN_PRICE, Scenario
from simulator.units import WAD, oracle_answer

# A depth change smaller than this fraction is not sent (market makers requote, not every tick).
DEPTH_TOLERANCE = 0.005
# Keepers rescan at least this often even when no price moved (funding moves health slowly).
RESCAN_EVERY = 60


class RunStopped(PerpsimError, RuntimeError):
    """A run that cannot go on for a reason in its scenario (not a crash)."""


@dataclass
class RunResult:
    out_dir: Path
    summary: dict
    report: Path | None
    # What the run asked of the exchange beyond its transactions (for benchmarks).
    counters: dict = field(default_factory=dict)
    # The signal that interrupted the run (2 SIGINT, 15 SIGTERM), if one did.
    signal: int | None = None


def trader_address(seed: int, index: int) -> str:
    """A trader's address: the last 20 bytes of keccak("perpsim-trader-<seed>-<index>"), EIP-55
    checksummed (a letter is upper case where the keccak of the lower-case hex has a nibble >= 8)."""
    raw = keccak_256(f"perpsim-trader-{seed}-{index}".encode()).digest()[12:].hex()
    nibbles = keccak_256(raw.encode()).hexdigest()
    return "0x" + "".join(c.upper() if n >= "8" else c for c, n in zip(raw, nibbles))


def opening_book(scenario: Scenario, seed: int, accounts: int) -> tuple[BookSeed, list[TraderAccount], list[Entry]]:
    """The population as accounts to open (sizes at the initial prices, collateral in tokens), and
    the positions opened during the run (the whale, momentum traders) by accounts funded now."""
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
    # Accounts that open during the run: funded now, their positions opened by the trader agents.
    entries = []
    whale = scenario.agents.whale
    if whale is not None:
        address = trader_address(seed, 10**9)
        market = scenario.market_index(whale.market)
        traders.append(TraderSeed(address, int(whale.notional * float(scenario.markets[market].imr) * 2 * 10**6), {}))
        entries.append(Entry(address, market, -whale.notional if whale.side == "short" else whale.notional, whale.step))
    momentum = scenario.agents.momentum
    if momentum is not None:
        group = generate_momentum(momentum, scenario.population, scenario.markets, population.n_accounts, seed)
        for i in range(group.n_accounts):
            address = trader_address(seed, 10**9 + 1 + i)
            traders.append(TraderSeed(address, int(round(group.collateral_usd[i] * 10**6)), {}))
            entries.append(Entry(address, int(group.market[i]), float(group.notional_usd[i]), int(group.step[i])))
    book = BookSeed(
        traders=traders,
        vault_collateral=int(round(funds.vault_collateral_usd * 10**6)),
        insurance_fund=int(round(funds.insurance_fund_usd * 10**6)),
    )
    return book, agents, entries


def _answer(scenario: Scenario, step: int, market: int, price: float) -> int:
    """The oracle answer of a price to push; RunStopped when the contracts cannot represent it
    (an external price driven out of range by the impact of liquidations)."""
    if not MIN_PRICE <= price <= MAX_PRICE:
        raise RunStopped(f"at step {step}, market {scenario.market_names[market]}'s external price is {price:.4g} USD, "
                         f"outside what the oracle can report ({MIN_PRICE:g} to {MAX_PRICE:.4g} USD)")
    return oracle_answer(price)


def check_price_paths(scenario: Scenario, max_steps: int | None = None, paths=None) -> None:
    """Every price the run's fundamental paths reach (with the oracle's wick) must be one the
    contracts can represent (simulator/scenarios/schema.py MIN_PRICE, MAX_PRICE): ScenarioError
    naming the market, the first step that leaves the range and the price. `paths`: the run's
    (else generated from the scenario's seed, as the run generates them)."""
    if paths is None:
        sampled, _ = sample_shocks(scenario, scenario.seed)
        paths = generate_fundamental_paths(sampled, seed=scenario.seed)
    steps = min(scenario.steps, max_steps) if max_steps else scenario.steps
    prices = np.array(paths.prices[:steps], dtype=float)
    wick = scenario.oracle.wick
    if wick is not None:
        prices[wick.step:wick.end_step, scenario.market_index(wick.market)] *= 1 + wick.move
    for m, name in enumerate(scenario.market_names):
        column = prices[:, m]
        bad = np.flatnonzero(~((column >= MIN_PRICE) & (column <= MAX_PRICE)))
        if bad.size:
            step, price = int(bad[0]), float(column[bad[0]])
            bound = (f"below the oracle's resolution ({MIN_PRICE:g} USD: 8 decimals)" if not price > MAX_PRICE
                     else f"above the oracle router's MAX_PRICE ({MAX_PRICE:.4g} USD)")
            raise ScenarioError(f"market {name}'s price reaches {price:.4g} USD at step {step}, {bound} "
                                f"(seed {scenario.seed})", source=scenario.source or scenario.name,
                                key_path=f"price_paths.{name}" if name in scenario.price_paths else None)


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


def _event_extras(results, index: PositionIndex, snapshot: Snapshot, timestamp: int, vault_id: int,
                  vault_before) -> Callable[[str, dict], dict] | None:
    """The fields the metrics add to a block's logged events (metrics.EXTRA_FIELDS), from the
    index's rows as they stood before the block (it reads the block's changes only at its next
    refresh) at the oracle prices of the block: an account's value before the block's fills, and
    an ADL counterparty's realised profit on what it gave up (its position's closed part at the
    ADL price against its average entry price)."""
    named = [args["accountId"] for result in results for name, args in result.events
             if name in ("Liquidation", "Deleveraged")]
    if not named:
        return None
    values = index.values_before(named, snapshot, timestamp)

    def extra(name: str, args: dict) -> dict:
        if name != "AdlFill":
            return {"accountValueBefore": values.get(args["accountId"])}
        counterparty, market = args["counterpartyId"], args["marketId"]
        if counterparty == vault_id:
            position = (vault_before[2][market], vault_before[3][market]) if vault_before else None
        else:
            position = index.position_before(counterparty, market)
        if not position or position[0] == 0:
            return {"counterpartyPnl": None, "counterpartyUpnl": None}
        size, open_notional = (int(x) for x in position)
        closed = abs(args["size"])
        sign = 1 if size > 0 else -1
        return {"counterpartyPnl": sign * closed * args["price"] // WAD - open_notional * closed // abs(size),
                "counterpartyUpnl": size * args["oraclePrice"] // WAD - open_notional}

    return extra


# numpy's BLAS (OpenBLAS) hands every matrix product to a thread per core. A run's products are
# small (accounts x markets: the health screen) and thousands of them: waking the threads costs
# more than the product (the screen at 10,000 accounts, with other work on the machine: 2.1 ms a
# step on both cores, 0.6 ms on one), and its spinning threads take the cores a sweep's other
# workers or anvil need. One thread for the run, restored after.
@threadpool_limits.wrap(limits=1, user_api="blas")
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
    files are written (no plots, no report.html: `perpsim report` renders them later).

    The data files are written as the run goes (simulator/report.py RunWriter): every
    FLUSH_SECONDS the new rows and events are appended and summary.json rewritten with
    `"status": "running"`, so a run killed without a word (kill -9) leaves its steps up to the
    last flush. An output folder that cannot be written is an OutputError before anything runs."""
    started = time.perf_counter()
    seed, accounts = scenario.seed, scenario.account_count
    steps = min(scenario.steps, max_steps) if max_steps else scenario.steps
    metrics = Metrics(market_names=scenario.market_names)
    final: Snapshot | None = None
    index: PositionIndex | None = None
    status, error, setup_extra = "completed", None, {}
    stopped_by = None
    completed_steps = 0
    writer = RunWriter(out_dir, metrics)
    writer.write_scenario(scenario.model_dump_json(indent=2) + "\n")

    def summarise(status: str, error: str | None = None) -> dict:
        return metrics.summary(
            scenario=scenario.name, seed=seed, mode=scenario.mode, accounts=accounts, steps=completed_steps,
            final=final, wall_seconds=time.perf_counter() - started, status=status, error=error, extra=setup_extra,
        )

    try:
        writer.flush(summarise("running"))
        sampled, shocks = sample_shocks(scenario, seed)
        if shocks:  # the shock sizes this run drew (a scenario whose targets are distributions)
            setup_extra["shocks"] = shocks
        setup_extra["step_seconds"] = scenario.step_seconds
        setup_extra["crash_window"] = crash_window(sampled)  # for `perpsim facts`
        paths = generate_fundamental_paths(sampled, seed=seed)
        check_price_paths(scenario, steps, paths)
        external = ExternalMarket.from_scenario(scenario)
        oracle = OracleAgent.from_scenario(scenario)
        book, trader_accounts, entries = opening_book(scenario, seed, accounts)
        settings = scenario.agents.keepers
        keepers = Keepers.for_markets(scenario.market_specs(), settings.leg_order, settings.account_order,
                                      settings.max_adl_counterparties)
        traders = TraderAgents(scenario, trader_accounts, entries, seed)
        with _opened_exchange(exchange_factory, scenario, book, book_cache) as (exchange, report):
            setup_extra.update({
                "positions_opened": report.positions_opened,
                "positions_rejected": len(report.positions_rejected),
            })
            if report.positions_rejected and not report.positions_opened:
                _address, market, reason = report.positions_rejected[0]
                raise RunStopped(
                    f"every opening position was rejected ({len(report.positions_rejected)}), e.g. in "
                    f"{scenario.market_names[market]}: {reason}; check the markets' prices and the population's sizes")
            clock = exchange.timestamp
            final = exchange.snapshot()
            metrics.insurance_fund_start = final.insurance_fund
            metrics.vault_value_start = final.vault_value
            writer.flush(summarise("running"))  # the book is open
            depths = list(final.depth2pct)
            index = PositionIndex(exchange, len(scenario.markets), exchange.vault_id)
            index.bootstrap(exchange.account_ids())
            scan = index.screen(final, exchange.timestamp)
            at_risk = index.at_risk(scan, WARNING_MULTIPLE)  # per market, for the report
            latency = scenario.agents.keepers.latency_steps
            # Keeper plans waiting for their block: (step they land in, actions), in step order.
            keeper_queue = deque([(latency - 1, keepers.plan(exchange, scan, final, index))])
            last_flow = (None, None)  # last step's liquidation and taker flow, fed back into the external market
            for step in range(steps):
                timestamp = clock + (step + 1) * scenario.step_seconds
                fundamentals = paths.prices[step]
                market = external.step(step, fundamentals, *last_flow)
                actions = [PushPrice(m, _answer(scenario, step, m, price)) for m, price in oracle.step(step, market.prices)]
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
                # The vault has no row in the index: its position before the block, for the profit
                # of the ADL fills it takes as a counterparty.
                vault_before = (exchange.account_states([exchange.vault_id])
                                if any(isinstance(a, Deleverage) for a in actions) else None)
                results = exchange.execute(actions, timestamp) if actions else []
                index.apply(results)
                acted = bool(results)
                # A refused price (breaker, staleness) can clear with time alone: read it again
                # every step until it does, so the series shows when, and the keepers rescan then.
                refused = any(final.price_status)
                if acted or refused:
                    final = exchange.snapshot()
                extra = _event_extras(results, index, final, timestamp, exchange.vault_id, vault_before)
                flow = metrics.record_results(step, results, extra)
                last_flow = flow["signed_notional"], flow["taker_signed_notional"]
                cleared = refused and not any(final.price_status)
                if acted or cleared or step % RESCAN_EVERY == 0:
                    scan = index.screen(final, exchange.timestamp)
                    at_risk = index.at_risk(scan, WARNING_MULTIPLE)
                    if check_index:
                        index.check(scan)
                    keeper_queue.append((step + latency, keepers.plan(exchange, scan, final, index)))
                metrics.record_step(step, fundamentals, market, final, flow, at_risk)
                completed_steps = step + 1
                if writer.due():
                    writer.flush(summarise("running"))
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
    except (KeyboardInterrupt, SystemExit) as exc:
        # Ape's SIGINT and SIGTERM handlers raise SystemExit, not KeyboardInterrupt: both stop us.
        stopped_by = interrupt_signal(exc)
        status, error = "interrupted", SIGNAL_WORDS[stopped_by]
    except Exception as exc:  # keep what was computed; the traceback goes into the summary
        status, error = "failed", "".join(traceback.format_exception_only(type(exc), exc)).strip()
        setup_extra["traceback"] = traceback.format_exc()
    summary = summarise(status, error)
    try:
        writer.close(summary)
    except OSError as exc:
        raise OutputError(out_dir, f"{exc.strerror or exc} (the run {status} after {completed_steps} steps)") from None
    report_path, rendering = None, 0.0
    # An interrupt can land after a step's row is recorded but before the step counts as completed:
    # the report charts completed steps only.
    if metrics.series and completed_steps and render:
        began = time.perf_counter()
        report_path = render_report(out_dir)
        rendering = time.perf_counter() - began
    counters = {"index_rows_read": index.rows_read, "index_confirmed": index.confirmed} if index else {}
    counters["report_seconds"] = rendering
    if book_cache is not None:
        counters["book_cache"] = book_cache.outcome
    return RunResult(out_dir=out_dir, summary=summary, report=report_path, counters=counters, signal=stopped_by)
