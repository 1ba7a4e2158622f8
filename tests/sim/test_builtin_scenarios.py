"""The built-in scenarios: every one loads, and each scenario beyond calm and oct-2025 does what
its header says. Model mode on small populations (each run takes about a second); the circuit
breaker also on chain with a tiny population."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.model.exchange import ModelExchange
from simulator.population import population_for_scenario
from simulator.report import read_run
from simulator.runner import run_scenario, trader_address
from simulator.scenarios import list_scenarios, load_scenario, with_overrides, with_settings
from simulator.sweep import plan_sweep
from simulator.units import WAD

BUILTIN_NAMES = [info.name for info in list_scenarios()]
NEW_SCENARIOS = ("black-thursday-2020", "depth-collapse", "oracle-outage", "cross-margin-contagion",
                 "adl-policies", "circuit-breaker", "whale-short")
ACCOUNTS = 250


@contextmanager
def model_exchange(scenario):
    yield ModelExchange(scenario.market_specs())


@dataclass
class Run:
    summary: dict
    series: dict[str, list[dict]]  # per market, one row per step
    events: list[dict]

    def of(self, event: str, **fields) -> list[dict]:
        return [e for e in self.events if e["event"] == event and all(e[k] == v for k, v in fields.items())]

    def column(self, market: str, key: str) -> list[float]:
        return [float(row[key]) for row in self.series[market]]


def scenario(name, accounts=ACCOUNTS, mode="model", settings=None):
    chosen = load_scenario(name)
    if settings:
        chosen = with_settings(chosen, settings)
    return with_overrides(chosen, accounts=accounts, mode=mode)


def run(chosen, out: Path, factory=model_exchange, steps=None) -> Run:
    result = run_scenario(chosen, out, factory, max_steps=steps)
    assert result.summary["status"] == "completed", result.summary.get("error")
    summary, series, events = read_run(out)
    return Run(summary, series, events)


def run_model(name, out: Path, accounts=ACCOUNTS, steps=None, settings=None) -> Run:
    return run(scenario(name, accounts, settings=settings), out, steps=steps)


def usd(wad: int) -> float:
    return wad / WAD


# --- every built-in scenario ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adl-policies", "circuit-breaker", "cross-margin-contagion"])
def test_builtin_sweep_sections_give_valid_variants(name):
    chosen = load_scenario(name)
    variants = plan_sweep(chosen)
    assert len(variants) >= 2 and len({tuple(v.settings.values()) for v in variants}) == len(variants)
    assert variants[0].scenario.mode == chosen.sweep.mode


def test_the_new_scenarios_are_built_in():
    assert set(NEW_SCENARIOS) <= set(BUILTIN_NAMES)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_scenario_loads_with_a_description(name):
    chosen = load_scenario(name)
    assert chosen.name == name and chosen.source.endswith(f"{name}.yaml")
    assert chosen.description.strip() and chosen.description.strip().splitlines()[0].strip()
    assert Path(chosen.source).read_text().startswith("#"), "a header comment says what the scenario is"
    for spec in chosen.market_specs():
        spec.params()
        spec.liquidation_params()
    # The oracle agent's heartbeat keeps every price within the router's staleness limit.
    for market in chosen.markets:
        assert chosen.oracle.for_market(market.name).heartbeat_steps * chosen.step_seconds <= market.heartbeat


# --- one test per scenario (model mode) --------------------------------------------------------


def test_black_thursday_liquidates_in_both_legs_and_through_the_outage(tmp_path):
    chosen = scenario("black-thursday-2020")
    result = run(chosen, tmp_path)
    trough = chosen.price_paths["BTC"].knot_steps()[3]
    assert trough == 1200 and chosen.price_paths["ETH"].knot_steps()[3] == trough
    assert result.column("BTC", "fundamental")[trough] == pytest.approx(7900 * 0.50)  # -50%
    assert result.column("ETH", "fundamental")[trough] == pytest.approx(194 * 0.52)  # -48%
    [outage] = chosen.liquidity.outages
    assert outage.end_step - outage.start_step == 150 and chosen.step_seconds == 10  # 25 minutes
    for market in ("BTC", "ETH"):
        factors = result.column(market, "depth_factor")[outage.start_step:outage.end_step]
        assert max(factors) == pytest.approx(0.1)  # market makers gone through the outage
    steps = [e["step"] for e in result.of("Liquidation")]
    first_leg = sum(60 <= s < 660 for s in steps)
    second_leg = sum(900 <= s < 1200 for s in steps)
    in_outage = sum(outage.start_step <= s < outage.end_step for s in steps)
    assert first_leg > 50 and second_leg > 20 and in_outage > 10, (first_leg, second_leg, in_outage)
    long_oi = result.column("BTC", "long_oi")
    assert long_oi[-1] < 0.1 * long_oi[0]  # nearly every leveraged BTC long is gone


def test_depth_collapse_cascades_where_full_depth_does_not(tmp_path):
    thin = run_model("depth-collapse", tmp_path / "thin")
    full = run_model("depth-collapse", tmp_path / "full", settings={"liquidity.withdraw_factor": 1.0})
    for market in ("SOL", "AVAX"):
        fundamental = thin.column(market, "fundamental")
        assert min(fundamental) / fundamental[0] > 0.95  # the price itself moves a few percent only
        gap = min(e / f for e, f in zip(thin.column(market, "external_price"), fundamental))
        assert gap < 0.9, f"{market}: liquidation selling took the price only {1 - gap:.1%} below"
        full_gap = min(e / f for e, f in zip(full.column(market, "external_price"), full.column(market, "fundamental")))
        assert full_gap > 0.98
    # The same dip with market makers staying: a few liquidations, the fund grows, no ADL.
    assert full.summary["adl_fills"] == 0
    assert full.summary["insurance_fund_end_usd"] > full.summary["insurance_fund_start_usd"]
    assert thin.summary["liquidated_notional_usd"] > 5 * full.summary["liquidated_notional_usd"] > 0
    assert thin.summary["adl_fills"] > 0
    assert thin.summary["insurance_fund_end_usd"] < 0.1 * thin.summary["insurance_fund_start_usd"]


def test_oracle_outage_jumps_through_bankruptcy_into_the_fund_and_adl(tmp_path):
    chosen = scenario("oracle-outage")
    [outage] = chosen.oracle.outages
    for market in chosen.markets:
        # Kept within the router's staleness limit: the last push before the outage is at most one
        # agent heartbeat earlier, so the chain keeps the frozen price usable (and agrees with the model).
        oldest = (chosen.oracle.for_market(market.name).heartbeat_steps + outage.end_step - outage.start_step)
        assert oldest * chosen.step_seconds < market.heartbeat
    result = run(chosen, tmp_path)
    summary = result.summary
    btc_oracle = result.column("BTC", "oracle_price")
    btc_external = result.column("BTC", "external_price")
    frozen = btc_oracle[outage.start_step:outage.end_step]
    assert max(frozen) == min(frozen)  # no push during the outage
    assert min(btc_external[outage.start_step:outage.end_step]) < 0.91 * frozen[0]  # while BTC fell 9%+
    assert summary["first_liquidation_step"] >= outage.end_step  # nobody liquidated while frozen
    paid = sum(usd(e["amount"]) for e in result.of("InsuranceFundPayment"))
    assert paid > 0.5 * summary["insurance_fund_start_usd"]
    assert summary["insurance_fund_end_usd"] < 0.05 * summary["insurance_fund_start_usd"]
    assert summary["adl_fills"] > 0 and summary["first_adl_step"] <= outage.end_step + 5
    assert summary["bad_debt_usd"] == 0  # policy ADL leaves none


def test_cross_margin_contagion_liquidates_hedges_in_markets_that_barely_moved(tmp_path):
    chosen = scenario("cross-margin-contagion")
    result = run(chosen, tmp_path)
    alt = chosen.market_index("ALT")
    calm = [m for m in chosen.market_names if m != "ALT"]
    for market in calm:
        fundamental = result.column(market, "fundamental")
        assert max(abs(p / fundamental[0] - 1) for p in fundamental) < 0.03
    alt_path = result.column("ALT", "fundamental")
    assert min(alt_path) / alt_path[0] < 0.3  # -70% or worse
    liquidations = result.of("Liquidation")
    in_calm = [e for e in liquidations if e["marketId"] != alt]
    assert len(in_calm) >= 20, f"only {len(in_calm)} liquidations in {calm}"
    assert len({e["marketId"] for e in in_calm}) == len(calm)  # in every calm market
    # Every one of them is a cross account that was long ALT: the alt crash, not the calm markets'
    # own moves, made them liquidatable.
    population = population_for_scenario(chosen)
    long_alt = {int(trader_address(chosen.seed, i), 16) for i in range(population.n_accounts)
                if not population.isolated[i] and population.notional_usd[i, alt] > 0}
    assert {e["accountId"] for e in in_calm} <= long_alt


def test_adl_policies_exhausts_the_fund_so_adl_decides(tmp_path):
    chosen = scenario("adl-policies")
    assert {market.policy for market in chosen.markets} == {"ADL"}
    result = run(chosen, tmp_path)
    summary = result.summary
    fund = result.column("BTC", "insurance_fund_usd")
    assert min(fund) < 0.02 * summary["insurance_fund_start_usd"]  # drained
    assert summary["adl_fills"] > 20 and summary["adl_notional_usd"] > 0
    assert len({e["marketId"] for e in result.of("AdlFill")}) >= 2
    assert summary["bad_debt_usd"] == 0 and summary["socialized_loss_usd"] == 0


def test_whale_short_opens_before_the_drop_and_longs_are_liquidated(tmp_path):
    chosen = scenario("whale-short")
    whale = chosen.agents.whale
    result = run(chosen, tmp_path)
    # The whale's $40M sell fills against the vault at its step: the vault's BTC size grows by it.
    vault = result.column("BTC", "vault_size")
    bought = vault[whale.step] - vault[whale.step - 1]
    assert bought == pytest.approx(whale.notional / chosen.market("BTC").price, rel=0.01)
    liquidations = result.of("Liquidation")
    assert result.summary["liquidations"] > 100
    assert all(e["sizeClosed"] < 0 for e in liquidations)  # longs only: sold to close
    drop_start = 600
    assert whale.step <= result.summary["first_liquidation_step"] < drop_start  # the whale's impact
    assert sum(e["step"] >= drop_start for e in liquidations) > 50  # then the drop


def test_with_taker_impact_the_whales_sell_pushes_the_external_price(tmp_path):
    """`liquidity.taker_impact`: the whale's fill feeds the external market as liquidations do, so
    the next step's residual impact grows by 0.02 x its notional / depth over the run without it."""
    residual = {}
    for on in (False, True):
        chosen = scenario("whale-short", settings={"liquidity.taker_impact": on})
        whale = chosen.agents.whale
        result = run(chosen, tmp_path / str(on), steps=whale.step + 2)
        after = result.series["BTC"][whale.step + 1]
        residual[on] = math.log(float(after["fundamental"]) / float(after["external_price"]))
        depth = result.column("BTC", "depth2pct_usd")[whale.step]
    expected = 0.02 * whale.notional / depth  # the fill's notional is within 2-3% of the order's
    assert residual[True] - residual[False] == pytest.approx(expected, rel=0.05)


def test_keeper_latency_delays_the_first_liquidation_by_the_extra_steps(tmp_path):
    """`agents.keepers.latency_steps`: the same crash with keepers 5 steps late liquidates first 4
    steps later than with keepers acting in the next block (nothing else differs before then)."""
    first = {}
    for latency in (1, 5):
        chosen = scenario("whale-short", settings={"agents.keepers.latency_steps": latency})
        result = run(chosen, tmp_path / str(latency), steps=chosen.agents.whale.step + 120)
        first[latency] = result.summary["first_liquidation_step"]
    assert first[1] is not None and first[5] == first[1] + 4


def test_circuit_breaker_model_refuses_the_wick_and_without_the_breaker_liquidates_on_it(tmp_path):
    """The model's oracle router trips on the wick as the contract does (the chain test below);
    with the breaker off (`max_deviation: 0`) the wick's false price liquidates accounts."""
    chosen = scenario("circuit-breaker", accounts=40)
    wick = chosen.oracle.wick
    guarded = run(chosen, tmp_path / "guarded", steps=240)
    [trip] = guarded.of("CircuitBreakerTripped")
    assert trip["step"] == wick.step and not guarded.of("Liquidation")
    without = run(with_settings(chosen, {"markets.*.max_deviation": 0}), tmp_path / "without", steps=240)
    on_wick = [e for e in without.of("Liquidation", marketId=0) if wick.step <= e["step"] <= wick.end_step]
    assert on_wick and all(usd(e["oraclePrice"]) < 0.9 * chosen.market("BTC").price for e in on_wick)


# --- chain mode: the circuit breaker ----------------------------------------------------------


@pytest.fixture
def chain_exchange(request):
    """Runs inside the test session's anvil (Ape's), each run isolated; skipped without Ape's
    pytest plugin (`-p no:ape_test`)."""
    if not request.config.pluginmanager.hasplugin("ape_test"):
        pytest.skip("needs the chain: run under `ape test`")
    from tests.isolation import isolated_chain_exchanges

    return isolated_chain_exchanges(*(request.getfixturevalue(name)
                                      for name in ("project", "accounts", "chain", "networks")))


def test_circuit_breaker_on_chain_refuses_the_wick(tmp_path, chain_exchange):
    chosen = scenario("circuit-breaker", accounts=40, mode="chain")
    wick = chosen.oracle.wick
    btc = chosen.market("BTC")
    cooldown_end = wick.step + btc.cooldown
    result = run(chosen, tmp_path / "chain", chain_exchange, steps=cooldown_end + 60)
    [trip] = result.of("CircuitBreakerTripped")
    assert trip["step"] == wick.step and trip["marketId"] == chosen.market_index("BTC")
    assert usd(trip["answer"]) == pytest.approx(btc.price * (1 + wick.move), rel=0.01)
    status = result.column("BTC", "oracle_status")
    assert all(s == 4 for s in status[wick.step:wick.end_step])  # refused: tripped
    served = [price for price in result.column("BTC", "oracle_price") if price > 0]  # 0: refused
    assert min(served) > 0.95 * btc.price  # the wick's price was never served...
    assert result.summary["liquidations"] == 0 and not result.of("Liquidation")  # ...nor liquidated on it
