"""Run outputs (simulator/report.py): the data files read back as written."""

from __future__ import annotations

from simulator.metrics import SERIES_FIELDS, Metrics
from simulator.report import read_run, write_data


def test_write_data_quotes_a_market_name_with_a_comma(tmp_path):
    names = ['BTC, perp', 'ETH "quoted"']
    metrics = Metrics(market_names=names)
    for step in range(3):
        for name in names:
            row = {key: 0.5 * step for key in SERIES_FIELDS}
            row.update(step=step, market=name, oracle_status=0, vault_value_usd=None)
            metrics.series.append(row)
    write_data(tmp_path, metrics, {"scenario": "test"})
    summary, series, _ = read_run(tmp_path)
    assert summary == {"scenario": "test"} and list(series) == names
    for name in names:
        rows = series[name]
        assert [row["step"] for row in rows] == ["0", "1", "2"]
        assert all(set(row) == set(SERIES_FIELDS) for row in rows)
        assert rows[2]["long_oi"] == "1.0" and rows[2]["vault_value_usd"] == ""


def test_runs_that_differ_get_different_default_folders():
    from simulator.report import default_run_folder
    from simulator.scenarios import load_scenario, with_overrides

    oct_2025 = load_scenario("oct-2025")
    base = default_run_folder(oct_2025)
    assert base.as_posix() == "runs/oct-2025-chain-seed0-1000accounts"
    assert default_run_folder(load_scenario("oct-2025")) == base  # the same command, the same folder
    others = [default_run_folder(with_overrides(oct_2025, accounts=200)),
              default_run_folder(with_overrides(oct_2025, seed=1)),
              default_run_folder(with_overrides(oct_2025, mode="model")),
              default_run_folder(oct_2025, steps=100),
              default_run_folder(oct_2025, settings={"markets.*.policy": "NONE"}),
              default_run_folder(oct_2025, settings={"markets.*.policy": "ADL"}),
              default_run_folder(oct_2025, mode="ape-local")]  # ape run simulate
    assert len({base, *others}) == 1 + len(others)
    assert default_run_folder(oct_2025, steps=oct_2025.steps) == base  # --steps of the whole run


def test_a_run_in_a_used_folder_clears_what_it_does_not_rewrite(tmp_path):
    from simulator.report import STALE

    for name in (*STALE, "summary.json", "timeseries.csv", "notes.txt"):
        (tmp_path / name).write_text("an earlier run's")
    metrics = Metrics(market_names=["BTC"])
    write_data(tmp_path, metrics, {"scenario": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "failed_actions.jsonl", "notes.txt",
                                                          "summary.json", "timeseries.csv"]
    assert (tmp_path / "notes.txt").read_text() == "an earlier run's"  # not perpsim's: left alone
