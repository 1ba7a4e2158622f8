"""Sweeps: one scenario run over a grid of settings and seeds, with one table of the results.

Each combination of the varied settings (dotted key paths of the scenario file, see
`simulator.scenarios.with_settings`) runs for each seed, in its own run folder under the sweep's
folder. Every variant is built and validated before the first run, so a bad value stops the sweep
before anything runs. sweep.csv and sweep.json are rewritten after every run, so a sweep that
fails or is interrupted keeps the runs it finished."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from simulator.errors import PerpsimError
from simulator.report import atomic_write
from simulator.runner import run_scenario
from simulator.scenarios import Scenario, with_overrides, with_settings

# The summary figures a sweep compares, in table order.
COLUMNS = (
    "status",
    "liquidations",
    "liquidated_notional_usd",
    "insurance_fund_start_usd",
    "insurance_fund_end_usd",
    "bad_debt_usd",
    "insolvent",
    "adl_fills",
    "adl_notional_usd",
    "adl_overshoot_usd",
    "socialized_loss_usd",
    "vault_pnl_usd",
    "first_liquidation_step",
    "first_adl_step",
    "failed_keeper_actions",
    "wall_seconds",
)


class SweepError(PerpsimError, ValueError):
    """A sweep that cannot be planned (nothing to vary, a malformed --vary) or had failed runs."""


@dataclass(frozen=True)
class Variant:
    label: str  # the run folder's name: v01-seed0
    settings: dict[str, Any]
    seed: int
    scenario: Scenario


@dataclass
class SweepResult:
    out_dir: Path
    rows: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["status"] != "completed"]


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """`markets.*.policy=ADL,SOCIALIZE` -> ("markets.*.policy", ["ADL", "SOCIALIZE"]); each value
    is read as YAML (numbers, true/false, strings)."""
    path, sep, values = option.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise SweepError(f"--vary {option!r}: expected KEY.PATH=VALUE[,VALUE...], e.g. markets.*.policy=ADL,NONE")
    parsed = []
    for text in values.split(","):
        try:
            parsed.append(yaml.safe_load(text.strip()))
        except yaml.YAMLError as exc:
            raise SweepError(f"--vary {option!r}: cannot read the value {text!r}: {exc}") from None
    return path.strip(), parsed


def plan_sweep(scenario: Scenario, vary: Mapping[str, Sequence[Any]] | None = None, seeds: int | None = None,
               mode: str | None = None, source: str = "command line") -> list[Variant]:
    """Every (settings, seed) of the sweep, validated. Without `vary`, the scenario's own `sweep:`
    section; `seeds` and `mode` default to that section's (else 1 seed, model mode)."""
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
    variants = []
    for number, values in enumerate(itertools.product(*(vary[p] for p in paths)), start=1):
        settings = dict(zip(paths, values))
        varied = with_settings(scenario, settings, source=source)
        for seed in range(scenario.seed, scenario.seed + seeds):
            variants.append(Variant(f"v{number:02d}-seed{seed}", settings, seed,
                                    with_overrides(varied, seed=seed, mode=mode)))
    return variants


def run_sweep(variants: Sequence[Variant], out_dir: Path, exchange_factory: Callable,
              progress: Callable[[int, int, Variant], None] | None = None, max_steps: int | None = None) -> SweepResult:
    """Runs every variant into `out_dir`/<label>/ and keeps sweep.csv / sweep.json current."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SweepResult(out_dir)
    for index, variant in enumerate(variants):
        if progress:
            progress(index, len(variants), variant)
        try:
            run = run_scenario(variant.scenario, out_dir / variant.label, exchange_factory, max_steps=max_steps)
            summary = run.summary
        except (KeyboardInterrupt, SystemExit):
            _write_tables(result, variants)
            raise
        result.rows.append(_row(variant, summary))
        _write_tables(result, variants)
        if summary["status"] == "interrupted":
            break
    if progress:
        progress(len(variants), len(variants), variants[-1])
    if result.rows:
        render_sweep_plot(result)
    return result


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
        varied = [k for k in row if k not in ("run", "seed", "error", *COLUMNS)]
        # The path's last two keys keep the label short (insurance_fund.usd=0).
        settings_of.setdefault(variant, "\n".join([variant] + [f"{'.'.join(k.split('.')[-2:])}={row[k]}" for k in varied]))
    labels = list(settings_of)
    fig, axes = plt.subplots(len(PLOTTED), 1, figsize=(max(6, 2.2 * len(labels) + 1.5), 2.3 * len(PLOTTED)),
                             sharex=True, squeeze=False)
    for ax, (key, title) in zip(axes[:, 0], PLOTTED):
        for x, variant in enumerate(labels):
            values = [row[key] or 0.0 for row in result.rows if row["run"].startswith(variant + "-")]
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


def _row(variant: Variant, summary: dict) -> dict:
    row = {"run": variant.label, "seed": variant.seed}
    row.update({path: _plain(value) for path, value in variant.settings.items()})
    row.update({column: summary.get(column) for column in COLUMNS})
    if summary.get("error"):
        row["error"] = summary["error"]
    return row


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value)


def _write_tables(result: SweepResult, variants: Sequence[Variant]) -> None:
    paths = list(variants[0].settings) if variants else []
    header = ["run", "seed", *paths, *COLUMNS, "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow(row)
    atomic_write(result.out_dir / "sweep.csv", buffer.getvalue())
    document = {
        "scenario": variants[0].scenario.name if variants else None,
        "mode": variants[0].scenario.mode if variants else None,
        "accounts": variants[0].scenario.account_count if variants else None,
        "varied": paths,
        "planned": len(variants),
        "finished": len(result.rows),
        "runs": result.rows,
    }
    atomic_write(result.out_dir / "sweep.json", json.dumps(document, indent=2) + "\n")
