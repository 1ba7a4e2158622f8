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
