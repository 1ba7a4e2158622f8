"""Sweeps: one scenario run over a grid of settings and seeds (Monte Carlo paths), with one table
of the runs and one of the risk figures per combination.

Each combination of the varied settings (dotted key paths of the scenario file, see
`simulator.scenarios.with_settings`) runs for each of its paths (seeds), each in its own run
folder under the sweep's folder. Every variant is built and validated before the first run, so a
bad value stops the sweep before anything runs.

Runs go to this process (`workers=1`), a Dask `LocalCluster` on this machine (`workers=N`) or an
existing Dask cluster (`scheduler="tcp://host:8786"`). A task carries the scenario as JSON text,
so a worker needs only the installed package. Path p of every combination runs with seed
``first seed + p`` (common random numbers: the combinations are compared on the same price paths,
and `perpsim run --seed` reproduces any run), never with anything of the worker's.

Resumable: each finished run is moved atomically into ``<out>/<label>/`` with ``run.json``, which
holds the run's content key (a hash of the scenario after overrides, seed, mode, accounts, steps
and perpsim version). A sweep skips the runs whose folder holds a completed run with the same
key, and runs again those that failed, were interrupted or were never written. Runs in flight when
the sweep, a worker or the scheduler is killed are the only ones lost. A run that raises is
recorded (status failed, with its traceback in run.json and summary.json) and the others go on.

Tables (rewritten every 2 s or more while the sweep runs, see TABLE_SHARE, and at its end): runs.csv and
runs.parquet (one row per run), sweep.csv (one row per combination: the risk figures of
`simulator.risk` with bootstrap 95% intervals), sweep.json (both), sweep.png; at the end also
report.html (simulator/sweep_report.py, rendered from sweep.json)."""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from simulator import __version__
from simulator.book_cache import BookCache
from simulator.errors import PerpsimError
from simulator.report import atomic_write
from simulator.risk import FIGURE_NAMES, fund_drawdown, risk_figures
from simulator.runner import run_scenario
from simulator.scenarios import Scenario, with_overrides, with_settings
from simulator.toolchain import PROJECT_ROOT

# The summary figures a sweep compares, in table order.
COLUMNS = (
    "status",
    "liquidations",
    "liquidated_notional_usd",
    "insurance_fund_start_usd",
    "insurance_fund_end_usd",
    "insurance_fund_drawdown_usd",
    "bad_debt_usd",
    "insolvent",
    "adl_fills",
    "adl_notional_usd",
    "adl_rounds",
    "adl_deficit_usd",
    "adl_haircut_usd",
    "adl_overshoot_usd",
    "adl_undershoot_usd",
    "adl_winner_notional_closed_usd",
    "adl_fairness_max",
    "socialized_loss_usd",
    "vault_pnl_usd",
    "first_liquidation_step",
    "first_adl_step",
    "failed_keeper_actions",
    "wall_seconds",
)
# Columns that differ from one execution of the same sweep to the next.
TIMING_COLUMNS = ("wall_seconds",)
# How often the tables are rewritten while runs finish (they are always written at the end): every
# 2 s at most, and never more than 1/TABLE_SHARE of the time they take to write (the risk figures'
# bootstrap over many runs takes about a second): the sweep's own process shares the machine with
# the workers, so its tables may not cost them their cores.
TABLE_INTERVAL_SECONDS = 2.0
TABLE_SHARE = 20
PARTIAL = ".partial"  # runs being written; anything left here by a killed sweep is discarded
RUN_FILE = "run.json"


class SweepError(PerpsimError, ValueError):
    """A sweep that cannot be planned (nothing to vary, a malformed --vary) or cannot run."""


class SweepFailed(PerpsimError, RuntimeError):
    """Some runs of a sweep failed or did not finish; the exit status is their number (at most 100)."""

    def __init__(self, user_message: str, not_completed: int):
        super().__init__(user_message)
        self.not_completed = not_completed
        self.exit_code = max(1, min(not_completed, 100))


@dataclass(frozen=True)
class Variant:
    label: str  # the run folder's name: ranking=QUEUE-seed0 (see run_labels)
    settings: dict[str, Any]
    seed: int
    scenario: Scenario
    combination: int = 1  # 1-based number of the settings combination (v01)
    path: int = 0  # 0-based path (seed) number within the combination


@dataclass
class SweepStatus:
    """Counts for a progress display."""

    total: int
    done: int = 0  # finished runs, failed ones and resumed ones included
    failed: int = 0
    running: int = 0
    resumed: int = 0


@dataclass
class SweepResult:
    out_dir: Path
    rows: list[dict] = field(default_factory=list)  # finished runs, in plan order
    combinations: list[dict] = field(default_factory=list)  # risk figures per combination
    planned: int = 0
    resumed: int = 0

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["status"] != "completed"]

    @property
    def not_completed(self) -> int:
        """Runs that failed, were interrupted or never finished."""
        return self.planned - (len(self.rows) - len(self.failed))


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """`markets.*.policy=ADL,SOCIALIZE` -> ("markets.*.policy", ["ADL", "SOCIALIZE"]); each value
    is read as YAML (numbers, true/false, strings)."""
    path, sep, values = option.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise SweepError(f"--vary {option!r}: expected KEY.PATH=VALUE[,VALUE...], e.g. markets.*.policy=ADL,NONE")
    from simulator.scenarios.errors import ScenarioError
    from simulator.scenarios.loader import parse_yaml

    parsed = []
    for text in values.split(","):
        try:  # read with the scenario loader's bounds (no alias bomb)
            parsed.append(parse_yaml(text.strip(), "--vary")[0])
        except ScenarioError as exc:
            raise SweepError(f"--vary {option!r}: cannot read the value {text!r}: {exc.problem}") from None
    return path.strip(), parsed


# Setting names too generic to stand alone: the label keeps the key before them too.
GENERIC = {"usd", "to", "to_price", "value", "low", "high", "mean", "std", "size", "amount"}
LABEL_PART = 60  # characters of a run folder's name given to its settings, at most


def setting_names(paths: list[str]) -> dict[str, str]:
    """Each varied key path's shortest readable name: its last key, or more of the path when the
    last key is generic (`usd`, `to`), an index or a wildcard, or when two paths would share it."""
    parts = {path: path.split(".") for path in paths}
    taken = {path: 1 for path in paths}

    def name(path):
        return ".".join(parts[path][-taken[path]:])

    changed = True
    while changed:
        changed = False
        names = [name(path) for path in paths]
        for path in paths:
            head = parts[path][-taken[path]]
            vague = head in GENERIC or head.isdigit() or head == "*"
            shared = names.count(name(path)) > 1
            if (vague or shared) and taken[path] < len(parts[path]):
                taken[path] += 1
                changed = True
    return {path: name(path) for path in paths}


def value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else f"{value:,.6g}"
    if isinstance(value, str) and value[:1] in "{[":  # a distribution or list, as the sweep stored it
        try:
            value = json.loads(value)
        except ValueError:
            return value
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def run_labels(combinations: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each combination's run-folder stem, from its settings: `ranking=QUEUE`, or
    `policy=ADL_ranking=QUEUE` when two vary. Characters a shell or a file system would trip on
    become `_`; a name too long is cut. Should two combinations come out alike, every stem takes
    the combination's number in front (`v01-...`), so folders stay unique and in plan order."""
    names = setting_names(list(combinations[0])) if combinations else {}
    stems = []
    for settings in combinations:
        text = "_".join(f"{names[p]}={value_text(v)}" for p, v in settings.items())
        stems.append(re.sub(r"[^A-Za-z0-9._=+-]+", "_", text.replace(",", ""))[:LABEL_PART].strip("_") or "run")
    if len(set(stems)) < len(stems):
        stems = [f"v{number:02d}-{stem}" for number, stem in enumerate(stems, start=1)]
    return stems


def plan_sweep(scenario: Scenario, vary: Mapping[str, Sequence[Any]] | None = None, seeds: int | None = None,
               mode: str | None = None, source: str = "command line") -> list[Variant]:
    """Every (settings, seed) of the sweep, validated. Without `vary`, the scenario's own `sweep:`
    section; `seeds` and `mode` default to that section's (else 1 seed, model mode). Path p of
    every combination has seed ``scenario.seed + p``."""
    if not vary:
        if scenario.sweep is None:
            raise SweepError(f"scenario '{scenario.name}' has no sweep: section; name what to vary with "
                             "--vary KEY.PATH=V1,V2 (e.g. --vary 'markets.*.policy=ADL,SOCIALIZE,NONE')")
        vary, source = scenario.sweep.vary, f"{scenario.source or scenario.name}, sweep"
    if seeds is None:
        seeds = scenario.sweep.seeds if scenario.sweep is not None else 1
    if mode is None:
        mode = scenario.sweep.mode if scenario.sweep is not None else "model"
    if seeds < 1:
        raise SweepError(f"seeds must be at least 1, got {seeds}")
    paths = list(vary)
    combinations = [dict(zip(paths, values)) for values in itertools.product(*(vary[p] for p in paths))]
    variants = []
    for number, (settings, stem) in enumerate(zip(combinations, run_labels(combinations)), start=1):
        varied = with_settings(scenario, settings, source=source)
        for path, seed in enumerate(range(scenario.seed, scenario.seed + seeds)):
            variants.append(Variant(f"{stem}-seed{seed}", settings, seed,
                                    with_overrides(varied, seed=seed, mode=mode), number, path))
    return variants


# --- one run ---------------------------------------------------------------------------------------


def scenario_text(scenario: Scenario) -> str:
    """The scenario as JSON text (what a task carries to a worker)."""
    return scenario.model_dump_json(exclude_unset=True)


def run_key(variant: Variant, max_steps: int | None = None) -> str:
    """The content key of a run: what it computes depends on nothing else (the scenario with every
    value, the price files it reads, seed, mode, accounts, steps, and perpsim's own code)."""
    scenario = variant.scenario
    content = {
        "scenario": scenario.model_dump(mode="json", exclude={"sweep"}),  # every value, defaults included
        "price_files": {name: _file_digest(path.file) for name, path in scenario.price_paths.items()
                        if isinstance(getattr(path, "file", None), Path)},
        "seed": scenario.seed,
        "mode": scenario.mode,
        "accounts": scenario.account_count,
        "steps": min(scenario.steps, max_steps) if max_steps else scenario.steps,
        "perpsim": __version__,
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of perpsim's source (the simulator package and the contracts): a run completed by
    other code is run again on resume, whatever the version number says."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    files = sorted(package.rglob("*.py")) + sorted(package.rglob("*.yaml")) + sorted((PROJECT_ROOT / "contracts").rglob("*.sol"))
    for path in files:
        name = path.relative_to(PROJECT_ROOT).as_posix() if path.is_relative_to(PROJECT_ROOT) else path.name
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@contextmanager
def model_exchange(scenario: Scenario):
    from simulator.model.exchange import ModelExchange

    yield ModelExchange(scenario.market_specs())


@contextmanager
def chain_exchange(scenario: Scenario):
    """A fresh devnet (two anvils on free ports) for one run, stopped when it ends."""
    from simulator.chain.session import devnet

    with devnet(scenario.market_specs()) as exchange:
        yield exchange


EXCHANGES = {"model": model_exchange, "chain": chain_exchange}


def execute_run(task: Mapping, scratch: str | None = None, pack: bool = False,
                exchange_factory: Callable | None = None) -> dict:
    """Runs one task (in this process or on a Dask worker) in a new folder under `scratch`
    (default: the Dask worker's local directory, else the system's temporary folder). Never
    raises for a failing run: the record says what happened. With `pack`, the run's files come
    back in the record and the folder is removed (a worker on another machine); else the record
    names the folder."""
    if scratch is None:
        try:
            from distributed import get_worker

            scratch = get_worker().local_directory
        except (ImportError, ValueError):
            scratch = None
    folder = Path(tempfile.mkdtemp(prefix=f"{task['label']}-", dir=scratch))
    record: dict[str, Any] = {"key": task["key"], "label": task["label"]}
    try:
        scenario = Scenario.model_validate_json(task["scenario"], context={"base_dir": None})
        factory = exchange_factory or EXCHANGES[scenario.mode]
        summary = run_scenario(scenario, folder, factory, max_steps=task.get("max_steps"),
                               render=task.get("report", False),
                               book_cache=BookCache() if task.get("book_cache") else None).summary
        record.update(status=summary["status"], error=summary.get("error"), traceback=summary.get("traceback"),
                      summary=summary, fund_drawdown_usd=_drawdown(folder, summary))
    except Exception as exc:  # the run could not even start: record it, the sweep goes on
        record.update(status="failed", error="".join(traceback.format_exception_only(type(exc), exc)).strip(),
                      traceback=traceback.format_exc(), summary=None, fund_drawdown_usd=None)
    if pack:
        record["files"] = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
        shutil.rmtree(folder, ignore_errors=True)
        record["folder"] = None
    else:
        record["folder"] = str(folder)
    return record


def _drawdown(folder: Path, summary: dict) -> float | None:
    """The insurance fund's largest fall over the run, from its series."""
    start = summary.get("insurance_fund_start_usd")
    path = folder / "timeseries.csv"
    if start is None or not path.exists():
        return None
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "insurance_fund_usd" not in header:
            return None
        column, markets = header.index("insurance_fund_usd"), header.index("market")
        first_market = None
        fund = []
        for row in reader:  # one row per market and step; the fund is the same in each
            first_market = first_market or row[markets]
            if row[markets] == first_market:
                fund.append(float(row[column]))
    return fund_drawdown(start, fund)


def _failed_record(task: Mapping, error: str) -> dict:
    return {"key": task["key"], "label": task["label"], "status": "failed", "error": error,
            "traceback": traceback.format_exc(), "summary": None, "fund_drawdown_usd": None, "folder": None}


# --- the sweep -------------------------------------------------------------------------------------


def run_sweep(variants: Sequence[Variant], out_dir: Path, exchange_factory: Callable | None = None,
              progress: Callable[[SweepStatus], None] | None = None, max_steps: int | None = None,
              workers: int = 1, scheduler: str | None = None, resume: bool = True,
              run_reports: bool = False, book_cache: bool = True) -> SweepResult:
    """Runs every variant into `out_dir`/<label>/ and writes the sweep's tables.

    `workers` 1 runs here, one after another; more start a Dask LocalCluster of that many worker
    processes (one thread each); `scheduler` (an address) uses an existing Dask cluster instead.
    With `resume`, runs already completed under the same content key are not run again. With
    `book_cache`, each run loads its opened book from (and stores it in) the cache of opened books
    of the machine it runs on (simulator/book_cache.py): variants that differ only after the
    opening open it once.
    `exchange_factory` (default: by the scenario's mode) must be picklable to run on Dask."""
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / PARTIAL
    shutil.rmtree(partial, ignore_errors=True)  # what a killed sweep was writing
    partial.mkdir()
    keys = [run_key(variant, max_steps) for variant in variants]
    rows: dict[int, dict] = {}
    todo = []
    for index, variant in enumerate(variants):
        row = _completed_row(out_dir, variant, keys[index]) if resume else None
        if row is not None:
            rows[index] = row
        else:
            todo.append(index)
    status = SweepStatus(total=len(variants), done=len(rows), resumed=len(rows))
    result = SweepResult(out_dir, planned=len(variants), resumed=len(rows))
    tables = _Tables(result, variants, rows)
    tasks = {index: {"label": variants[index].label, "key": keys[index],
                     "scenario": scenario_text(variants[index].scenario), "max_steps": max_steps,
                     "report": run_reports, "book_cache": book_cache} for index in todo}

    def finished(index: int, record: dict) -> None:
        rows[index] = _store(out_dir, variants[index], record)
        status.done += 1
        status.failed += rows[index]["status"] != "completed"
        tables.write(final=False)
        if progress:
            progress(status)

    if progress:
        progress(status)
    try:
        if not todo:
            pass
        elif scheduler is None and workers <= 1:
            for index in todo:
                status.running = 1
                record = execute_run(tasks[index], str(partial), exchange_factory=exchange_factory)
                status.running = 0
                finished(index, record)
                if record["status"] == "interrupted":
                    break
        else:
            _run_on_dask(tasks, partial, workers, scheduler, exchange_factory, status, finished, progress)
    finally:
        tables.write(final=True)
        shutil.rmtree(partial, ignore_errors=True)
    return result


def _run_on_dask(tasks: dict[int, dict], partial: Path, workers: int, scheduler: str | None,
                 exchange_factory: Callable | None, status: SweepStatus, finished: Callable,
                 progress: Callable | None) -> None:
    from distributed import as_completed

    with dask_client(workers, scheduler, partial) as client:
        threads = sum(client.nthreads().values()) or 1
        # On this machine the workers write straight into the sweep's folder; on a cluster they
        # send the files back.
        local = scheduler is None
        token = uuid.uuid4().hex[:8]
        futures = {client.submit(execute_run, task, str(partial) if local else None, not local, exchange_factory,
                                 key=f"perpsim-{task['label']}-{task['key'][:12]}-{token}", pure=False): index
                   for index, task in tasks.items()}
        remaining = len(futures)
        status.running = min(remaining, threads)
        if progress:
            progress(status)
        for future in as_completed(futures):
            index = futures[future]
            try:
                record = future.result()
            except concurrent.futures.CancelledError:
                raise SweepError(f"lost the Dask scheduler{' at ' + scheduler if scheduler else ''}; the runs that "
                                 "finished are kept: run the same command again to resume") from None
            except Exception as exc:  # the worker died under it (KilledWorker) or could not unpickle it
                record = _failed_record(tasks[index], f"{type(exc).__name__}: {exc}")
            remaining -= 1
            status.running = min(remaining, threads)
            finished(index, record)


@contextmanager
def dask_client(workers: int, scheduler: str | None, scratch: Path) -> Iterator[Any]:
    """A Dask client: of an existing cluster at `scheduler`, else of a LocalCluster of `workers`
    processes with one thread each, whose files (worker folders, spill) go under `scratch`."""
    import dask

    settings = {"temporary-directory": str(scratch), "distributed.worker.daemon": False,
                "distributed.admin.large-graph-warning-threshold": "50MB"}
    # Dask logs a lost connection with its own tracebacks; the sweep says it in one line.
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with dask.config.set(settings):
            yield from _client(workers, scheduler, scratch)
    finally:
        logger.setLevel(level)


def _client(workers: int, scheduler: str | None, scratch: Path) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(scratch), silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _store(out_dir: Path, variant: Variant, record: dict) -> dict:
    """Moves a finished run into out_dir/<label>/ (atomically: the folder appears whole, with
    run.json, or not at all) and returns its table row."""
    partial = out_dir / PARTIAL
    folder = Path(record["folder"]) if record.get("folder") else Path(tempfile.mkdtemp(prefix=f"{variant.label}-",
                                                                                        dir=partial))
    for name, content in (record.get("files") or {}).items():
        (folder / name).write_bytes(content)
    row = _row(variant, record)
    document = {"key": record["key"], "label": variant.label, "combination": variant.combination,
                "path": variant.path, "seed": variant.seed, "settings": {k: _plain(v) for k, v in variant.settings.items()},
                "status": record["status"], "error": record.get("error"), "traceback": record.get("traceback"),
                "row": row}
    (folder / RUN_FILE).write_text(json.dumps(document, indent=2) + "\n")
    target = out_dir / variant.label
    if target.exists():
        old = partial / f"{variant.label}-replaced-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(folder, target)
    return row


def _completed_row(out_dir: Path, variant: Variant, key: str) -> dict | None:
    """The row of a run already completed under `key`, if its folder holds one."""
    try:
        document = json.loads((out_dir / variant.label / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if document.get("key") != key or document.get("status") != "completed":
        return None
    return document["row"]


def _row(variant: Variant, record: dict) -> dict:
    summary = record.get("summary") or {}
    row = {"run": variant.label, "combination": f"v{variant.combination:02d}", "seed": variant.seed}
    row.update({path: _plain(value) for path, value in variant.settings.items()})
    row.update({column: summary.get(column) for column in COLUMNS})
    row["status"] = record["status"]
    row["insurance_fund_drawdown_usd"] = record.get("fund_drawdown_usd")
    for path, value in sorted((summary.get("shocks") or {}).items()):
        row[f"shock:{path}"] = value
    if record.get("error"):
        row["error"] = record["error"]
    return row


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value)


class _Tables:
    """runs.csv, runs.parquet, sweep.csv, sweep.json and sweep.png of a sweep, from the rows so far."""

    def __init__(self, result: SweepResult, variants: Sequence[Variant], rows: dict[int, dict]):
        self.result, self.variants, self.rows = result, variants, rows
        self.written = 0.0
        self.interval = TABLE_INTERVAL_SECONDS

    def write(self, final: bool) -> None:
        if not final and time.monotonic() - self.written < self.interval:
            return
        started = time.monotonic()
        self._write(final)
        self.written = time.monotonic()
        self.interval = max(TABLE_INTERVAL_SECONDS, TABLE_SHARE * (self.written - started))

    def _write(self, final: bool) -> None:
        result, variants = self.result, self.variants
        result.rows = [self.rows[index] for index in sorted(self.rows)]
        result.combinations = combination_table(variants, result.rows)
        out_dir = result.out_dir
        varied = list(variants[0].settings) if variants else []
        shocks = sorted({key for row in result.rows for key in row if key.startswith("shock:")})
        run_header = ["run", "combination", "seed", *varied, *COLUMNS, *shocks, "error"]
        _write_csv(out_dir / "runs.csv", run_header, result.rows)
        _write_parquet(out_dir / "runs.parquet", run_header, result.rows)
        combination_header = ["combination", *varied, "paths", "completed", "failed",
                              *(f"{name}{suffix}" for name in FIGURE_NAMES for suffix in ("", "_ci_low", "_ci_high"))]
        _write_csv(out_dir / "sweep.csv", combination_header, result.combinations)
        document = {
            "scenario": variants[0].scenario.name if variants else None,
            "description": variants[0].scenario.description if variants else None,
            "mode": variants[0].scenario.mode if variants else None,
            "accounts": variants[0].scenario.account_count if variants else None,
            "varied": varied,
            "paths_per_combination": max((v.path for v in variants), default=-1) + 1,
            "first_seed": variants[0].seed if variants else None,
            "planned": len(variants),
            "finished": len(result.rows),
            "failed": len(result.failed),
            "combinations": result.combinations,
            "runs": result.rows,
        }
        atomic_write(out_dir / "sweep.json", json.dumps(document, indent=2) + "\n")
        if final and result.rows:
            from simulator.sweep_report import render_sweep_report

            render_sweep_plot(result)
            render_sweep_report(out_dir)


def combination_table(variants: Sequence[Variant], rows: Sequence[dict]) -> list[dict]:
    """One row per combination: its settings, how many of its paths completed, its risk figures
    over the completed ones."""
    table = []
    by_combination: dict[int, list[Variant]] = {}
    for variant in variants:
        by_combination.setdefault(variant.combination, []).append(variant)
    finished = {row["run"]: row for row in rows}
    for number, members in by_combination.items():
        done = [finished[v.label] for v in members if v.label in finished]
        completed = [row for row in done if row["status"] == "completed"]
        entry = {"combination": f"v{number:02d}"}
        entry.update({path: _plain(value) for path, value in members[0].settings.items()})
        entry.update(paths=len(members), completed=len(completed), failed=len(done) - len(completed))
        if completed:
            entry.update(risk_figures(completed, number))
        else:
            entry.update({f"{name}{suffix}": None for name in FIGURE_NAMES for suffix in ("", "_ci_low", "_ci_high")})
        table.append(entry)
    return table


def _write_csv(path: Path, header: list[str], rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    atomic_write(path, buffer.getvalue())


def _write_parquet(path: Path, header: list[str], rows: Sequence[dict]) -> None:
    """Every run's row as a Parquet table (a column whose values mix types is written as text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {}
    for name in header:
        values = [row.get(name) for row in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float} and int in kinds and float in kinds:
            values = [None if v is None else float(v) for v in values]
        elif len(kinds) > 1:
            values = [None if v is None else str(v) for v in values]
        columns[name] = pa.array(values) if kinds else pa.nulls(len(values), pa.string())
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)


# Figures compared in sweep.png, one panel each.
PLOTTED = (
    ("liquidated_notional_usd", "liquidated notional USD"),
    ("insurance_fund_end_usd", "insurance fund at the end USD"),
    ("bad_debt_usd", "bad debt USD"),
    ("adl_notional_usd", "ADL notional USD"),
    ("socialized_loss_usd", "socialised loss USD"),
)


def render_sweep_plot(result: SweepResult) -> Path:
    """sweep.png: each compared figure per variant, the mean over its seeds with every seed's
    value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings_of: dict[str, str] = {}
    for row in result.rows:
        variant = row["run"].split("-seed")[0]
        varied = [k for k in row if k not in ("run", "combination", "seed", "error", *COLUMNS)
                  and not k.startswith("shock:")]
        # The path's last two keys keep the label short (insurance_fund.usd=0).
        settings_of.setdefault(variant, "\n".join([variant] + [f"{'.'.join(k.split('.')[-2:])}={row[k]}" for k in varied]))
    labels = list(settings_of)
    fig, axes = plt.subplots(len(PLOTTED), 1, figsize=(max(6, 2.2 * len(labels) + 1.5), 2.3 * len(PLOTTED)),
                             sharex=True, squeeze=False)
    for ax, (key, title) in zip(axes[:, 0], PLOTTED):
        for x, variant in enumerate(labels):
            values = [row[key] or 0.0 for row in result.rows
                      if row["run"].startswith(variant + "-") and row["status"] == "completed"]
            if not values:
                continue
            ax.bar(x, sum(values) / len(values), color="tab:blue", alpha=0.6)
            ax.scatter([x] * len(values), values, color="black", s=8, zorder=3)
        ax.set_ylabel(title, fontsize=8)
    axes[-1, 0].set_xticks(range(len(labels)), [settings_of[v] for v in labels], fontsize=7)
    fig.suptitle(f"Sweep: {len(result.rows)} runs")
    fig.tight_layout()
    path = result.out_dir / "sweep.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
