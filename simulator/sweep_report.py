"""A sweep's report: `<sweep>/report.html`, one self-contained page (plotly, its JavaScript embedded:
no network at view time) rendered from sweep.json alone, so `perpsim report <sweep>` renders it
again.

From the top: what ran; the risk figures of each combination with their bootstrap 95% intervals
(simulator/risk.py computes them; this page only shows sweep.json's); the probabilities and the
loss figures as bars with their intervals; each risk figure's distribution over the paths (one box
per combination, every path a dot); a heatmap when two settings vary; every run with a link to
its report. The figures come from `risk.FIGURES`, so a figure added there appears here without a
change. A chart with nothing to show is replaced by a line saying why."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any, Optional

from simulator.report import CSS, ReportError, _usd, atomic_write
from simulator.risk import FIGURES
from simulator.sweep import setting_names, value_text

CI = ("_ci_low", "_ci_high")
ZERO_USD = 0.005  # below half a cent a loss is rounding noise: a chart of it would be empty

# Plain names of the run columns the risk figures are computed from; another column is shown by
# its key with the underscores read as spaces.
COLUMN_NAMES = {
    "bad_debt_usd": "bad debt",
    "insurance_fund_drawdown_usd": "insurance fund drawdown",
    "adl_notional_usd": "ADL notional",
    "liquidated_notional_usd": "liquidated notional",
    "socialized_loss_usd": "socialised loss",
    "adl_overshoot_usd": "ADL overshoot",
    "vault_pnl_usd": "vault P&L",
    "adl_winner_notional_closed_usd": "winners' notional closed by ADL",
    "adl_fairness_max": "ADL fairness (max x/u)",
}
# Columns that are ratios, not USD (ADL fairness: the largest share of a winner's profit one round took).
RATIO_COLUMNS = {"adl_fairness_max"}
FIGURE_NAMES = {"p_insolvency": "P(insolvency)", "p_adl": "P(ADL)", "lar95": "LaR95"}
STATISTICS = {"mean": "mean", "p05": "5% worst (p05)", "p95": "95th percentile"}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")


def render_sweep_report(out_dir: Path) -> Path:
    """report.html of a sweep folder, from its sweep.json; returns its path."""
    path = out_dir / "sweep.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(out_dir, "no sweep.json: not a perpsim sweep folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(path, f"cannot read it: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("combinations"), list):
        raise ReportError(path, "not a sweep document (no combinations)")
    report = out_dir / "report.html"
    atomic_write(report, _page(_Sweep(document, out_dir)))
    return report


# --- names -----------------------------------------------------------------------------------------


def figure_name(name: str) -> str:
    """p_insolvency -> P(insolvency), bad_debt_var95 -> bad debt VaR95, a new figure by its parts."""
    if name in FIGURE_NAMES:
        return FIGURE_NAMES[name]
    column = next((col for fig, col, _ in FIGURES if fig == name), None)
    if name.startswith("p_"):
        return f"P({name[2:].replace('_', ' ')})"
    prefix, _, stat = name.rpartition("_")
    subject = column_name(column) if column else prefix.replace("_", " ")
    if stat in STATISTICS:
        return f"{subject} {STATISTICS[stat]}"
    match = re.fullmatch(r"(var|es)(\d+)", stat)
    if match:
        return f"{subject} {match.group(1).replace('var', 'VaR').replace('es', 'ES')}{match.group(2)}"
    return name.replace("_", " ")


def column_name(column: str) -> str:
    return COLUMN_NAMES.get(column, column.removesuffix("_usd").replace("_", " "))


def is_probability(name: str) -> bool:
    return name.startswith("p_")


def is_ratio(name: str) -> bool:
    """A figure of a ratio column (shown as a number, not in USD)."""
    return any(fig == name and col in RATIO_COLUMNS for fig, col, _ in FIGURES)


def _text(name: str, value) -> str:
    if value is None:
        return "-"
    if is_ratio(name):
        return f"{value:.3f}"
    return f"{value:.2f}" if is_probability(name) else _usd(value)


# --- what sweep.json says --------------------------------------------------------------------------


class _Sweep:
    def __init__(self, document: dict, out_dir: Path):
        self.doc, self.out_dir = document, out_dir
        self.varied: list[str] = list(document.get("varied") or [])
        self.names = setting_names(self.varied)
        self.combinations: list[dict] = document["combinations"]
        self.runs: list[dict] = list(document.get("runs") or [])
        self.labels = {c["combination"]: self.label(c) for c in self.combinations}
        # figures sweep.json holds, in risk.FIGURES order, grouped by the run column they come from
        self.figures = [name for name, _, _ in FIGURES if any(name in c for c in self.combinations)]
        self.columns: dict[str, list[str]] = {}
        for name, column, _ in FIGURES:
            if name in self.figures:
                self.columns.setdefault(column, []).append(name)

    def label(self, combination: dict, sep: str = ", ") -> str:
        if not self.varied:
            return combination["combination"]
        return sep.join(f"{self.names[p]} = {value_text(combination.get(p))}" for p in self.varied)

    def completed(self, combination: str) -> list[dict]:
        return [r for r in self.runs if r.get("combination") == combination and r.get("status") == "completed"]

    def values(self, combination: str, column: str) -> tuple[list[float], list[str]]:
        runs = [r for r in self.completed(combination) if r.get(column) is not None]
        return [float(r[column]) for r in runs], [f"{r['run']} (seed {r.get('seed')})" for r in runs]


# --- the charts -------------------------------------------------------------------------------------


def _layout(fig, height: int, **more) -> None:
    fig.update_layout(height=height, template="plotly_white", margin=dict(l=70, r=30, t=50, b=40),
                      font=dict(family="system-ui, sans-serif", size=12),
                      legend=dict(orientation="h", y=-0.15, x=0), **more)


def _wrap(label: str, width: int = 22) -> str:
    """A combination's label on axis ticks: one setting a line, long ones cut at spaces."""
    lines = []
    for part in label.split(", "):
        words, line = part.split(" "), ""
        for word in words:
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    return "<br>".join(lines)


def _ticks(sweep: _Sweep, pixels: int) -> list[str]:
    """The combinations' labels under a chart `pixels` wide: upright, wrapped to their share of it
    (about 7 px a character); too many to stand side by side, one line each (plotly slants them)."""
    n = max(1, len(sweep.combinations))
    width = pixels // n // 7
    if width < 9:
        return [sweep.labels[c["combination"]] for c in sweep.combinations]
    return [_wrap(sweep.labels[c["combination"]], width) for c in sweep.combinations]


def _room(fig, ticks: list[str]) -> None:
    """Upright tick labels and room below the axis for their lines."""
    lines = max((t.count("<br>") + 1 for t in ticks), default=1)
    if all(len(line) < 40 for t in ticks for line in t.split("<br>")):
        fig.update_xaxes(tickangle=0)
    fig.update_layout(margin=dict(b=30 + 16 * lines))


def _probability_chart(sweep: _Sweep):
    import plotly.graph_objects as go

    names = [n for n in sweep.figures if is_probability(n)]
    if not names:
        return None, "No probability among the risk figures."
    fig = go.Figure()
    x = _ticks(sweep, 1100)
    for index, name in enumerate(names):
        y = [c.get(name) for c in sweep.combinations]
        low = [c.get(f"{name}_ci_low") for c in sweep.combinations]
        high = [c.get(f"{name}_ci_high") for c in sweep.combinations]
        fig.add_trace(go.Bar(x=x, y=y, name=figure_name(name), marker_color=COLORS[index % len(COLORS)],
                             text=[_text(name, v) for v in y], textposition="outside", cliponaxis=False,
                             error_y=dict(type="data", symmetric=False, color="#555", thickness=1.2, width=5,
                                          array=[(h - v) if None not in (h, v) else 0 for v, h in zip(y, high)],
                                          arrayminus=[(v - lo) if None not in (lo, v) else 0 for v, lo in zip(y, low)]),
                             customdata=list(zip(low, high)),
                             hovertemplate="%{y:.2f} [%{customdata[0]:.2f}, %{customdata[1]:.2f}]"))
    fig.update_yaxes(range=[0, 1.12], title_text="probability over paths", tickformat=".1f")
    _layout(fig, 380, barmode="group", title=dict(text="Probabilities (bars: over the paths; whiskers: 95% interval)",
                                                  font=dict(size=14)))
    fig.update_layout(legend=dict(orientation="v", x=1.01, y=1, xanchor="left", yanchor="top"))
    _room(fig, x)
    return fig, None


def _column_chart(sweep: _Sweep, column: str):
    """Left: the column's values over the paths, a box per combination; right: its figures (mean,
    VaR, ES) per combination with their intervals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    label = column_name(column)
    per = {c["combination"]: sweep.values(c["combination"], column) for c in sweep.combinations}
    every = [v for values, _ in per.values() for v in values]
    if not every:
        return None, f"No {label}: no completed run recorded it (`{column}`)."
    if all(abs(v) < ZERO_USD for v in every):
        return None, (f"No {label} on any of the {len(every)} completed paths of any combination "
                      f"(all 0): nothing to chart.")
    figures = [n for n in sweep.columns[column] if not is_probability(n)]
    unit, number = ("ratio", "%{y:.3f}") if column in RATIO_COLUMNS else ("USD", "%{y:$,.0f}")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.09,
                        subplot_titles=[f"{label} over the paths ({unit}; a dot per path)",
                                        f"{label}: risk figures ({unit}; whiskers: 95% interval)"])
    ticks = _ticks(sweep, 480)
    for index, combination in enumerate(sweep.combinations):
        values, runs = per[combination["combination"]]
        fig.add_trace(go.Box(y=values, x=[ticks[index]] * len(values), name=sweep.labels[combination["combination"]],
                             boxpoints="all", jitter=0.4, pointpos=0, text=runs, showlegend=False,
                             marker=dict(color=COLORS[index % len(COLORS)], size=5),
                             hovertemplate="%{text}: " + number + "<extra></extra>"), row=1, col=1)
    for index, name in enumerate(figures):
        y = [c.get(name) for c in sweep.combinations]
        low = [c.get(f"{name}_ci_low") for c in sweep.combinations]
        high = [c.get(f"{name}_ci_high") for c in sweep.combinations]
        fig.add_trace(go.Bar(x=ticks, y=y, name=figure_name(name).removeprefix(label + " "),
                             marker_color=COLORS[(index + 4) % len(COLORS)], legendgroup=column,
                             error_y=dict(type="data", symmetric=False, color="#555", thickness=1.2, width=5,
                                          array=[(h - v) if None not in (h, v) else 0 for v, h in zip(y, high)],
                                          arrayminus=[(v - lo) if None not in (lo, v) else 0 for v, lo in zip(y, low)]),
                             customdata=list(zip(low, high)),
                             hovertemplate=(number + " [" + number.replace("y", "customdata[0]") + ", "
                                            + number.replace("y", "customdata[1]") + "]")),
                      row=1, col=2)
    fig.update_yaxes(title_text=unit, row=1, col=1)
    _layout(fig, 420, barmode="group", boxmode="group")
    fig.update_layout(legend=dict(orientation="v", x=1.01, y=1, xanchor="left", yanchor="top"),
                      margin=dict(r=110))
    _room(fig, ticks)
    fig.update_annotations(font=dict(size=13))
    return fig, None


def _heatmap(sweep: _Sweep):
    """The figures over the two varied settings' grid, one at a time (the menu picks it)."""
    import plotly.graph_objects as go

    if len(sweep.varied) != 2:
        n = len(sweep.varied)
        return None, (f"{'One setting varies' if n == 1 else f'{n} settings vary'}: a heatmap needs exactly two "
                      "(the bars above compare the combinations)." if n else "Nothing varies: no heatmap.")
    a, b = sweep.varied

    def axis(path):
        seen = []
        for c in sweep.combinations:
            if c.get(path) not in seen:
                seen.append(c.get(path))
        return seen

    xs, ys = axis(a), axis(b)
    at = {(c.get(a), c.get(b)): c for c in sweep.combinations}
    shown = [n for n in sweep.figures if any(c.get(n) is not None for c in sweep.combinations)]
    if not shown:
        return None, "No combination has completed a run yet: no heatmap."

    def grid(name):
        z = [[(at.get((x, y)) or {}).get(name) for x in xs] for y in ys]
        text = [[_text(name, v) for v in row] for row in z]
        return z, text

    z, text = grid(shown[0])
    fig = go.Figure(go.Heatmap(z=z, x=[value_text(x) for x in xs], y=[value_text(y) for y in ys], text=text,
                               texttemplate="%{text}", colorscale="Reds", hoverongaps=False,
                               hovertemplate=f"{sweep.names[a]} = %{{x}}<br>{sweep.names[b]} = %{{y}}<br>%{{text}}"
                                             "<extra></extra>"))
    buttons = []
    for name in shown:
        z, text = grid(name)
        buttons.append(dict(label=figure_name(name), method="restyle", args=[{"z": [z], "text": [text]}]))
    fig.update_layout(updatemenus=[dict(buttons=buttons, x=0.12, xanchor="left", y=1.18, yanchor="top",
                                        direction="down", showactive=True)],
                      annotations=[dict(text="figure:", x=0, xref="paper", xanchor="left", y=1.15, yref="paper",
                                        yanchor="top", showarrow=False)])
    fig.update_xaxes(title_text=sweep.names[a], type="category")
    fig.update_yaxes(title_text=sweep.names[b], type="category")
    _layout(fig, max(360, 60 * len(ys) + 200))
    fig.update_layout(margin=dict(t=90))
    return fig, None


# --- the page ------------------------------------------------------------------------------------------

PAGE_CSS = CSS + """
.scroll{overflow-x:auto}.ci{color:#888;font-size:.85em;white-space:nowrap}th.comb{white-space:normal;min-width:9em}
td.num{white-space:nowrap}.chart{margin:1.2em 0}.failed{color:#b22}"""


def _page(sweep: _Sweep) -> str:
    import plotly.io as pio

    esc = html.escape
    doc = sweep.doc
    title = (f"perpsim sweep: {doc.get('scenario')} ({doc.get('mode')}, {doc.get('accounts')} accounts, "
             f"{len(sweep.combinations)} combinations x {doc.get('paths_per_combination')} paths)")
    blocks: list[str] = []
    first = [True]

    def chart(div_id: str, made) -> str:
        fig, why = made
        if fig is None:
            return f'<p class="note empty" id="{div_id}">{esc(why)}</p>'
        include = first[0]
        first[0] = False
        return '<div class="chart">' + pio.to_html(fig, include_plotlyjs=include, full_html=False, div_id=div_id,
                                                   config={"displaylogo": False, "responsive": True}) + "</div>"

    blocks.append(chart("chart-probabilities", _probability_chart(sweep)))
    for index, column in enumerate(sweep.columns):
        if all(is_probability(n) for n in sweep.columns[column]):
            continue  # only probabilities come from it (shown above)
        name = column_name(column)
        blocks.append(f'<h3>{esc(name[:1].upper() + name[1:])} <code>{esc(column)}</code></h3>')
        blocks.append(chart(f"chart-{column}", _column_chart(sweep, column)))
    heat = chart("chart-heatmap", _heatmap(sweep))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{PAGE_CSS}</style></head>
<body><h1>{esc(title)}</h1>
<section id="headline"><p class="headline">{esc(_headline(sweep))}</p>{_description(sweep)}{_settings_list(sweep)}</section>
<section id="risk"><h2>Risk figures per combination</h2>
<p class="note">Each figure over the completed paths of its combination, with its bootstrap 95% interval below it
(simulator/risk.py; the README's "Risk figures" defines each). VaR95 = the 95th percentile over the paths, ES95 = the
mean of the worst 5% of paths, LaR95 = VaR95 of the liquidated notional; with few paths VaR99 and ES95 are the worst
path.</p><div class="scroll">{_risk_table(sweep)}</div></section>
<section id="charts"><h2>Charts</h2>{''.join(blocks)}</section>
<section id="heatmap"><h2>Heatmap</h2>{heat}</section>
<section id="runs"><h2>Runs</h2>{_runs_table(sweep)}</section>
<p class="note" id="data">Data in this folder: <a href="sweep.csv">sweep.csv</a> (a row per combination, the figures
with <code>_ci_low</code> / <code>_ci_high</code>), <a href="runs.csv">runs.csv</a> and <a href="runs.parquet">runs.parquet</a>
(a row per run), <a href="sweep.json">sweep.json</a> (both), and a folder per run.
<code>perpsim report {esc(sweep.out_dir.name)}</code> renders this page again.</p>
</body></html>
"""


def _headline(sweep: _Sweep) -> str:
    doc = sweep.doc
    paths = doc.get("paths_per_combination") or 0
    first = doc.get("first_seed")
    seeds = f"seeds {first}-{first + paths - 1}" if paths > 1 and first is not None else f"seed {first}"
    varied = ", ".join(sweep.names[p] for p in sweep.varied) or "nothing"
    parts = [f"{doc.get('scenario')} in {doc.get('mode')} mode with {doc.get('accounts')} accounts: "
             f"{len(sweep.combinations)} combinations of {varied}, each over the same {paths} price paths ({seeds}); "
             f"{doc.get('finished', 0) - doc.get('failed', 0)} of {doc.get('planned')} runs completed"
             + (f", {doc['failed']} failed." if doc.get("failed") else ".")]
    for name in (n for n in sweep.figures if is_probability(n)):
        known = [(c[name], sweep.labels[c["combination"]]) for c in sweep.combinations if c.get(name) is not None]
        if not known:
            continue
        low, high = min(known, key=lambda k: k[0]), max(known, key=lambda k: k[0])
        if len(known) == 1 or low[0] == high[0]:
            parts.append(f"{figure_name(name)} is {low[0]:.2f} in every combination.")
        else:
            parts.append(f"{figure_name(name)} goes from {low[0]:.2f} ({low[1]}) to {high[0]:.2f} ({high[1]}).")
    return " ".join(parts)


def _description(sweep: _Sweep) -> str:
    text = sweep.doc.get("description")
    return f'<p class="note">The scenario: {html.escape(text)}</p>' if text else ""


def _settings_list(sweep: _Sweep) -> str:
    if not sweep.varied:
        return ""
    items = []
    for path in sweep.varied:
        values = [json.loads(text) for text in dict.fromkeys(json.dumps(c.get(path)) for c in sweep.combinations)]
        items.append(f"<li><b>{html.escape(sweep.names[path])}</b> (<code>{html.escape(path)}</code>): "
                     + ", ".join(html.escape(value_text(v)) for v in values) + "</li>")
    return f'<p class="note">Varied (name, key path in the scenario file: values):</p><ul>{"".join(items)}</ul>'


def _risk_table(sweep: _Sweep) -> str:
    esc = html.escape
    head = "".join(f'<th class="comb">{"<br>".join(esc(s) for s in sweep.labels[c["combination"]].split(", "))}'
                   f'<div class="ci">{c.get("completed")}/{c.get("paths")} paths'
                   + (f', <span class="failed">{c["failed"]} failed</span>' if c.get("failed") else "")
                   + "</div></th>" for c in sweep.combinations)
    rows = []
    for name in sweep.figures:
        cells = []
        for c in sweep.combinations:
            value, low, high = c.get(name), c.get(f"{name}_ci_low"), c.get(f"{name}_ci_high")
            # an interval of a loss that is 0 on every path says nothing the 0 does not
            silent = value is None or (not is_probability(name) and all(abs(v or 0) < ZERO_USD for v in (value, low, high)))
            interval = "" if silent else f'<div class="ci">[{_text(name, low)}, {_text(name, high)}]</div>'
            cells.append(f'<td class="num">{esc(_text(name, value))}{interval}</td>')
        rows.append(f"<tr><th>{esc(figure_name(name))} <code>{esc(name)}</code></th>{''.join(cells)}</tr>")
    return f'<table id="risk-table"><tr><th>figure</th>{head}</tr>{"".join(rows)}</table>'


RUN_COLUMNS = (("liquidated_notional_usd", "liquidated"), ("bad_debt_usd", "bad debt"),
               ("insurance_fund_drawdown_usd", "fund drawdown"), ("adl_notional_usd", "ADL notional"),
               ("socialized_loss_usd", "socialised"), ("vault_pnl_usd", "vault P&L"))


def _runs_table(sweep: _Sweep) -> str:
    esc = html.escape
    if not sweep.runs:
        return '<p class="note">No run has finished yet.</p>'
    shocks = sorted({k for r in sweep.runs for k in r if k.startswith("shock:")})
    missing = 0
    rows = []
    for run in sweep.runs:
        folder = sweep.out_dir / run["run"]
        if (folder / "report.html").is_file():
            link = f'<a href="{esc(run["run"])}/report.html">report</a>'
        else:
            missing += 1
            link = f'<a href="{esc(run["run"])}/summary.json">summary.json</a>'
        status = run.get("status")
        state = esc(status) if status == "completed" else f'<span class="failed">{esc(str(status))}: ' \
                                                           f'{esc(str(run.get("error") or ""))}</span>'
        label = sweep.labels.get(run.get("combination"), run.get("combination"))
        named = "<br>".join(esc(part) for part in str(label).split(", "))
        cells = "".join(f'<td class="num">{esc(_usd(run.get(k)))}</td>' for k, _ in RUN_COLUMNS)
        drawn = "".join(f'<td class="num">{esc(value_text(run.get(k)))}</td>' for k in shocks)
        rows.append(f"<tr><td>{link}</td><td><code style='white-space:nowrap'>{esc(run['run'])}</code></td>"
                    f"<td style='white-space:nowrap'>{named}</td><td class='num'>{esc(str(run.get('seed')))}</td>{cells}{drawn}<td>{state}</td></tr>")
    head = "".join(f"<th>{esc(title)}</th>" for _, title in RUN_COLUMNS)
    head += "".join(f"<th>drawn {esc('.'.join(k[len('shock:'):].split('.')[-4:]))}</th>" for k in shocks)
    note = (f'<p class="note">{missing} of {len(sweep.runs)} runs have no report.html (a sweep renders them with '
            f"<code>--run-reports</code>; <code>perpsim report {esc(sweep.out_dir.name)}/&lt;run&gt;</code> renders "
            "one): their link opens the run's summary.json.</p>") if missing else ""
    return (f'{note}<div class="scroll"><table id="runs-table"><tr><th></th><th>folder</th><th>combination</th>'
            f"<th>seed</th>{head}<th>status</th></tr>{''.join(rows)}</table></div>")
