"""report.html as a new user opens it: a small oct-2025 model run, and a small sweep of adl-policies
over two settings, rendered and loaded in headless Chromium (Debian's `chromium`) with the network
cut off: each loads with no console message and no network request, the headline and every chart
are in the DOM, and a screenshot is taken (in the test's folder). Skips only where chromium is
absent (`.ci/run` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

import pytest

from simulator.model.exchange import ModelExchange
from simulator.report import _Run, _headline, read_run, render_report
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides
from simulator.sweep import plan_sweep, run_sweep
from simulator.sweep_report import column_name, render_sweep_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No sandbox as root; no network: every request goes to a closed proxy port and is in the net log.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions", "--enable-logging=stderr", "--v=0"]


CHROMIUM_OWN = ("google.com", "gvt1.com", "googleapis.com", "gstatic.com")


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """oct-2025 at 60 accounts to minute 40: the slide, the market makers' withdrawal, liquidations, ADL."""
    out = tmp_path_factory.mktemp("oct-small")
    chosen = with_overrides(load_scenario("oct-2025"), accounts=60, mode="model")
    run_scenario(chosen, out, model_exchange, max_steps=2400, render=False)
    return out


def chromium(*args, home):
    # Its profile stays in the test folder, not in ~; its scratch folders (with a socket, whose path
    # must stay short) in a temporary folder of its own that is removed, even after a timeout.
    with tempfile.TemporaryDirectory(prefix="perpsim-chromium-") as scratch:
        return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=180,
                              env={"HOME": str(home), "TMPDIR": scratch, "PATH": "/usr/bin:/bin"})


def open_offline(url: str, tmp_path, height: int = 2400) -> str:
    """The page's DOM after Chromium loaded it with the network cut off, asserting it logged no
    console message and made no network request; leaves a screenshot in tmp_path."""
    net_log = tmp_path / "net.json"
    shot = tmp_path / "report.png"
    # One launch (about 3-8 s on a busy 2-core machine) for the DOM, the console, the net log and the screenshot.
    dom = chromium(f"--log-net-log={net_log}", "--dump-dom", f"--window-size=1400,{height}", f"--screenshot={shot}",
                   url, home=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    log = net_log.read_text()
    # Requests of the page carry its file:// origin in their isolation key; Chromium's own background
    # requests (time, accounts, dictionaries, all refused by the closed proxy) carry none.
    from_page = set(re.findall(r'"[^"]*/(https?://[^" ]*) \\u003Cfile://', log))
    assert not from_page, from_page
    urls = {u for u in re.findall(r'"url":"https?://([^/"]*)', log) if not u.endswith(CHROMIUM_OWN)}
    assert not urls, urls
    assert shot.stat().st_size > 50_000  # a blank page is a few KB
    return dom.stdout


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y "
                                                             "chromium; .ci/run installs it when it runs as root)")


@needs_chromium
def test_the_report_opens_in_a_real_browser_offline(small_run, tmp_path):
    report = render_report(small_run)
    page = report.read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', page)  # nothing loaded from elsewhere
    assert not list(small_run.glob("*.png"))
    html = open_offline(report.resolve().as_uri(), tmp_path)
    summary, _, _ = read_run(small_run)
    assert summary["liquidations"] > 0 and summary["adl_fills"] > 0
    assert 'id="headline"' in html and _headline(_Run(*read_run(small_run))).split(".")[0] in html
    # plotly drew the figure: one SVG subplot per chart with its title, the events marked
    assert 'class="plot-container plotly"' in html and "main-svg" in html
    for market in ("BTC", "ETH", "SOL", "ALT"):
        for title in (f"{market}: prices (USD)", f"{market}: open interest"):
            assert title in html, title
    assert "Insurance fund, bad debt and socialised loss" in html
    # who paid: liquidated accounts' penalties, the deficits' cover, ADL'd winners' profit given up
    assert 'id="who-paid-charts"' in html and "penalty paid each" in html and "profit given up each" in html
    assert 'href="timeseries.csv"' in html and 'href="events.jsonl"' in html  # the data files linked
    # the scenario: its description and parameters, the markets side by side
    assert "10 Oct 2025 cascade" in html and 'id="markets"' in html and "Maintenance margin tiers" in html
    assert "<code>accounts</code></th><td>60</td>" in html
    assert "crash window" in html and "market makers away" in html
    assert "minutes from the start" in html
    assert 'id="facts"' in html and "main wave inside the crash window" in html
    assert "Liquidated notional (at the fill price)" in html  # the summary with plain names


def test_a_calm_run_says_no_liquidations_instead_of_empty_axes(small_run, tmp_path):
    for name in ("summary.json", "events.jsonl", "failed_actions.jsonl"):
        shutil.copy(small_run / name, tmp_path / name)
    summary = json.loads((small_run / "summary.json").read_text())
    summary.update(liquidations=0, liquidated_notional_usd=0.0, adl_fills=0, adl_notional_usd=0.0,
                   first_liquidation_step=None, first_adl_step=None, crash_window=None)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "events.jsonl").write_text("")
    lines = (small_run / "timeseries.csv").read_text().splitlines()
    header = lines[0].split(",")
    calm = [lines[0]]
    for line in lines[1:401]:
        cells = line.split(",")
        for key in ("liquidations", "liquidated_notional_usd", "adl_notional_usd"):
            cells[header.index(key)] = "0"
        calm.append(",".join(cells))
    (tmp_path / "timeseries.csv").write_text("\n".join(calm) + "\n")
    page = render_report(tmp_path).read_text()
    assert "No liquidations and no ADL in this run." in page and "Nobody was liquidated." in page
    assert "liquidated and ADL notional" not in page  # no empty flow charts


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """adl-policies at 40 accounts, two policies x two insurance funds x two paths (8 model runs of
    its first 450 steps: the crash and the start of the recovery), one run's report rendered."""
    out = tmp_path_factory.mktemp("sweep-small")
    scenario = with_overrides(load_scenario("adl-policies"), accounts=40)
    variants = plan_sweep(scenario, {"markets.*.policy": ["ADL", "NONE"], "population.insurance_fund.usd": [0, 1e6]},
                          seeds=2, mode="model")
    run_sweep(variants, out, model_exchange, max_steps=450)
    render_report(out / variants[0].label)
    return out, variants


@needs_chromium
def test_the_sweep_report_opens_in_a_real_browser_offline(small_sweep, tmp_path):
    out, variants = small_sweep
    report = render_sweep_report(out)  # again, now that one run has its report
    page = report.read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', page)
    assert page.count("<script>/**") == 1  # plotly's JavaScript, embedded once
    html = open_offline(report.resolve().as_uri(), tmp_path)
    assert 'id="headline"' in html and "4 combinations of policy, insurance_fund.usd" in html
    # readable labels, not v01
    assert "policy = ADL" in html and "insurance_fund.usd = 1,000,000" in html
    assert "P(insolvency)" in html and "bad debt ES95" in html and "[" in html
    document = json.loads((out / "sweep.json").read_text())
    from simulator.sweep_report import _Sweep, _column_chart

    sweep = _Sweep(document, out)
    drawn = 0
    for column in sweep.columns:  # each risk figure's column: its chart, or a line saying why there is none
        if all(name.startswith("p_") for name in sweep.columns[column]):
            continue
        fig, why = _column_chart(sweep, column)
        assert f'id="chart-{column}"' in html, column
        if fig is None:
            assert why in html
        else:
            drawn += 1
            assert f"{column_name(column)} over the paths" in html, column
    assert drawn >= 4
    assert 'id="chart-probabilities"' in html and 'id="chart-heatmap"' in html
    assert html.count('class="plot-container plotly"') == drawn + 2  # probabilities, heatmap and the columns
    assert "updatemenu" in html  # the heatmap's menu of figures
    # every run linked: to its report where it has one, else to its summary
    assert f'href="{variants[0].label}/report.html"' in html
    for variant in variants[1:]:
        assert f'href="{variant.label}/summary.json"' in html
