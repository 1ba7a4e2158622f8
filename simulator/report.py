"""Run outputs: the data files a run writes as it ends (summary.json, timeseries.csv, events.jsonl,
failed_actions.jsonl), and the plots and single-file HTML report rendered from those files, so
`perpsim report DIR` can render any run folder again."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path

from simulator.errors import PerpsimError
from simulator.metrics import SERIES_FIELDS, Metrics

PLOTS = ("prices.png", "liquidations.png", "insurance_and_bad_debt.png", "adl.png")


class ReportError(PerpsimError, FileNotFoundError):
    def __init__(self, folder: Path, problem: str):
        super().__init__(f"{folder}: {problem}")


def atomic_write(path: Path, text: str) -> None:
    # A run that dies while writing never leaves a half file behind the previous good one.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_data(out_dir: Path, metrics: Metrics, summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")  # quotes a field with a comma, e.g. a market's name
    writer.writerow(SERIES_FIELDS)
    writer.writerows([_cell(row[k]) for k in SERIES_FIELDS] for row in metrics.series)
    atomic_write(out_dir / "timeseries.csv", table.getvalue())
    atomic_write(out_dir / "events.jsonl", "".join(json.dumps(e) + "\n" for e in metrics.events))
    atomic_write(out_dir / "failed_actions.jsonl", "".join(json.dumps(e) + "\n" for e in metrics.failed_actions))
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def _cell(value) -> str:
    if value is None:  # not known at that step (e.g. the vault's value while a price is refused)
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_run(out_dir: Path) -> tuple[dict, dict[str, list[dict]], list[dict]]:
    """summary, series per market, events of a run folder."""
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        raise ReportError(out_dir, "no summary.json: not a perpsim run folder")
    summary = json.loads(summary_path.read_text())
    series: dict[str, list[dict]] = {}
    with open(out_dir / "timeseries.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row["market"], []).append(row)
    events = [json.loads(line) for line in (out_dir / "events.jsonl").read_text().splitlines() if line]
    return summary, series, events


def render_report(out_dir: Path) -> Path:
    """Plots (PNG) and report.html for a run folder; returns the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, series, events = read_run(out_dir)
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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border-bottom:1px solid #ddd;padding:4px 12px;text-align:left}}
img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
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
