"""Run outputs: the data files a run writes as it goes (summary.json, timeseries.csv, events.jsonl,
failed_actions.jsonl), and the plots and single-file HTML report rendered from those files, so
`perpsim report DIR` can render any run folder again, also one whose run was killed.

While a run goes, RunWriter appends the new rows of the series and the new events every
FLUSH_SECONDS and then rewrites summary.json atomically with `"status": "running"` and the steps
completed so far; the data files are written before the summary, so the summary never counts a
step the files do not hold. At the end the summary is written once more with the final status. A
completed run's files are byte for byte those written at the end in one go."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import time
from pathlib import Path

from simulator.errors import PerpsimError
from simulator.metrics import SERIES_FIELDS, Metrics

PLOTS = ("prices.png", "liquidations.png", "insurance_and_bad_debt.png", "adl.png")
DATA_FILES = ("timeseries.csv", "events.jsonl", "failed_actions.jsonl")
# Seconds between two flushes of a running run's files: what a kill -9 can lose at most
# (PERPSIM_FLUSH_SECONDS changes it; the tests flush more often).
FLUSH_SECONDS = float(os.environ.get("PERPSIM_FLUSH_SECONDS", "2"))


class ReportError(PerpsimError, FileNotFoundError):
    """A run folder (or one of its files) that cannot be read or rendered: one line naming it."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")


class OutputError(PerpsimError, OSError):
    """An output folder that cannot be created or written."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"cannot write the output folder {path}: {problem}")


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
    creates the folder and empties the data files of an earlier run there (and its plots, so a
    folder never shows another run's report)."""

    def __init__(self, out_dir: Path, metrics: Metrics, flush_seconds: float | None = None):
        self.out_dir = Path(out_dir)
        self.metrics = metrics
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self._written = {"series": 0, "events": 0, "failed": 0}
        self._last_flush = time.monotonic()
        writable_folder(self.out_dir)
        try:
            for name in (*PLOTS, "report.html"):
                (self.out_dir / name).unlink(missing_ok=True)
            self._series = open(self.out_dir / "timeseries.csv", "w", newline="")
            self._events = open(self.out_dir / "events.jsonl", "w")
            self._failed = open(self.out_dir / "failed_actions.jsonl", "w")
        except OSError as exc:
            raise OutputError(self.out_dir, exc.strerror or str(exc)) from None
        # quotes a field with a comma, e.g. a market's name
        self._csv = csv.writer(self._series, lineterminator="\n")
        self._csv.writerow(SERIES_FIELDS)

    def due(self) -> bool:
        """True when FLUSH_SECONDS have passed since the last flush."""
        return time.monotonic() - self._last_flush >= self.flush_seconds

    def flush(self, summary: dict | None = None, sync: bool = True) -> None:
        """Appends the rows and events recorded since the last flush; then, with `summary`, rewrites
        summary.json. With `sync`, the files reach the disk first (a machine that goes down)."""
        metrics, written = self.metrics, self._written
        self._csv.writerows([_cell(row[k]) for k in SERIES_FIELDS] for row in metrics.series[written["series"]:])
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


def _cell(value) -> str:
    if value is None:  # not known at that step (e.g. the vault's value while a price is refused)
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


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
    """Plots (PNG) and report.html for a run folder; returns the report's path. A folder with no
    completed step has nothing to plot: ReportError."""
    summary, series, events = read_run(out_dir)
    if not series:
        why = unfinished_note(summary) or "the run has no step"
        raise ReportError(out_dir, f"no step completed, nothing to plot ({why})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markets = list(series)
    n = max(len(markets), 1)

    def column(rows, key):
        return [float(r[key]) for r in rows]

    fig, axes = plt.subplots(n, 1, figsize=(11, 2.8 * n), sharex=True, squeeze=False)
    for ax, market in zip(axes[:, 0], markets):
        rows = series[market]
        steps = column(rows, "step")
        ax.plot(steps, column(rows, "fundamental"), color="0.7", lw=1, label="fundamental")
        ax.plot(steps, column(rows, "external_price"), color="tab:blue", lw=1, label="external")
        oracle = [p if p > 0 else float("nan") for p in column(rows, "oracle_price")]
        ax.step(steps, oracle, where="post", color="tab:red", lw=1, label="oracle (on chain)")
        ax.set_ylabel(f"{market} USD")
        depth_ax = ax.twinx()
        depth_ax.fill_between(steps, column(rows, "depth2pct_usd"), color="tab:green", alpha=0.12, step="post")
        depth_ax.set_ylabel("2% depth USD", color="tab:green")
        ax.legend(loc="lower left", fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("Prices, oracle and book depth")
    _save(fig, out_dir / "prices.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    for index, market in enumerate(markets):
        rows = [r for r in series[market] if float(r["liquidated_notional_usd"]) > 0]
        # One vertical line per step with liquidations: bars for every step are slow to draw.
        ax.vlines(column(rows, "step"), 0, column(rows, "liquidated_notional_usd"), label=market, color=f"C{index}", alpha=0.7, lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("liquidated notional USD")
    ax.set_title(f"Liquidations per step ({summary.get('liquidations', 0)} in all)")
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, out_dir / "liquidations.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    first = series[markets[0]] if markets else []
    steps = column(first, "step")
    ax.plot(steps, column(first, "insurance_fund_usd"), color="tab:blue", label="insurance fund (free)")
    if first and "insurance_fund_reserved_usd" in first[0]:  # runs before the earmark have no column
        ax.plot(steps, column(first, "insurance_fund_reserved_usd"), color="tab:blue", ls="--",
                label="earmarked for open deficits")
    ax.plot(steps, column(first, "bad_debt_usd"), color="tab:red", label="bad debt")
    ax.set_xlabel("step")
    ax.set_ylabel("USD")
    ax.set_title("Insurance fund and bad debt")
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, out_dir / "insurance_and_bad_debt.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    fills = [e for e in events if e["event"] == "AdlFill"]
    for market_index, market in enumerate(markets):
        mine = [e for e in fills if e["marketId"] == market_index]
        if mine:
            ax.scatter([e["step"] for e in mine], [abs(e["size"]) * e["price"] / 1e36 for e in mine], s=10, label=market)
    ax.set_xlabel("step")
    ax.set_ylabel("ADL fill notional USD")
    ax.set_title(f"ADL fills ({len(fills)})")
    if fills:
        ax.legend(fontsize=8, loc="upper right")
    _save(fig, out_dir / "adl.png")

    report = out_dir / "report.html"
    atomic_write(report, _html(summary, out_dir))
    return report


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _html(summary: dict, out_dir: Path) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in summary.items())
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode((out_dir / name).read_bytes()).decode()}"></figure>'
        for name in PLOTS
    )
    title = f"perpsim: {summary.get('scenario')} ({summary.get('mode')}, seed {summary.get('seed')})"
    note = unfinished_note(summary)
    warning = f'<p style="color:#b00"><strong>{html.escape(note)}</strong></p>' if note else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border-bottom:1px solid #ddd;padding:4px 12px;text-align:left}}
img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>{warning}
<h2>Summary</h2><table>{rows}</table>
<h2>Plots</h2>{images}
<p>Data: summary.json, timeseries.csv (per step and market), events.jsonl (liquidations, ADL, bad debt,
breaker trips), failed_actions.jsonl (keeper actions that reverted).</p>
</body></html>
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
