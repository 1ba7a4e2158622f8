"""Run outputs: the data files a run writes as it goes (summary.json, timeseries.csv, events.jsonl,
failed_actions.jsonl), and the single-file HTML report rendered from those files (plotly, its
JavaScript embedded: no network at view time), so `perpsim report DIR` can render any run folder
again, also one whose run was killed.

While a run goes, RunWriter appends the new rows of the series and the new events every
FLUSH_SECONDS and then rewrites summary.json atomically with `"status": "running"` and the steps
completed so far; the data files are written before the summary, so the summary never counts a
step the files do not hold. At the end the summary is written once more with the final status. A
completed run's files are byte for byte those written at the end in one go."""

from __future__ import annotations

import csv
import hashlib
import html
import json
import math
import operator
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from simulator.errors import PerpsimError
from simulator.metrics import SERIES_FIELDS, Metrics

# Plots earlier versions wrote beside the report: removed when a run starts over in the folder.
PLOTS = ("prices.png", "liquidations.png", "insurance_and_bad_debt.png", "adl.png")
# What an earlier run may have left in the folder that a new one does not rewrite (a sweep's run
# record, a report, a temporary file of an atomic write): removed when a run starts over in it.
STALE = (*PLOTS, "report.html", "run.json", "scenario.json", "summary.json.tmp", "report.html.tmp")
DATA_FILES = ("timeseries.csv", "events.jsonl", "failed_actions.jsonl")
# Seconds between two flushes of a running run's files: what a kill -9 can lose at most
# (PERPSIM_FLUSH_SECONDS changes it; the tests flush more often).
FLUSH_SECONDS = float(os.environ.get("PERPSIM_FLUSH_SECONDS", "2"))
SERIES_ROW = operator.itemgetter(*SERIES_FIELDS)  # a timeseries row's fields, in column order


class ReportError(PerpsimError, FileNotFoundError):
    """A run folder (or one of its files) that cannot be read or rendered: one line naming it."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")


class OutputError(PerpsimError, OSError):
    """An output folder that cannot be created or written."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"cannot write the output folder {path}: {problem}")


def default_run_folder(scenario, steps: int | None = None, settings: dict | None = None,
                       mode: str | None = None) -> Path:
    """runs/<scenario>-<mode>-seed<seed>-<N>accounts, with -<steps>steps for a shortened run and
    -set<hash> for one with --set settings: runs that differ get different folders, so no run
    silently replaces another's report (the same command writes the same folder again)."""
    name = f"{scenario.name}-{mode or scenario.mode}-seed{scenario.seed}-{scenario.account_count}accounts"
    if steps is not None and steps < scenario.steps:
        name += f"-{steps}steps"
    if settings:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
        name += f"-set{digest[:8]}"
    return Path("runs") / name


def writable_folder(path: Path) -> Path:
    """Creates `path` (and its parents) and checks a file can be written in it, before anything
    runs; OutputError with the reason otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".perpsim-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        raise OutputError(path, "a file of that name (or of a parent's name) is in the way") from None
    except NotADirectoryError:
        raise OutputError(path, "a parent is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from None
    return path


def atomic_write(path: Path, text: str, sync: bool = False) -> None:
    # A run that dies while writing never leaves a half file behind the previous good one; with
    # `sync`, neither does a machine that goes down.
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


class RunWriter:
    """A run's data files, written as the run goes (see the module's docstring). Opening it
    creates the folder and empties the data files of an earlier run there and removes what else
    that run left (STALE: its report, plots, a sweep's run.json), so a folder never shows another
    run's results beside this one's."""

    def __init__(self, out_dir: Path, metrics: Metrics, flush_seconds: float | None = None):
        self.out_dir = Path(out_dir)
        self.metrics = metrics
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self._written = {"series": 0, "events": 0, "failed": 0}
        self._last_flush = time.monotonic()
        writable_folder(self.out_dir)
        try:
            for name in STALE:
                (self.out_dir / name).unlink(missing_ok=True)
            self._series = open(self.out_dir / "timeseries.csv", "w", newline="")
            self._events = open(self.out_dir / "events.jsonl", "w")
            self._failed = open(self.out_dir / "failed_actions.jsonl", "w")
        except OSError as exc:
            raise OutputError(self.out_dir, exc.strerror or str(exc)) from None
        # quotes a field with a comma, e.g. a market's name
        self._csv = csv.writer(self._series, lineterminator="\n")
        self._csv.writerow(SERIES_FIELDS)

    def write_scenario(self, text: str) -> None:
        """scenario.json: the scenario as this run ran it (every value, defaults included), for the
        report's parameters table."""
        atomic_write(self.out_dir / "scenario.json", text)

    def due(self) -> bool:
        """True when FLUSH_SECONDS have passed since the last flush."""
        return time.monotonic() - self._last_flush >= self.flush_seconds

    def flush(self, summary: dict | None = None, sync: bool = True) -> None:
        """Appends the rows and events recorded since the last flush; then, with `summary`, rewrites
        summary.json. With `sync`, the files reach the disk first (a machine that goes down)."""
        metrics, written = self.metrics, self._written
        # csv writes None (not known at that step, e.g. the vault's value while a price is refused)
        # as an empty field and a float as its repr
        self._csv.writerows(map(SERIES_ROW, metrics.series[written["series"]:]))
        self._events.write("".join(json.dumps(e) + "\n" for e in metrics.events[written["events"]:]))
        self._failed.write("".join(json.dumps(e) + "\n" for e in metrics.failed_actions[written["failed"]:]))
        written.update(series=len(metrics.series), events=len(metrics.events), failed=len(metrics.failed_actions))
        for handle in (self._series, self._events, self._failed):
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        if summary is not None:
            atomic_write(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n", sync=sync)
        self._last_flush = time.monotonic()

    def close(self, summary: dict) -> None:
        """The last rows and the final summary."""
        try:
            self.flush(summary)
        finally:
            for handle in (self._series, self._events, self._failed):
                handle.close()


def write_data(out_dir: Path, metrics: Metrics, summary: dict) -> None:
    """All of a run's data files at once (what RunWriter leaves at the end of a run)."""
    RunWriter(out_dir, metrics).close(summary)


def read_run(out_dir: Path) -> tuple[dict, dict[str, list[dict]], list[dict]]:
    """summary, series per market, events of a run folder. A folder whose run did not finish
    (status `running`: killed, or still going) is read up to the steps its summary counts: a line
    cut by a kill is left out. Anything else unreadable is a ReportError naming the file."""
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        raise ReportError(out_dir, "no summary.json: not a perpsim run folder")
    try:
        summary = json.loads(summary_path.read_text())
    except UnicodeDecodeError:
        raise ReportError(summary_path, "not a text file") from None
    except json.JSONDecodeError as exc:
        raise ReportError(summary_path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except OSError as exc:
        raise ReportError(summary_path, exc.strerror or str(exc)) from None
    if not isinstance(summary, dict):
        raise ReportError(summary_path, "not a run summary (a JSON object)")
    finished = summary.get("status") != "running"
    steps = summary.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        if not finished:
            raise ReportError(summary_path, f"'steps' should be a whole number, got {steps!r}")
        steps = None  # every row written counts

    def lines(name: str) -> list[str]:
        path = out_dir / name
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ReportError(path, "missing: the run folder is incomplete") from None
        except UnicodeDecodeError:
            raise ReportError(path, "not a text file") from None
        except OSError as exc:
            raise ReportError(path, exc.strerror or str(exc)) from None
        rows = text.split("\n")
        if rows[-1] == "":
            rows.pop()
        elif not finished:
            rows.pop()  # the last line was being written when the run stopped
        return rows

    series: dict[str, list[dict]] = {}
    table = lines("timeseries.csv")
    reader = csv.reader(table)
    header = next(reader, None)
    if header is None or "step" not in header or "market" not in header:
        raise ReportError(out_dir / "timeseries.csv", "no header row with 'step' and 'market'")
    for number, cells in enumerate(reader, start=2):
        row = dict(zip(header, cells))
        try:
            if len(cells) != len(header):
                raise ValueError(f"{len(cells)} fields, the header has {len(header)}")
            step = int(row["step"])
            for key in header:
                if key not in ("market", "oracle_status") and row[key] != "":
                    float(row[key])
        except ValueError as exc:
            raise ReportError(out_dir / "timeseries.csv", f"line {number}: {exc}") from None
        if steps is None or step < steps:  # a running run's rows beyond its summary's steps are not counted yet
            series.setdefault(row["market"], []).append(row)
    events = []
    for number, line in enumerate(lines("events.jsonl"), start=1):
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("step"), int):
                raise ValueError("not an event (a JSON object with a step)")
        except json.JSONDecodeError as exc:
            raise ReportError(out_dir / "events.jsonl", f"line {number}: not valid JSON (column {exc.colno}: "
                                                         f"{exc.msg})") from None
        except ValueError as exc:
            raise ReportError(out_dir / "events.jsonl", f"line {number}: {exc}") from None
        if steps is None or event["step"] < steps:
            events.append(event)
    return summary, series, events


def unfinished_note(summary: dict) -> str | None:
    """What to say about a run that did not complete, or None."""
    status, steps = summary.get("status"), summary.get("steps")
    if status == "running":
        return (f"the run did not finish: it stopped without a word (killed, e.g. kill -9, or the machine went "
                f"down) or is still running; shown: the {steps} steps written by its last flush")
    if status not in (None, "completed"):
        return f"the run {status} after {steps} steps: {summary.get('error')}"
    return None


def render_report(out_dir: Path) -> Path:
    """report.html for a run folder (one self-contained page: headline, key figures, linked charts
    on one time axis in minutes, the facts and the summary); returns the report's path. A folder
    with no completed step has nothing to chart: ReportError."""
    summary, series, events = read_run(out_dir)
    if not series:
        why = unfinished_note(summary) or "the run has no step"
        raise ReportError(out_dir, f"no step completed, nothing to plot ({why})")
    run = _Run(summary, series, events)
    report = out_dir / "report.html"
    atomic_write(report, _page(run, out_dir))
    return report


# --- what the run's files say -----------------------------------------------------------------

MAX_POINTS = 900  # points per line: a 3,600-step run is drawn in buckets of 4 steps (flows summed)
AWAY_BELOW = 0.5  # depth_factor below this: the market makers are away
FUND_DRY = 0.01   # free fund at or below 1% of its start: ran dry


@dataclass
class _Run:
    summary: dict
    series: dict[str, list[dict]]
    events: list[dict]

    def __post_init__(self):
        self.markets = list(self.series)
        self.step_seconds = float(self.summary.get("step_seconds") or 1)
        self.steps = max((len(rows) for rows in self.series.values()), default=0)
        self.cols: dict[str, dict[str, np.ndarray]] = {m: _columns(rows) for m, rows in self.series.items()}
        self.liquidations = [e for e in self.events if e.get("event") == "Liquidation"]
        self.fills = [e for e in self.events if e.get("event") == "AdlFill"]
        self.trips = [e for e in self.events if e.get("event") == "CircuitBreakerTripped"]

    def minute(self, step) -> float:
        return float(step) * self.step_seconds / 60

    def at(self, step) -> str:
        return f"minute {self.minute(step):,.1f}" if step is not None else "-"

    @property
    def first(self) -> dict[str, np.ndarray]:
        return self.cols[self.markets[0]] if self.markets else {}

    def fund_low(self) -> tuple[Optional[float], Optional[int]]:
        fund = self.first.get("insurance_fund_usd")
        if fund is None or not len(fund):
            return None, None
        index = int(np.nanargmin(fund))
        return float(fund[index]), int(self.first["step"][index])

    def fund_dry_step(self) -> Optional[int]:
        fund = self.first.get("insurance_fund_usd")
        start = self.summary.get("insurance_fund_start_usd") or (fund[0] if fund is not None and len(fund) else 0)
        if fund is None or not len(fund) or not start or start <= 0:
            return None
        dry = np.nonzero(fund <= FUND_DRY * start)[0]
        return int(self.first["step"][dry[0]]) if len(dry) else None

    def spans(self, market: str, mask_of) -> list[tuple[int, int]]:
        cols = self.cols[market]
        return _spans(cols["step"], mask_of(cols))

    def refused(self, market):  # oracle status other than Ok
        return self.spans(market, lambda c: c["oracle_status"] != 0)

    def away(self, market):  # the external market's depth withdrawn
        return self.spans(market, lambda c: c["depth_factor"] < AWAY_BELOW)

    def away_any(self) -> list[tuple[int, int]]:  # market makers away in any market
        if not self.markets:
            return []
        away = np.zeros(self.steps, dtype=bool)
        for market in self.markets:
            cols = self.cols[market]
            away[cols["step"][cols["depth_factor"] < AWAY_BELOW].astype(int).clip(0, self.steps - 1)] = True
        return _spans(np.arange(self.steps), away)

    def adl_positions(self) -> int:
        return len({(e.get("counterpartyId"), e.get("marketId")) for e in self.fills})


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for key in rows[0] if rows else ():
        if key == "market":
            continue
        out[key] = np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
    return out


def _spans(steps: np.ndarray, mask: np.ndarray, merge_gap: int = 30, limit: int = 40) -> list[tuple[int, int]]:
    """[start, end) steps where mask holds; spans closer than merge_gap steps are merged."""
    spans: list[list[int]] = []
    for index in np.nonzero(mask)[0]:
        step = int(steps[index])
        if spans and step - spans[-1][1] <= merge_gap:
            spans[-1][1] = step + 1
        else:
            spans.append([step, step + 1])
    return [tuple(s) for s in spans[:limit]]


# --- the headline ------------------------------------------------------------------------------

def _usd(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1e9:
        return f"{sign}${value / 1e9:,.2f} bn"
    if value >= 1e6:
        return f"{sign}${value / 1e6:,.2f} m"
    if value >= 1e4:
        return f"{sign}${value / 1e3:,.0f} k"
    return f"{sign}${value:,.0f}"


def _headline(run: _Run) -> str:
    s = run.summary
    minutes = run.minute(run.steps)
    parts = [f"{_plural(s.get('accounts'), 'account')} traded {', '.join(run.markets) or 'no market'} for "
             f"{minutes:,.0f} minutes of {s.get('scenario')} ({s.get('mode')} mode, seed {s.get('seed')})"
             + ("" if s.get("status") in (None, "completed") else f"; the run {s.get('status')}: {s.get('error', '')}")
             + "."]
    window = s.get("crash_window")
    crash_start = window[0] if window else None

    def into_crash(step) -> str:
        if crash_start is None or step is None:
            return ""
        delta = run.minute(step) - run.minute(crash_start)
        return (f" ({_minutes(delta)} into the slide)" if delta >= 0 else f" ({_minutes(-delta)} before the slide began)")

    away = run.away_any()
    if away:
        parts.append(f"Market makers withdrew at {run.at(away[0][0])}{into_crash(away[0][0])} and "
                     + (f"came back at {run.at(away[-1][1])}." if away[-1][1] < run.steps else "did not come back."))
    if run.trips:
        parts.append(f"The oracle's circuit breaker tripped {_plural(len(run.trips), 'time')}, first at "
                     f"{run.at(run.trips[0]['step'])}.")
    refused = [(m, span) for m in run.markets for span in run.refused(m)]
    if refused:
        parts.append(f"The oracle refused prices in {_plural(len(refused), 'stretch', 'stretches')}, first for "
                     f"{refused[0][0]} at {run.at(refused[0][1][0])}.")
    n = s.get("liquidations", len(run.liquidations)) or 0
    if n:
        parts.append(f"{n:,} liquidations closed {_usd(s.get('liquidated_notional_usd'))} of positions, the first at "
                     f"{run.at(s.get('first_liquidation_step'))}.")
    else:
        parts.append("Nobody was liquidated.")
    dry = run.fund_dry_step()
    low, low_step = run.fund_low()
    if dry is not None:
        parts.append(f"The insurance fund ran dry at {run.at(dry)}{into_crash(dry)}"
                     f" (from {_usd(s.get('insurance_fund_start_usd'))}; {_usd(s.get('insurance_fund_end_usd'))} at the end).")
    elif low is not None:
        parts.append(f"The insurance fund went from {_usd(s.get('insurance_fund_start_usd'))} to a low of {_usd(low)} "
                     f"at {run.at(low_step)} and ended at {_usd(s.get('insurance_fund_end_usd'))}.")
    if run.fills or s.get("adl_fills"):
        parts.append(f"{_plural(run.adl_positions(), 'position')} were auto-deleveraged in "
                     f"{_plural(s.get('adl_fills', len(run.fills)), 'fill')} ({_usd(s.get('adl_notional_usd'))}), "
                     f"the first at {run.at(s.get('first_adl_step'))}.")
    bad = s.get("bad_debt_usd") or 0
    parts.append(f"The exchange ended with {_usd(bad)} of bad debt and is insolvent." if bad > 0 else
                 "The exchange ended with no bad debt.")
    if s.get("socialized_loss_usd"):
        parts.append(f"{_usd(s['socialized_loss_usd'])} of losses were socialised.")
    if s.get("vault_pnl_usd") is not None:
        parts.append(f"The market-making vault {'made' if s['vault_pnl_usd'] >= 0 else 'lost'} "
                     f"{_usd(abs(s['vault_pnl_usd']))}.")
    if s.get("failed_keeper_actions"):
        parts.append(f"{s['failed_keeper_actions']:,} keeper actions reverted.")
    return " ".join(parts)


def _minutes(value: float) -> str:
    value = round(value, 1)
    return f"{value:g} minute" + ("" if value == 1 else "s")


def _plural(n, word: str, words: Optional[str] = None) -> str:
    n = n or 0
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _key_figures(run: _Run) -> list[tuple[str, str, str]]:
    """(label, value, detail) for the cards under the headline."""
    s = run.summary
    low, low_step = run.fund_low()
    dry = run.fund_dry_step()
    return [
        ("Liquidated", _usd(s.get("liquidated_notional_usd")), f"{s.get('liquidations', 0):,} liquidations"),
        ("Bad debt", _usd(s.get("bad_debt_usd")), "insolvent" if s.get("insolvent") else "solvent"),
        ("Insurance fund minimum", _usd(low), (f"at {run.at(low_step)}" + (f"; dry from {run.at(dry)}" if dry is not None else ""))
         if low is not None else ""),
        ("ADL notional", _usd(s.get("adl_notional_usd")),
         f"{s.get('adl_fills', 0):,} fills, {_plural(run.adl_positions(), 'position')}"),
        ("Vault P&L", _usd(s.get("vault_pnl_usd")), f"from {_usd(s.get('vault_value_start_usd'))}"),
        ("Failed keeper actions", f"{s.get('failed_keeper_actions', 0) or 0:,}", "reverted Liquidate / Deleverage"),
    ]


# --- the summary table ---------------------------------------------------------------------------

# summary.json key -> (plain name, unit); unit "usd", "step", "s", or "" (shown as is)
SUMMARY_LABELS = {
    "scenario": ("Scenario", ""), "seed": ("Seed", ""), "mode": ("Mode", ""), "accounts": ("Trader accounts", ""),
    "steps": ("Steps completed", ""), "status": ("Status", ""), "error": ("Error", ""),
    "liquidations": ("Liquidations", ""),
    "liquidated_notional_usd": ("Liquidated notional (at the fill price)", "usd"),
    "insurance_fund_start_usd": ("Insurance fund at the start (free)", "usd"),
    "insurance_fund_end_usd": ("Insurance fund at the end (free)", "usd"),
    "insurance_fund_reserved_end_usd": ("Insurance fund earmarked for open deficits at the end", "usd"),
    "bad_debt_usd": ("Bad debt at the end", "usd"), "insolvent": ("Insolvent (bad debt > 0)", ""),
    "adl_fills": ("ADL fills", ""), "adl_notional_usd": ("ADL notional (at the bankruptcy price)", "usd"),
    "adl_rounds": ("ADL rounds (a block's ADL on one market side)", ""),
    "adl_deficit_usd": ("ADL deficit D put on the winners, over the rounds", "usd"),
    "adl_haircut_usd": ("ADL haircut H = Σ x_i, winners' profit given up (each capped by its uPnL)", "usd"),
    "adl_overshoot_usd": ("ADL overshoot: Σ max(0, H - D) over the rounds", "usd"),
    "adl_undershoot_usd": ("ADL undershoot: Σ max(0, D - H), the deficit not covered from profit", "usd"),
    "adl_winner_notional_closed_usd": ("Winners' notional closed by ADL (at the oracle price)", "usd"),
    "adl_fairness_max": ("ADL fairness: the largest max_i x_i / u_i of any round", ""),
    "socialized_loss_usd": ("Socialised loss", "usd"),
    "vault_value_start_usd": ("Vault value at the start", "usd"), "vault_value_end_usd": ("Vault value at the end", "usd"),
    "vault_pnl_usd": ("Vault P&L", "usd"),
    "first_liquidation_step": ("First liquidation", "step"), "first_adl_step": ("First ADL fill", "step"),
    "failed_keeper_actions": ("Failed keeper actions (reverted)", ""),
    "wall_seconds": ("Wall-clock time of the run", "s"), "step_seconds": ("Seconds per step", "s"),
    "crash_window": ("Crash window (steepest falling leg)", "steps"),
    "positions_opened": ("Opening-book positions opened", ""), "positions_rejected": ("Opening-book positions refused", ""),
    "keeper_liquidations_held": ("Liquidations held back a step by the keepers' fund budget", ""),
    "tokens_usd": ("Tokens held by the exchange at the end", "usd"), "claims_usd": ("Claims of all accounts at the end", "usd"),
    "shocks": ("Crash sizes drawn for this seed", ""),
}


def _summary_rows(run: _Run) -> list[tuple[str, str, str]]:
    rows = []
    for key, value in run.summary.items():
        if key == "traceback":
            continue
        label, unit = SUMMARY_LABELS.get(key, (key, ""))
        if value is None:
            text = "-"
        elif unit == "usd":
            text = f"${value:,.2f}"
        elif unit == "step":
            text = f"{run.at(value)} (step {value:,})"
        elif unit == "steps" and isinstance(value, list) and len(value) == 2:
            text = f"{run.at(value[0])} to {run.at(value[1])} (steps {value[0]:,}-{value[1]:,})"
        elif unit == "s":
            text = f"{value:,} s"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, float):
            text = f"{value:,.2f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        rows.append((label, text, key))
    return rows


# --- the charts ----------------------------------------------------------------------------------

COLORS = {"fundamental": "#9e9e9e", "external": "#1f77b4", "oracle": "#d62728", "depth": "rgba(44,160,44,0.10)",
          "long": "#2ca02c", "short": "#ff7f0e", "liquidated": "#d62728", "adl": "#9467bd",
          "fund": "#1f77b4", "earmarked": "#17becf", "bad_debt": "#d62728", "socialised": "#8c564b"}
MARKET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def _bucket(run: _Run, points: int = MAX_POINTS) -> int:
    need = run.steps / points
    return next((size for size in (1, 2, 4, 5, 10, 15, 20, 30, 60, 120, 300, 600) if size >= need), math.ceil(need))


MAX_BARS = 150  # bars per flow chart: thin 1-step bars over an hour are invisible


def _thin(values: np.ndarray, size: int, how: str = "last") -> np.ndarray:
    """One value per bucket of `size` steps: the bucket's last value (levels), sum (flows), or its
    min or max (the fund's low, the most accounts at risk)."""
    if size == 1:
        return values
    pad = (-len(values)) % size
    if how == "sum":
        return np.nansum(np.concatenate([values, np.zeros(pad)]).reshape(-1, size), axis=1)
    if how in ("min", "max"):
        reduce = np.nanmin if how == "min" else np.nanmax
        return reduce(np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, size), axis=1)
    if how == "first":
        return values[::size]
    last = np.arange(size - 1, len(values) + pad, size)
    return values[np.minimum(last, len(values) - 1)]


def _figure(run: _Run):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    size = _bucket(run)
    rows: list[tuple[str, str, Optional[str]]] = []  # (kind, title, market)
    for market in run.markets:
        rows.append(("price", f"{market}: prices (USD) and 2% book depth", market))
        rows.append(("oi", f"{market}: open interest (units of {market})", market))
        if _has_flows(run, market):
            rows.append(("flow", f"{market}: liquidated and ADL notional (bars: USD per {_per(run, _bucket(run, MAX_BARS))}; dotted: cumulative)",
                         market))
    if "accounts_at_risk" in run.first:  # runs before the column have none
        rows.append(("risk", "Accounts at risk: holding the market, value below 1.25 x maintenance margin", None))
    rows.append(("fund", "Insurance fund, bad debt and socialised loss (USD, protocol-wide)", None))
    specs = [[{"secondary_y": kind in ("price", "flow")}] for kind, _, _ in rows]
    heights = [1.4 if kind == "price" else 1.0 for kind, _, _ in rows]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.045 / max(1, len(rows) / 6),
                        subplot_titles=[title for _, title, _ in rows], specs=specs, row_heights=heights)
    minutes = None
    for index, (kind, _, market) in enumerate(rows, start=1):
        cols = run.cols[market] if market else run.first
        x = _thin(cols["step"], size) * run.step_seconds / 60
        minutes = x
        legend = f"legend{index}" if index > 1 else "legend"
        common = dict(legend=legend)
        if kind == "price":
            oracle = np.where(cols["oracle_price"] > 0, cols["oracle_price"], np.nan)
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["depth2pct_usd"], size), name="2% depth (right axis)",
                                     fill="tozeroy", line=dict(width=0), fillcolor=COLORS["depth"], **common),
                          row=index, col=1, secondary_y=True)
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["fundamental"], size), name="fundamental",
                                     line=dict(color=COLORS["fundamental"], width=1), **common), row=index, col=1)
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["external_price"], size), name="external",
                                     line=dict(color=COLORS["external"], width=1), **common), row=index, col=1)
            fig.add_trace(go.Scatter(x=x, y=_thin(oracle, size), name="oracle (on chain; gap = refused)",
                                     line=dict(color=COLORS["oracle"], width=1.5, shape="hv"), connectgaps=False,
                                     **common), row=index, col=1)
            fig.update_yaxes(title_text="USD", row=index, col=1, secondary_y=False)
            # its own round ticks (plotly.js 3 syncs an overlaying axis's ticks to the left grid: 0.97M, 6.68M, ...)
            fig.update_yaxes(title_text="depth USD", row=index, col=1, secondary_y=True, showgrid=False, rangemode="tozero",
                             tickmode="auto", tickformat="~s")
        elif kind == "oi":
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["long_oi"], size), name="long", line=dict(color=COLORS["long"]),
                                     **common), row=index, col=1)
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["short_oi"], size), name="short",
                                     line=dict(color=COLORS["short"]), **common), row=index, col=1)
            fig.update_yaxes(title_text=market, rangemode="tozero", row=index, col=1)
        elif kind == "flow":
            bars = _bucket(run, MAX_BARS)
            bx = (_thin(cols["step"], bars, "first") + bars / 2) * run.step_seconds / 60
            fig.add_trace(go.Bar(x=bx, y=_thin(cols["liquidated_notional_usd"], bars, "sum"), name="liquidated",
                                 marker_color=COLORS["liquidated"], **common), row=index, col=1)
            fig.add_trace(go.Bar(x=bx, y=_thin(cols["adl_notional_usd"], bars, "sum"), name="ADL",
                                 marker_color=COLORS["adl"], **common), row=index, col=1)
            for key, name, color in (("liquidated_notional_usd", "liquidated, cumulative (right axis)", "liquidated"),
                                     ("adl_notional_usd", "ADL, cumulative (right axis)", "adl")):
                fig.add_trace(go.Scatter(x=x, y=_thin(np.cumsum(np.nan_to_num(cols[key])), size), name=name,
                                         line=dict(color=COLORS[color], width=1.2, dash="dot"), **common),
                              row=index, col=1, secondary_y=True)
            fig.update_yaxes(title_text="USD", row=index, col=1, secondary_y=False)
            fig.update_yaxes(title_text="cumulative USD", row=index, col=1, secondary_y=True, showgrid=False,
                             rangemode="tozero", tickmode="auto", tickformat="~s")
        elif kind == "risk":
            for number, other in enumerate(run.markets):
                fig.add_trace(go.Scatter(x=x, y=_thin(run.cols[other]["accounts_at_risk"], size, "max"), name=other,
                                         line=dict(color=MARKET_COLORS[number % len(MARKET_COLORS)], width=1.5,
                                                   shape="hv"), **common), row=index, col=1)
            fig.update_yaxes(title_text="accounts", rangemode="tozero", row=index, col=1)
        else:
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["insurance_fund_usd"], size, "min"), name="fund (free)",
                                     line=dict(color=COLORS["fund"]), **common), row=index, col=1)
            if "insurance_fund_reserved_usd" in cols:  # runs before the earmark have no column
                fig.add_trace(go.Scatter(x=x, y=_thin(cols["insurance_fund_reserved_usd"], size), name="fund (earmarked)",
                                         line=dict(color=COLORS["earmarked"], dash="dash"), **common), row=index, col=1)
            fig.add_trace(go.Scatter(x=x, y=_thin(cols["bad_debt_usd"], size), name="bad debt",
                                     line=dict(color=COLORS["bad_debt"]), **common), row=index, col=1)
            if "socialized_usd" in cols:
                socialised = np.zeros(len(cols["step"]))  # protocol-wide: the markets' sum per step
                for other in run.markets:
                    theirs = np.nan_to_num(run.cols[other]["socialized_usd"])[:len(socialised)]
                    socialised[:len(theirs)] += theirs
                fig.add_trace(go.Scatter(x=x, y=_thin(np.cumsum(socialised), size), name="socialised loss (cumulative)",
                                         line=dict(color=COLORS["socialised"], dash="dot"), **common), row=index, col=1)
            fig.update_yaxes(title_text="USD", rangemode="tozero", row=index, col=1)
        # one legend beside each chart
        domain = fig.layout[f"yaxis{_axis_number(fig, index)}"].domain
        fig.layout[legend] = dict(y=domain[1], yanchor="top", x=1.06, xanchor="left", font=dict(size=11),
                                  bgcolor="rgba(255,255,255,0.6)")
    _mark_events(fig, run, rows)
    fig.update_xaxes(title_text=f"minutes from the start (1 step = {run.step_seconds:g} s)", row=len(rows), col=1)
    fig.update_xaxes(showticklabels=True, showspikes=True, spikemode="across", spikethickness=1)
    fig.update_layout(height=max(420, 230 * sum(heights)), margin=dict(l=70, r=230, t=70, b=50),
                      barmode="stack", bargap=0, hovermode="x unified", template="plotly_white",
                      font=dict(family="system-ui, sans-serif", size=12))
    return fig


def _axis_number(fig, row: int) -> str:
    ref = fig.get_subplot(row, 1)
    name = ref.yaxis.plotly_name  # "yaxis" or "yaxisN"
    return name[len("yaxis"):]


def _per(run: _Run, size: int) -> str:
    seconds = size * run.step_seconds
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def _has_flows(run: _Run, market: str) -> bool:
    cols = run.cols[market]
    return bool(np.nansum(cols["liquidated_notional_usd"]) > 0 or np.nansum(cols["adl_notional_usd"]) > 0)


def _mark_events(fig, run: _Run, rows) -> None:
    """The scenario's events on the shared time axis: the crash window and the market makers'
    absence across every chart; oracle refusals and breaker trips on their market's charts.
    Shapes are plain dicts set once (plotly's add_vrect per subplot takes seconds)."""
    m = run.minute
    shapes, notes = [], []

    def band(x0, x1, color, yref="paper", y0=0.0, y1=1.0):
        shapes.append(dict(type="rect", xref="x", yref=yref, x0=x0, x1=x1, y0=y0, y1=y1, fillcolor=color,
                           line=dict(width=0), layer="below"))

    def note(x, text, color, yref="paper", y=1.0, shift=0, anchor="bottom"):
        notes.append(dict(x=x, y=y, xref="x", yref=yref, text=text, showarrow=False, xanchor="left", yanchor=anchor,
                          yshift=shift, font=dict(size=11, color=color)))

    window = run.summary.get("crash_window")
    if window:
        band(m(window[0]), m(window[1]), "rgba(214,39,40,0.07)")
        note(m(window[0]), "crash window", "#b22", shift=24)
    away = run.away_any()
    for start, end in away:
        band(m(start), m(end), "rgba(255,165,0,0.08)")
    if away:
        note(m(away[0][0]), "market makers away", "#c70", shift=40)
    for index, (kind, _, market) in enumerate(rows, start=1):
        if market is None:
            continue
        yref = f"y{_axis_number(fig, index)} domain"
        spans = run.refused(market)
        for start, end in spans:
            band(m(start), m(end), "rgba(120,120,120,0.18)", yref=yref)
        if kind != "price":
            continue
        if spans:
            note(m(spans[0][0]), "oracle refused", "#555", yref=yref, y=0.02, anchor="bottom")
        market_id = run.markets.index(market)
        for trip in [t for t in run.trips if t.get("marketId") == market_id][:20]:
            shapes.append(dict(type="line", xref="x", yref=yref, x0=m(trip["step"]), x1=m(trip["step"]), y0=0, y1=1,
                               line=dict(color="#000", width=1, dash="dot")))
            note(m(trip["step"]), "breaker tripped", "#000", yref=yref, y=0.98, anchor="top")
    fig.update_layout(shapes=list(fig.layout.shapes) + shapes, annotations=list(fig.layout.annotations) + notes)


# --- who paid -----------------------------------------------------------------------------------

WAD = 1e18


def _who_paid(run: _Run):
    """(figure, None) or (None, why): the liquidation penalty each liquidated account paid; who
    covered the deficits liquidations left (fund, socialised, nobody: bad debt); the profit each
    ADL'd winner gave up (`counterpartyPnl`, at the ADL price against its entry)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not run.liquidations and not run.fills:
        return None, "Nobody was liquidated or auto-deleveraged: nobody paid."
    penalty: dict = {}
    for e in run.liquidations:
        penalty[e.get("accountId")] = penalty.get(e.get("accountId"), 0.0) + float(e.get("penalty") or 0) / WAD
    given_up: dict = {}
    for e in run.fills:
        if "counterpartyPnl" in e:
            given_up[e.get("counterpartyId")] = given_up.get(e.get("counterpartyId"), 0.0) + e["counterpartyPnl"] / WAD
    covered = {name: sum(float(e.get(key) or 0) for e in run.liquidations) / WAD
               for name, key in (("insurance fund", "fundPaid"), ("socialised", "socialized"), ("bad debt", "badDebt"))}
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=[
        f"Liquidated accounts ({len(penalty):,}): penalty paid each",
        "Deficits of liquidated accounts: who covered them",
        f"ADL'd winners ({len(given_up):,}): profit given up each"])
    if penalty:
        fig.add_trace(go.Histogram(x=list(penalty.values()), nbinsx=30, marker_color=COLORS["liquidated"],
                                   name="liquidated accounts", hovertemplate="%{x} USD: %{y} accounts<extra></extra>"),
                      row=1, col=1)
    fig.add_trace(go.Bar(x=list(covered), y=list(covered.values()), text=[_usd(v) for v in covered.values()],
                         textposition="outside", cliponaxis=False, name="deficits",
                         marker_color=[COLORS["fund"], COLORS["socialised"], COLORS["bad_debt"]],
                         hovertemplate="%{x}: %{y:$,.0f}<extra></extra>"), row=1, col=2)
    if given_up:
        fig.add_trace(go.Histogram(x=list(given_up.values()), nbinsx=30, marker_color=COLORS["adl"], name="ADL winners",
                                   hovertemplate="%{x} USD: %{y} winners<extra></extra>"), row=1, col=3)
    for col, (text, empty) in enumerate(((("USD", "no liquidation") if penalty else ("", "no liquidation")),
                                         ("USD", ""), ("USD", "no ADL fill" if not run.fills else
                                                       "no counterpartyPnl in events.jsonl")), start=1):
        fig.update_xaxes(title_text=text if col != 2 else "", row=1, col=col)
        if (col == 1 and not penalty) or (col == 3 and not given_up):
            fig.add_annotation(text=empty, showarrow=False, xref=f"x{col} domain", yref=f"y{col} domain", x=0.5,
                               y=0.5, font=dict(color="#666"))
    fig.update_yaxes(title_text="accounts", row=1, col=1)
    fig.update_yaxes(title_text="USD", row=1, col=2)
    fig.update_yaxes(title_text="accounts", row=1, col=3)
    fig.update_layout(height=360, showlegend=False, template="plotly_white", margin=dict(l=60, r=30, t=60, b=50),
                      font=dict(family="system-ui, sans-serif", size=12))
    fig.update_annotations(font_size=13, selector=dict(showarrow=False, xref="paper"))
    return fig, None


# --- the page ------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;max-width:1280px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p.headline{font-size:1.1em;line-height:1.5}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:170px;flex:1}
.card .label{color:#666;font-size:.85em}.card .value{font-size:1.5em;font-weight:600}.card .detail{color:#666;font-size:.85em}
table{border-collapse:collapse}th,td{border-bottom:1px solid #eee;padding:4px 12px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{color:#888;font-size:.85em}.note{color:#555}
.out{color:#b22;font-weight:600}"""


def _page(run: _Run, out_dir: Path) -> str:
    s = run.summary
    esc = html.escape
    title = f"perpsim: {s.get('scenario')} ({s.get('mode')}, seed {s.get('seed')}, {s.get('accounts')} accounts)"
    cards = "".join(f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
                    f'<div class="detail">{esc(detail)}</div></div>' for label, value, detail in _key_figures(run))
    if run.markets:
        import plotly.io as pio

        charts = pio.to_html(_figure(run), include_plotlyjs=True, full_html=False, div_id="charts",
                             config={"displaylogo": False, "responsive": True})
        calm = [m for m in run.markets if not _has_flows(run, m)]
        notes = []
        if calm:
            notes.append(("No liquidations and no ADL in " + ", ".join(calm) + ": no chart for them."
                          if len(calm) < len(run.markets) else "No liquidations and no ADL in this run."))
        legend = ("Shaded: <span style='background:rgba(214,39,40,.15)'>&nbsp;crash window&nbsp;</span> "
                  "<span style='background:rgba(255,165,0,.2)'>&nbsp;market makers away (depth factor below "
                  f"{AWAY_BELOW:g})&nbsp;</span> <span style='background:rgba(120,120,120,.25)'>&nbsp;oracle refused "
                  "a price&nbsp;</span>; dotted line: breaker tripped. Drag to zoom (all charts follow), double-click "
                  f"to reset. Lines have one point per {esc(_per(run, _bucket(run)))}; bars sum their interval.")
        charts = (f'<p class="note" id="calm">{esc(" ".join(notes))}</p>' if notes else "") + \
                 f'<p class="note">{legend}</p>{charts}'
        paid, why = _who_paid(run)
        who_paid = (pio.to_html(paid, include_plotlyjs=False, full_html=False, div_id="who-paid-charts",
                                config={"displaylogo": False, "responsive": True}) if paid is not None else
                    f'<p class="note">{esc(why)}</p>')
    else:
        charts = '<p class="note" id="calm">No step completed: nothing to chart.</p>'
        who_paid = '<p class="note">No step completed: nobody paid.</p>'
    note = unfinished_note(s)
    unfinished = f'<p class="out" id="unfinished">Note: {esc(note)}.</p>' if note else ""
    summary_rows = "".join(f'<tr><th>{esc(label)}</th><td class="num">{esc(text)}</td><td><code>{esc(key)}</code></td></tr>'
                           for label, text, key in _summary_rows(run))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style></head>
<body><h1>{esc(title)}</h1>{unfinished}
<section id="headline"><p class="headline">{esc(_headline(run))}</p><div class="cards">{cards}</div></section>
<section id="timeline"><h2>Over time</h2>{charts}</section>
<section id="who-paid"><h2>Who paid</h2>{who_paid}</section>
<section id="scenario"><h2>Scenario</h2>{_scenario_section(out_dir)}</section>
<section id="facts"><h2>Stylized facts</h2>{_facts_section(out_dir, run)}</section>
<section id="summary"><h2>Summary</h2><table>{summary_rows}</table></section>
<p class="note" id="data">Data in this folder: <a href="summary.json">summary.json</a>, <a href="timeseries.csv">timeseries.csv</a>
(per step and market), <a href="events.jsonl">events.jsonl</a> (liquidations, ADL, bad debt, breaker trips),
<a href="failed_actions.jsonl">failed_actions.jsonl</a> (keeper actions that reverted), <a href="scenario.json">scenario.json</a>
(the scenario as it ran).
<code>perpsim report {esc(out_dir.name)}</code> renders this page again.</p>
</body></html>
"""


def _facts_section(out_dir: Path, run: _Run) -> str:
    """The `perpsim facts` table (simulator/facts.py): the figures held against 10 Oct 2025."""
    from simulator.facts import FactsError, compute_facts, fact_rows

    try:
        rows = fact_rows(compute_facts(out_dir, read=(run.summary, run.series, run.events)))
    except (FactsError, KeyError, ValueError, ZeroDivisionError) as exc:
        return f'<p class="note">No facts for this run: {html.escape(str(exc))}</p>'
    body = "".join(f"<tr><th>{html.escape(label)}</th><td class='num'>{html.escape(value)}</td><td>{html.escape(band)}</td>"
                   f"<td class='{'out' if verdict == 'OUT' else ''}'>{html.escape(verdict)}</td></tr>"
                   for label, value, band, verdict in rows)
    return ("<p class='note'>The bands are those of 10 October 2025 (docs/calibration.md); for another scenario read "
            "them as figures, not a verdict.</p><table><tr><th>fact</th><th>value</th><th>band (10 Oct 2025)</th>"
            f"<th></th></tr>{body}</table>")


# --- the scenario ----------------------------------------------------------------------------------

# Market parameters: key -> (plain name, unit); "usd", "frac" (shown in %), "s", or "" (as is)
MARKET_LABELS = {
    "price": ("Start price", "usd"), "imr": ("Initial margin", "frac"), "mmr": ("Maintenance margin", "frac"),
    "tiers": ("Maintenance margin tiers (above notional: rate)", ""), "liquidation_fee": ("Liquidation penalty", "frac"),
    "keeper_share": ("Keeper's share of the penalty", "frac"), "depth2pct": ("Book depth for a 2% move", "usd"),
    "max_impact": ("Largest price impact of one fill", "frac"), "max_open_interest": ("Open-interest cap (0: none)", "usd"),
    "policy": ("Bad-debt policy", ""), "ranking": ("ADL ranking", ""), "heartbeat": ("Oracle heartbeat", "s"),
    "max_deviation": ("Oracle breaker: largest move accepted (0: none)", "frac"), "cooldown": ("Breaker cooldown", "s"),
    "slice_threshold": ("Liquidated in slices above", "usd"), "slice_fraction": ("Slice", "frac"),
    "rate_limit_notional": ("Liquidations per rate-limit window (0: no limit)", "usd"),
    "rate_limit_window": ("Rate-limit window", "s"), "max_funding_rate": ("Funding rate cap (0: no funding)", ""),
    "skew_scale": ("Funding skew scale", "usd"), "match_band": ("Matched fills: band around the oracle", "frac"),
    "min_position_notional": ("Smallest position left open (0: none)", "usd"),
}


def _scenario_section(out_dir: Path) -> str:
    """The scenario's description and parameters (scenario.json): the markets side by side, the
    population, and every other setting folded away."""
    esc = html.escape
    try:
        scenario = json.loads((out_dir / "scenario.json").read_text())
    except FileNotFoundError:
        return '<p class="note">No scenario.json in this folder (a run from before perpsim wrote it): no parameters.</p>'
    except (OSError, ValueError) as exc:
        return f'<p class="note">scenario.json cannot be read ({esc(str(exc))}): no parameters.</p>'
    markets = scenario.get("markets") or []
    keys = list(dict.fromkeys([k for k in MARKET_LABELS if any(k in m for m in markets)]
                              + [k for m in markets for k in m if k != "name"]))

    def cell(key, value) -> str:
        unit = MARKET_LABELS.get(key, ("", ""))[1]
        if key == "tiers" and isinstance(value, list):
            return ", ".join(f"{_usd(t[0])}: {t[1] * 100:g}%" for t in value if isinstance(t, list) and len(t) == 2) or "-"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if unit == "usd":
                return _usd(value)
            if unit == "frac":
                return f"{value * 100:g}%"
            if unit == "s":
                return f"{value:,} s"
            return f"{value:,}" if isinstance(value, int) else f"{value:g}"
        return "-" if value is None else str(value)

    head = "".join(f"<th>{esc(str(m.get('name')))}</th>" for m in markets)
    rows = "".join(f"<tr><th>{esc(MARKET_LABELS.get(k, (k, ''))[0])} <code>{esc(k)}</code></th>"
                   + "".join(f'<td class="num">{esc(cell(k, m.get(k)))}</td>' for m in markets) + "</tr>" for k in keys)
    # the run's account count (--accounts) is the top-level `accounts`; the file's is population.accounts
    population = [kv for kv in _flat(scenario.get("population") or {}, "population") if kv[0] != "population.accounts"]
    others = [kv for section in ("liquidity", "oracle", "agents", "price_paths", "correlation")
              for kv in _flat(scenario.get(section), section)]
    accounts = scenario.get("accounts") or (scenario.get("population") or {}).get("accounts")
    run = [("accounts", accounts), *((k, scenario.get(k)) for k in ("steps", "step_seconds", "seed", "mode"))]

    def pairs(items) -> str:
        return "".join(f"<tr><th><code>{esc(k)}</code></th><td>{esc(_value(v))}</td></tr>" for k, v in items)

    return (f"<p>{esc(scenario.get('description') or '')}</p>"
            f'<h3>Markets</h3><div style="overflow-x:auto"><table id="markets"><tr><th></th>{head}</tr>{rows}</table></div>'
            f"<h3>Run and population</h3><table>{pairs(run)}{pairs(population)}</table>"
            f"<details><summary>Every other setting ({len(others)}: liquidity, oracle, agents, price paths)</summary>"
            f"<table>{pairs(others)}</table></details>")


def _flat(value, prefix: str) -> list[tuple[str, object]]:
    """A nested setting as (dotted key, leaf value) pairs; a list of scalars stays one value."""
    if isinstance(value, dict):
        return [kv for key, item in value.items() for kv in _flat(item, f"{prefix}.{key}")]
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return [kv for index, item in enumerate(value) for kv in _flat(item, f"{prefix}.{index}")]
    return [(prefix, value)]


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.10g}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "[]"
    return str(value)
