"""The `perpsim` command line."""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import click

from simulator import __version__, toolchain
from simulator.errors import SIGNAL_WORDS, Interrupted, PerpsimError, Terminated, interrupt_signal

DEFAULT_SCENARIO = "oct-2025"


@click.group()
@click.version_option(__version__, prog_name="perpsim")
def cli() -> None:
    """Stress-test perpetual-futures exchanges against real contracts on anvil."""


@cli.command()
def doctor() -> None:
    """Check the offline toolchain: compiler stand-in and anvil wrapper."""
    click.echo(f"compiler: {toolchain.check_compiler()}")
    click.echo(f"anvil:    {toolchain.check_anvil()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios."""
    from simulator.scenarios import list_scenarios

    found = list_scenarios()
    if as_json:
        click.echo(json.dumps([{"name": s.name, "description": s.description} for s in found], indent=2))
        return
    width = max((len(info.name) for info in found), default=0)
    for info in found:
        click.echo(f"{info.name:<{width}}  {info.description}")


@cli.command()
@click.argument("scenario", default=DEFAULT_SCENARIO)
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--accounts", type=click.IntRange(min=1), default=None, help="Trader accounts (default: the scenario's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Run only the first N steps.")
@click.option("--mode", type=click.Choice(["chain", "model"]), default=None, help="chain: contracts on anvil; model: the numpy model.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: runs/<scenario>-<mode>-seed<seed>-<N>accounts, with -<N>steps "
                   "and -set<hash> when --steps or --set are given).")
@click.option("--set", "settings", multiple=True, metavar="KEY.PATH=VALUE", callback=lambda _c, _p, v: _settings(v),
              help="Change a setting by its dotted key path in the scenario file, e.g. "
                   "population.reference_accounts=1000 (repeatable; the value is read as YAML).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of a table.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--no-cache", is_flag=True,
              help="Open the book anew instead of loading it from the checkout's cache of opened books (.cache/books).")
def run(scenario, seed, accounts, steps, mode, out_dir, settings, as_json, no_progress, no_cache) -> None:
    """Run SCENARIO (a built-in name or a YAML file; default oct-2025) and write its report."""
    from simulator.book_cache import BookCache
    from simulator.report import default_run_folder, writable_folder
    from simulator.runner import check_price_paths, run_scenario
    from simulator.scenarios import load_scenario, with_overrides, with_settings

    loaded = load_scenario(scenario)
    if settings:
        loaded = with_settings(loaded, settings, source="--set")
    loaded = with_overrides(loaded, seed=seed, accounts=accounts, mode=mode)
    if loaded.sweep is not None:  # checked here too, not only by perpsim sweep
        from simulator.sweep import plan_sweep

        plan_sweep(loaded, seeds=1)
    check_price_paths(loaded, max_steps=steps)
    out_dir = writable_folder((out_dir or default_run_folder(loaded, steps, settings)).resolve())
    factory = _chain_exchange if loaded.mode == "chain" else _model_exchange
    cache = None if no_cache else BookCache()
    previous = signal.signal(signal.SIGTERM, _terminate)  # `kill` stops the run as Ctrl-C does, and says so
    try:
        if as_json or no_progress:
            result = run_scenario(loaded, out_dir, factory, max_steps=steps, book_cache=cache)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn(f"{loaded.name} ({loaded.mode}, {loaded.account_count} accounts)"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task("run", total=min(loaded.steps, steps or loaded.steps))
                result = run_scenario(loaded, out_dir, factory,
                                      progress=lambda done, _: bar.update(task, completed=done),
                                      max_steps=steps, book_cache=cache)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
    else:
        _print_summary(result.summary)
        click.echo(f"\nreport: {result.report or '(none: no step completed)'}")
        click.echo(f"data:   {result.out_dir}")
        if cache is not None and cache.outcome:
            click.echo(f"book:   {BOOK_CACHE_OUTCOMES[cache.outcome]} (--no-cache opens it anew)")
    summary = result.summary
    if result.signal is not None:
        raise Interrupted(f"the run was {summary.get('error')} after {summary['steps']} steps "
                          f"(what was computed is in {result.out_dir})", result.signal)
    if summary["status"] != "completed":
        raise PerpsimError(f"the run {summary['status']} after {summary['steps']} steps: {summary.get('error')} "
                           f"(what was computed is in {result.out_dir})")


@cli.command()
@click.argument("scenario", default=DEFAULT_SCENARIO)
@click.option("--vary", "vary", multiple=True, metavar="KEY.PATH=V1,V2",
              help="A setting to vary, by its dotted key path in the scenario file (repeatable; "
                   "every combination runs). Default: the scenario's sweep: section.")
@click.option("--paths", "--seeds", "seeds", type=click.IntRange(min=1), default=None,
              help="Price paths (seeds) per combination, counted up from the scenario's seed: the same paths "
                   "for every combination (default: the sweep section's seeds, else 1).")
@click.option("--seed", type=int, default=None, help="First seed (default: the scenario's).")
@click.option("--accounts", type=click.IntRange(min=1), default=None, help="Trader accounts (default: the scenario's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Run only the first N steps.")
@click.option("--mode", type=click.Choice(["chain", "model"]), default=None,
              help="model: the numpy model (fast); chain: contracts on anvil, one devnet per run "
                   "(default: the sweep section's, else model).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of a Dask LocalCluster on this machine, one thread each "
                   "(default: one per core; 1 runs in this process).")
@click.option("--scheduler", envvar="PERPSIM_SCHEDULER", default=None, metavar="tcp://HOST:PORT",
              help="Send the runs to an existing Dask cluster (also PERPSIM_SCHEDULER) instead.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip runs already completed in the output folder with the same content key.")
@click.option("--run-reports", is_flag=True, help="Render each run's report.html too (about 1.5 s a run).")
@click.option("--no-cache", is_flag=True,
              help="Open every run's book anew instead of loading it from the cache of opened books (.cache/books).")
@click.option("--set", "settings", multiple=True, metavar="KEY.PATH=VALUE", callback=lambda _c, _p, v: _settings(v),
              help="Change a setting of every run, as perpsim run --set (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: runs/sweep-<scenario>-<mode>).")
@click.option("--json", "as_json", is_flag=True, help="Print sweep.json instead of a table.")
def sweep(scenario, vary, seeds, seed, accounts, steps, mode, workers, scheduler, resume, run_reports, no_cache,
          settings, out_dir, as_json) -> None:
    """Run SCENARIO over a grid of settings and price paths, in parallel; report the risk figures
    of each combination (sweep.csv, sweep.json), every run (runs.csv, runs.parquet), sweep.png,
    and each run's data in its folder. The exit status is the number of runs that did not
    complete (at most 100)."""
    import os
    import signal

    from simulator.report import writable_folder
    from simulator.scenarios import load_scenario, with_overrides, with_settings
    from simulator.sweep import SweepFailed, parse_vary, plan_sweep, run_sweep

    loaded = load_scenario(scenario)
    if settings:
        loaded = with_settings(loaded, settings, source="--set")
    loaded = with_overrides(loaded, seed=seed, accounts=accounts)
    grid = dict(parse_vary(option) for option in vary)
    variants = plan_sweep(loaded, grid or None, seeds, mode)
    mode = variants[0].scenario.mode
    out_dir = writable_folder((out_dir or Path("runs") / f"sweep-{loaded.name}-{mode}").resolve())
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    options = dict(max_steps=steps, workers=workers, scheduler=scheduler, resume=resume, run_reports=run_reports,
                   book_cache=not no_cache)
    # `kill` (SIGTERM) stops the sweep as Ctrl-C does: tables written, workers and anvils stopped.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if as_json:
            result = run_sweep(variants, out_dir, **options)
        else:
            result = _sweep_with_progress(variants, out_dir, f"{loaded.name} ({mode})", options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo((out_dir / "sweep.json").read_text())
    else:
        if len(result.rows) <= 24:
            _print_sweep(result.rows)
        _print_risk(result.combinations)
        resumed = f" ({result.resumed} resumed from an earlier sweep)" if result.resumed else ""
        click.echo(f"\n{len(result.rows)} of {result.planned} runs finished{resumed}\n"
                   f"report: {out_dir / 'report.html'}\nrisk:   {out_dir / 'sweep.csv'}\n"
                   f"runs:   {out_dir / 'runs.csv'} (and runs.parquet)\nplot:   {out_dir / 'sweep.png'}\n"
                   f"data:   {out_dir}/<run>/")
    stopped = [row for row in result.rows if row["status"] == "interrupted"]
    if stopped:  # a run in this process saw the signal and the sweep stopped after it
        words = stopped[0].get("error") or SIGNAL_WORDS[2]
        signum = next((number for number, text in SIGNAL_WORDS.items() if text == words), 2)
        raise Interrupted(f"the sweep was {words}: {len(result.rows) - len(result.failed)} of {result.planned} "
                          f"runs completed (results so far are in {out_dir}; run the same command again to run only "
                          "the rest)", signum)
    if result.not_completed:
        failed = ", ".join(f"{row['run']} ({row['status']}: {row.get('error')})" for row in result.failed[:5])
        more = f" and {len(result.failed) - 5} more" if len(result.failed) > 5 else ""
        raise SweepFailed(f"{result.not_completed} of {result.planned} runs did not complete"
                          f"{'; failed: ' + failed + more if failed else ''} (results so far are in {out_dir}; "
                          "run the same command again to run only those)", result.not_completed)


def _terminate(_signum, _frame) -> None:
    raise Terminated


def _sweep_with_progress(variants, out_dir, title, options):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from simulator.sweep import run_sweep

    with Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed, {task.fields[running]} running"), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("sweep", total=len(variants), failed=0, running=0)
        resumed = [0]

        def show(status):
            if not resumed[0] and status.resumed:  # runs resumed are done already: keep them out of the ETA
                resumed[0] = status.resumed
                bar.reset(task, total=status.total - status.resumed, failed=0, running=0)
            bar.update(task, completed=status.done - resumed[0], failed=status.failed, running=status.running)

        return run_sweep(variants, out_dir, progress=show, **options)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Render report.html of a run folder again from its data files (also of a run that did not
    finish: its steps up to the last flush), or of a sweep folder from its sweep.json."""
    from simulator.report import read_run, render_report, unfinished_note

    if (run_dir / "sweep.json").is_file() and not (run_dir / "summary.json").is_file():
        from simulator.sweep_report import render_sweep_report

        click.echo(render_sweep_report(run_dir.resolve()))
        return
    path = render_report(run_dir.resolve())
    note = unfinished_note(read_run(run_dir.resolve())[0])
    if note:
        click.echo(f"note: {note}", err=True)
    click.echo(path)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--window", default=None, metavar="START:END",
              help="The crash window in steps (default: the run's crash_window, the steepest falling "
                   "scripted leg; else the whole run).")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def facts(run_dirs, window, as_json) -> None:
    """The stylized facts of one or more run folders, against the bands of 10 Oct 2025
    (docs/calibration.md): where the liquidation wave falls, long share, ADL / liquidated, first
    ADL delay, ADL'd winners' profit, lowest BTC and SOL, accounts underwater before the waterfall."""
    from simulator.facts import FactsError, compute_facts, fact_rows

    bounds = None
    if window is not None:
        start, sep, end = window.partition(":")
        try:
            bounds = (int(start), int(end))
        except ValueError:
            raise click.BadParameter(f"{window!r}: expected START:END in steps, e.g. 1800:2400",
                                     param_hint="--window") from None
        if not sep or bounds[0] >= bounds[1]:
            raise click.BadParameter(f"{window!r}: expected START:END with START < END", param_hint="--window")
    results = {}
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise FactsError(run_dir, "no such run folder")
        results[str(run_dir)] = compute_facts(run_dir, bounds)
    if as_json:
        click.echo(json.dumps(results if len(results) > 1 else next(iter(results.values())), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    for name, found in results.items():
        table = Table(title=name)
        for header in ("fact", "run", "10 Oct 2025", ""):
            table.add_column(header)
        for row in fact_rows(found):
            table.add_row(*row)
        console = Console()
        if not console.is_terminal:
            console.width = 140
        console.print(table)


BOOK_CACHE_OUTCOMES = {
    "hit": "the opened book was loaded from the cache",
    "miss": "the book was opened and stored in the cache",
    "rebuilt": "the cached book failed to load or verify; it was opened anew and replaced",
}


@contextmanager
def _chain_exchange(scenario):
    from simulator.chain.session import devnet

    with devnet(scenario.market_specs()) as exchange:
        yield exchange


@contextmanager
def _model_exchange(scenario):
    from simulator.model.exchange import ModelExchange

    yield ModelExchange(scenario.market_specs())


def _settings(options: tuple[str, ...]) -> dict:
    """--set options as {key path: value}, each value read as YAML."""
    from simulator.scenarios.errors import ScenarioError
    from simulator.scenarios.loader import parse_yaml

    settings = {}
    for option in options:
        path, sep, text = option.partition("=")
        if not sep or not path.strip():
            raise click.BadParameter(f"{option!r}: expected KEY.PATH=VALUE, e.g. population.reference_accounts=1000",
                                     param_hint="--set")
        try:  # read with the scenario loader's bounds (no alias bomb)
            settings[path.strip()] = parse_yaml(text, "--set")[0]
        except ScenarioError as exc:
            raise click.BadParameter(f"{option!r}: cannot read the value: {exc.problem}", param_hint="--set") from None
    return settings


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in summary.items():
        if key == "traceback":
            continue
        table.add_row(key, f"{value:,.2f}" if isinstance(value, float) else str(value))
    Console().print(table)


TABLE_WIDTH = 80  # the sweep's tables fit an 80-column terminal; sweep.csv and report.html hold every figure


def _console():
    from rich.console import Console

    console = Console()
    console.width = min(console.width, TABLE_WIDTH) if console.is_terminal else TABLE_WIDTH
    return console


def _setting_labels(rows: list[dict], skip: set[str]) -> tuple[list[str], Callable[[dict], str]]:
    """The varied settings of a sweep's rows and a row's label: one `name = value` a line."""
    from simulator.sweep import setting_names, value_text

    varied = [k for k in (rows[0] if rows else {}) if k not in skip and not k.startswith("shock:")]
    names = setting_names(varied)
    return varied, lambda row: "\n".join(f"{names[k]} = {value_text(row.get(k))}" for k in varied) or "-"


def _print_sweep(rows: list[dict]) -> None:
    from rich import box
    from rich.table import Table

    from simulator.sweep import COLUMNS

    shown = {"liquidated_notional_usd": "liq. $", "bad_debt_usd": "bad debt $", "adl_notional_usd": "ADL $",
             "socialized_loss_usd": "social. $"}
    _, label = _setting_labels(rows, {"run", "combination", "seed", "error", *COLUMNS})
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("run", no_wrap=True)
    table.add_column("settings", overflow="fold", min_width=10)
    for header in shown.values():
        table.add_column(header, justify="right", no_wrap=True)
    failed = any(row["status"] != "completed" for row in rows)
    if failed:  # else every row would say so: the room goes to the settings
        table.add_column("status", no_wrap=True)
    for row in rows:
        table.add_row(row["run"], label(row), *(_compact(row.get(k)) for k in shown),
                      *([str(row["status"])] if failed else []))
    _console().print(table)


RISK_SHOWN = {"p_insolvency": "P(insolvency)", "bad_debt_mean": "bad debt mean $", "bad_debt_var95": "bad debt VaR95 $",
              "bad_debt_es95": "bad debt ES95 $", "fund_drawdown_var95": "fund drawdown VaR95 $", "p_adl": "P(ADL)",
              "adl_notional_var95": "ADL VaR95 $", "adl_overshoot_mean": "ADL overshoot mean $",
              "adl_closed_mean": "ADL closed mean $", "adl_fairness_mean": "ADL fairness mean (x/u)",
              "socialized_var95": "socialised VaR95 $", "lar95": "LaR95 $"}
RISK_COLUMNS = 4  # combinations side by side in one table (80 columns); more go to the next table


def _print_risk(combinations: list[dict]) -> None:
    """The main risk figures (rows) of each combination (columns), each with its bootstrap 95%
    interval below it; every figure is in sweep.csv and report.html."""
    from rich import box
    from rich.table import Table

    if not combinations:
        return
    from simulator.risk import FIGURE_NAMES

    fixed = {"combination", "paths", "completed", "failed",
             *(f"{name}{suffix}" for name in FIGURE_NAMES for suffix in ("", "_ci_low", "_ci_high"))}
    _, label = _setting_labels(combinations, fixed)
    console = _console()
    for first in range(0, len(combinations), RISK_COLUMNS):
        chunk = combinations[first:first + RISK_COLUMNS]
        table = Table(title="risk over paths: figure [95% interval]", box=box.SIMPLE_HEAD, pad_edge=False,
                      padding=(0, 1))
        table.add_column("figure", overflow="fold", min_width=10)
        for entry in chunk:
            table.add_column(f"{label(entry)}\n{entry['completed']}/{entry['paths']} paths", justify="right",
                             overflow="fold")
        for key, header in RISK_SHOWN.items():
            cells = []
            for entry in chunk:
                value, low, high = entry.get(key), entry.get(f"{key}_ci_low"), entry.get(f"{key}_ci_high")
                if value is None:
                    cells.append("-")
                elif key.startswith("p_"):
                    cells.append(f"{value:.2f}\n[{low:.2f},{high:.2f}]")
                else:
                    cells.append(f"{_compact(value)}\n[{_compact(low)},{_compact(high)}]")
            table.add_row(header, *cells, end_section=True)
        console.print(table)


def _compact(value) -> str:
    """12,345,678.9 -> 12.3M: a sweep table has many columns."""
    if not isinstance(value, float):
        return str(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns a KeyboardInterrupt (Ctrl-C, or SIGTERM as Terminated) that leaves a command into Abort.
        if isinstance(exc.__context__, KeyboardInterrupt):
            signum = interrupt_signal(exc.__context__)
            click.echo(f"perpsim: {SIGNAL_WORDS[signum]}", err=True)
            sys.exit(128 + signum)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PerpsimError as exc:
        click.echo(f"perpsim: {exc.user_message}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt as exc:  # outside a run (loading, a sweep's set-up, a report)
        signum = interrupt_signal(exc)
        click.echo(f"perpsim: {SIGNAL_WORDS[signum]}", err=True)
        sys.exit(128 + signum)
