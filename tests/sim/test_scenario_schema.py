"""Scenario files: every mistake gives one ScenarioError naming the file, the key path and the
problem; the built-ins load; defaults follow MarketSpec."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.errors import PerpsimError
from simulator.scenarios import (
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    scenario_from_dict,
    with_overrides,
)
from tests.sim.conftest import base_scenario


def _set(path: str, value):
    """A mutation setting a dotted key path (list indices as numbers) in the scenario dict."""

    def mutate(data: dict) -> None:
        parts = [int(part) if part.isdigit() else part for part in path.split(".")]
        target = data
        for part in parts[:-1]:
            if isinstance(part, str) and part not in target:
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value

    return mutate


def _delete(path: str):
    def mutate(data: dict) -> None:
        parts = [int(part) if part.isdigit() else part for part in path.split(".")]
        target = data
        for part in parts[:-1]:
            target = target[part]
        del target[parts[-1]]

    return mutate


GBM = {"type": "gbm", "vol": 0.5}


def _paths(**paths):
    return _set("price_paths", paths)


def _scripted(start_step=0, *legs):
    return {"type": "scripted", "start_step": start_step, "legs": [dict(leg) for leg in legs]}


def _correlate(markets, matrix):
    """Gives every listed market a gbm path and correlates them."""

    def mutate(data: dict) -> None:
        data["price_paths"] = {name: dict(GBM) for name in markets}
        data["correlation"] = {"markets": list(markets), "matrix": matrix}

    return mutate


def case(case_id, mutations, key_path, *fragments):
    """One invalid file: the mutations of the base scenario, the key path and message fragments."""
    mutations = mutations if isinstance(mutations, list) else [mutations]
    return pytest.param(mutations, key_path, list(fragments), id=case_id)


WHALE = {"market": "BTC", "notional": 1e6, "side": "short", "step": 5}
MOMENTUM = {"fraction": 0.1, "side": "short", "start_step": 10, "end_step": 20, "leverage": 25}
INVALID_CASES = [
    # unknown keys, with a suggestion when one is close
    case("unknown-key", _set("markets.1.depht2pct", 5), "markets[1].depht2pct",
         "unknown key", "did you mean 'depth2pct'"),
    case("unknown-top-key", _set("stpes", 5), "stpes", "unknown key 'stpes'", "did you mean 'steps'"),
    case("unknown-key-no-hint", _set("oracle.zzz", 1), "oracle.zzz",
         "unknown key 'zzz'", "expected one of:", "heartbeat_steps"),
    case("path-field-unknown", _paths(BTC={**GBM, "volatility": 1}), "price_paths.BTC.volatility",
         "did you mean 'vol'"),
    # wrong types
    case("wrong-type-int", _set("steps", "ten"), "steps", "whole number", "'ten'"),
    case("wrong-type-float-for-int", _set("steps", 10.5), "steps", "whole number", "10.5"),
    case("wrong-type-number", _set("markets.0.price", "cheap"), "markets[0].price", "number", "'cheap'"),
    case("wrong-type-bool", _set("markets.0.imr", True), "markets[0].imr", "number", "true"),
    case("wrong-type-mapping", _set("markets.0", "BTC"), "markets[0]", "mapping", "'BTC'"),
    case("wrong-type-list", _set("markets", {"name": "BTC"}), "markets", "should be a list"),
    case("path-field-type", _paths(BTC={"type": "gbm", "vol": "high"}), "price_paths.BTC.vol", "number"),
    case("infinite", _set("markets.0.price", float("inf")), "markets[0].price", "finite"),
    # values out of range, missing keys, bad choices
    case("negative-depth", _set("markets.2.depth2pct", -5), "markets[2].depth2pct", "greater than 0", "-5"),
    case("zero-steps", _set("steps", 0), "steps", "greater than 0"),
    case("missing-key", _delete("markets.1.price"), "markets[1].price", "missing required key 'price'"),
    case("missing-steps", _delete("steps"), "steps", "missing required key 'steps'"),
    case("bad-policy", _set("markets.0.policy", "ADLL"), "markets[0].policy",
         "ADL, SOCIALIZE, NONE", "did you mean 'ADL'"),
    case("mode", _set("mode", "chian"), "mode", "chain, model", "did you mean 'chain'"),
    case("name-unsafe", _set("name", "my scenario"), "name", "letters, digits"),
    case("mmr-above-imr", _set("markets.0.mmr", 0.2), "markets[0].mmr", "must not exceed imr"),
    case("tier-not-increasing", _set("markets.0.tiers", [[1e6, 0.03], [5e5, 0.04]]), "markets[0].tiers[1][0]",
         "floors must increase"),
    case("tier-shape", _set("markets.0.tiers", [[1e6]]), "markets[0].tiers[0]", "[notional floor in USD, mmr]"),
    case("name-too-long", _set("markets.0.name", "X" * 33), "markets[0].name", "32 bytes"),
    case("withdraw-factor-zero", _set("liquidity.withdraw_factor", 0), "liquidity.withdraw_factor", "greater than 0"),
    case("population-fraction", _set("population.long_fraction", 1.2), "population.long_fraction",
         "less than or equal to 1"),
    case("population-too-many-markets", _set("population.markets_per_account", 4), "population.markets_per_account",
         "cannot exceed the number of markets (3)"),
    case("population-whales-count", _set("population.whales", {"count": 1000, "notional_share": 0.2}),
         "population.whales.count", "must be below the number of accounts (1000)", "got 1000"),
    case("population-whales-share", _set("population.whales", {"count": 5, "notional_share": 1}),
         "population.whales.notional_share", "less than 1"),
    case("trader-probability", _set("agents.traders", {"close_prob": 2}), "agents.traders.close_prob",
         "less than or equal to 1"),
    case("whale-side", _set("agents.whale", {**WHALE, "side": "sell"}), "agents.whale.side", "long, short"),
    case("keeper-latency", _set("agents.keepers.latency_steps", 0), "agents.keepers.latency_steps", "greater than 0"),
    case("keeper-leg-order", _set("agents.keepers.leg_order", "largest-loss"), "agents.keepers.leg_order",
         "market_id, largest_loss", "did you mean 'largest_loss'"),
    case("keeper-account-order", _set("agents.keepers.account_order", "healthiest"), "agents.keepers.account_order",
         "registry, health"),
    # market names: duplicates and unknown references
    case("duplicate-market", _set("markets.2.name", "BTC"), "markets[2].name",
         "duplicate market name 'BTC'", "markets[0]"),
    case("path-unknown-market", _paths(DOGE=GBM), "price_paths.DOGE", "unknown market 'DOGE'", "BTC, ETH, SOL"),
    case("path-market-typo", _paths(ETC=GBM), "price_paths.ETC", "did you mean 'ETH'"),
    case("liquidity-unknown-market", _set("liquidity.markets", {"DOGE": {"withdraw_factor": 0.2}}),
         "liquidity.markets.DOGE", "unknown market 'DOGE'"),
    case("oracle-outage-unknown-market",
         _set("oracle.outages", [{"start_step": 1, "end_step": 5, "markets": ["BTC", "XRP"]}]),
         "oracle.outages[0].markets[1]", "unknown market 'XRP'"),
    case("wick-unknown-market", _set("oracle.wick", {"market": "SOLL", "step": 5, "move": -0.1}), "oracle.wick.market",
         "did you mean 'SOL'"),
    case("population-weights-market", _set("population.market_weights", {"BTC": 1, "DOGE": 1}),
         "population.market_weights.DOGE", "unknown market 'DOGE'"),
    # price paths
    case("path-type-typo", _paths(BTC={"type": "gmb", "vol": 1}), "price_paths.BTC.type",
         "unknown price path type 'gmb'", "did you mean 'gbm'"),
    case("path-type-missing", _paths(BTC={"vol": 1}), "price_paths.BTC.type", "missing key 'type'"),
    case("leg-both-targets", _paths(BTC=_scripted(0, {"to": -0.1, "to_price": 5, "duration_steps": 5})),
         "price_paths.BTC.legs[0]", "exactly one of 'to'", "'to_price'"),
    case("leg-move-below-minus-one", _paths(BTC=_scripted(0, {"to": -1.5, "duration_steps": 5})),
         "price_paths.BTC.legs[0].to", "greater than -1"),
    # shocks, outages and wicks outside the run (steps: 100)
    case("shock-outside-run",
         _paths(BTC=_scripted(50, {"to": -0.1, "duration_steps": 30}, {"to": -0.2, "duration_steps": 30})),
         "price_paths.BTC.legs[1].duration_steps", "ends at step 110", "outside the run", "last step is 99"),
    case("shock-start-outside-run", _paths(BTC=_scripted(100, {"to": -0.1, "duration_steps": 1})),
         "price_paths.BTC.start_step", "start_step 100 is outside the run"),
    case("bridge-outside-run", _paths(BTC={"type": "bridge", "to": -0.3, "at_step": 100, "vol": 0.5}),
         "price_paths.BTC.at_step", "at_step 100 is outside the run"),
    case("liquidity-outage-outside-run", _set("liquidity.outages", [{"start_step": 120, "end_step": 130}]),
         "liquidity.outages[0].start_step", "start_step 120 is outside the run"),
    case("liquidity-outage-end-outside-run", _set("liquidity.outages", [{"start_step": 50, "end_step": 101}]),
         "liquidity.outages[0].end_step", "end_step 101 is outside the run"),
    case("outage-reversed", _set("liquidity.outages", [{"start_step": 50, "end_step": 40}]),
         "liquidity.outages[0].end_step", "must be after start_step"),
    case("liquidity-market-outage-outside-run",
         _set("liquidity.markets", {"BTC": {"outages": [{"start_step": 100, "end_step": 110}]}}),
         "liquidity.markets.BTC.outages[0].start_step", "outside the run"),
    case("oracle-outage-outside-run", _set("oracle.outages", [{"start_step": 99, "end_step": 150}]),
         "oracle.outages[0].end_step", "end_step 150 is outside the run"),
    case("wick-outside-run", _set("oracle.wick", {"market": "SOL", "step": 100, "move": -0.1}), "oracle.wick.step",
         "step 100 is outside the run"),
    case("wick-ends-outside-run",
         _set("oracle.wick", {"market": "SOL", "step": 95, "move": -0.1, "duration_steps": 10}),
         "oracle.wick.duration_steps", "lasts until step 104", "outside the run"),
    case("whale-outside-run", _set("agents.whale", {**WHALE, "step": 500}), "agents.whale.step", "outside the run"),
    case("momentum-ends-before-it-starts", _set("agents.momentum", {**MOMENTUM, "end_step": 10}),
         "agents.momentum.end_step", "must be after start_step (10)", "got 10"),
    case("momentum-ends-outside-run", _set("agents.momentum", {**MOMENTUM, "end_step": 101}),
         "agents.momentum.end_step", "at most the run's 100 steps", "got 101"),
    case("momentum-fraction", _set("agents.momentum", {**MOMENTUM, "fraction": 0}), "agents.momentum.fraction",
         "greater than 0"),
    # correlation
    case("corr-unknown-market",
         [_correlate(["BTC", "ETH"], [[1, 0.5], [0.5, 1]]), _set("correlation.markets.1", "ETX")],
         "correlation.markets[1]", "unknown market 'ETX'", "did you mean 'ETH'"),
    case("corr-not-gbm", [_correlate(["BTC", "ETH"], [[1, 0.5], [0.5, 1]]), _delete("price_paths.ETH")],
         "correlation.markets[1]", "no gbm price path"),
    case("corr-asymmetric", _correlate(["BTC", "ETH"], [[1, 0.5], [0.4, 1]]), "correlation.matrix[0][1]",
         "symmetric", "0.5", "0.4"),
    case("corr-diagonal", _correlate(["BTC", "ETH"], [[1, 0.5], [0.5, 0.9]]), "correlation.matrix[1][1]",
         "diagonal must be 1"),
    case("corr-shape", _correlate(["BTC", "ETH"], [[1, 0.5]]), "correlation.matrix", "must have 2 rows"),
    case("corr-not-positive-definite",
         _correlate(["BTC", "ETH", "SOL"], [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]),
         "correlation.matrix", "not positive definite", "Cholesky", "smallest eigenvalue"),
]


@pytest.mark.parametrize("mutations, key_path, fragments", INVALID_CASES)
def test_invalid_scenario_names_file_key_and_problem(write_scenario, mutations, key_path, fragments):
    data = base_scenario()
    for mutate in mutations:
        mutate(data)
    path = write_scenario(data, name="broken.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    error = info.value
    message = error.user_message
    first_line = message.splitlines()[0]
    assert str(path) in first_line
    assert error.key_path == key_path, message
    assert f": {key_path}: " in first_line
    for fragment in fragments:
        assert fragment in first_line, message
    assert error.line is not None and f"line {error.line}" in first_line
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_error_points_at_the_line_of_the_key(write_scenario):
    path = write_scenario(
        "name: test\n"
        "steps: 100\n"
        "markets:\n"
        "  - name: BTC\n"
        "    price: 100000\n"
        "  - name: ETH\n"
        "    price: 4000\n"
        "    depth2pct: -5\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 8
    assert str(info.value).startswith(f"{path}, line 8: markets[1].depth2pct: should be greater than 0, got -5")


def test_missing_key_points_at_its_parent(write_scenario):
    path = write_scenario("name: test\nsteps: 100\nmarkets:\n  - name: BTC\n    imr: 0.1\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key_path == "markets[0].price"
    assert info.value.line == 4


def test_several_problems_are_listed_after_the_first(write_scenario):
    data = base_scenario()
    data["markets"][0]["depth2pct"] = -1
    data["markets"][1]["imr"] = 2
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(data))
    assert info.value.key_path == "markets[0].depth2pct"
    assert len(info.value.more) == 1 and "markets[1].imr" in info.value.more[0]
    assert "(1 more problem)" in info.value.user_message


def test_yaml_syntax_error_names_the_line(write_scenario):
    path = write_scenario("name: test\nsteps: 100\nmarkets:\n  - name: BTC\n    price: [100000\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = info.value.user_message
    assert str(path) in message and "YAML syntax error" in message
    assert info.value.line is not None and info.value.line >= 5


def test_yaml_tab_indentation_is_a_syntax_error(write_scenario):
    path = write_scenario("name: test\nsteps: 100\n\tmarkets: []\n")
    with pytest.raises(ScenarioError, match=r"line 3: YAML syntax error"):
        load_scenario(path)


def test_duplicate_yaml_key_is_an_error(write_scenario):
    path = write_scenario("name: test\nsteps: 100\nsteps: 200\nmarkets:\n  - {name: BTC, price: 1}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 3
    assert "duplicate key 'steps' (first given on line 2)" in info.value.user_message


def test_document_that_is_not_a_mapping(write_scenario):
    with pytest.raises(ScenarioError, match="a scenario is a mapping of keys"):
        load_scenario(write_scenario("- just\n- a list\n"))
    with pytest.raises(ScenarioError, match="a scenario is a mapping of keys"):
        load_scenario(write_scenario(""))


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(ScenarioError, match="scenario file not found") as info:
        load_scenario(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in info.value.user_message
    with pytest.raises(ScenarioError, match=r"no built-in scenario named 'oct2025' \(did you mean 'oct-2025'\?\)"):
        load_scenario("oct2025")


def test_scenario_error_is_a_perpsim_error_and_a_value_error(write_scenario):
    data = base_scenario()
    data["steps"] = -1
    with pytest.raises(ValueError) as info:
        load_scenario(write_scenario(data))
    assert isinstance(info.value, PerpsimError)
    assert info.value.user_message == str(info.value)
    assert info.value.problem.startswith("should be greater than 0")


def test_csv_path_errors_name_the_csv_line(write_scenario, tmp_path):
    (tmp_path / "prices.csv").write_text("timestamp,price\n0,100\n10,abc\n")
    data = base_scenario()
    data["price_paths"] = {"BTC": {"type": "csv", "file": "prices.csv"}}
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(data))
    assert info.value.key_path == "price_paths.BTC.file"
    assert "prices.csv, line 3: price 'abc' is not a number" in info.value.user_message

    data["price_paths"] = {"BTC": {"type": "csv", "file": "missing.csv"}}
    with pytest.raises(ScenarioError, match="CSV file not found"):
        load_scenario(write_scenario(data))

    (tmp_path / "backwards.csv").write_text("0,100\n10,101\n5,102\n")
    data["price_paths"] = {"BTC": {"type": "csv", "file": "backwards.csv"}}
    with pytest.raises(ScenarioError, match="backwards.csv, line 3: timestamps must increase"):
        load_scenario(write_scenario(data))


# --- valid files ---------------------------------------------------------------------------


def test_builtin_scenarios_are_listed_with_descriptions():
    infos = {info.name: info.description for info in list_scenarios()}
    assert {"calm", "oct-2025"} <= set(infos)
    assert all(description for description in infos.values())


@pytest.mark.parametrize("name", ["calm", "oct-2025"])
def test_builtin_scenarios_load(name):
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    assert scenario.source.endswith(f"{name}.yaml")
    specs = scenario.market_specs()
    assert [spec.name for spec in specs] == list(scenario.market_names)
    for spec in specs:
        spec.params()  # every ratio converts to WAD exactly
        spec.liquidation_params()


def test_oct_2025_parameters():
    scenario = load_scenario("oct-2025")
    assert scenario.steps >= 2700 and scenario.step_seconds == 1
    max_leverage = {market.name: round(market.max_leverage) for market in scenario.markets}
    assert max_leverage == {"BTC": 40, "ETH": 25, "SOL": 20, "ALT": 10}
    assert all(market.mmr == market.imr / 2 for market in scenario.markets)
    assert scenario.liquidity.withdraw_factor == 0.016  # calibrated: docs/calibration.md
    assert scenario.agents.momentum.side == "short"  # the shorts the V squeezes
    assert scenario.population.reference_accounts == 1000
    assert scenario.liquidity.outages
    assert 0.85 <= scenario.population.long_fraction <= 0.9
    assert scenario.oracle.deviation_threshold > 0 and scenario.oracle.heartbeat_steps > 0


def test_load_by_path_string_and_relative_csv(write_scenario, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "btc.csv").write_text("timestamp,price\n0,100\n60,90\n")
    data = base_scenario()
    data["price_paths"] = {"BTC": {"type": "csv", "file": "data/btc.csv"}}
    path = write_scenario(data)
    monkeypatch.chdir("/")  # the CSV is found relative to the scenario file, not the working folder
    scenario = load_scenario(str(path))
    assert scenario.price_paths["BTC"].file == str(tmp_path / "data" / "btc.csv")


def test_defaults_follow_market_spec():
    market = scenario_from_dict(base_scenario()).markets[1]
    spec_defaults = {f.name: f.default for f in dataclasses.fields(MarketSpec) if f.name not in ("name", "price")}
    deployed = market.to_market_spec()
    for name, default in spec_defaults.items():
        value = getattr(deployed, name)
        if isinstance(default, (BadDebtPolicy, AdlRanking)):
            assert value == default
        elif name == "tiers":
            assert tuple(value) == tuple(default)
        else:
            assert Decimal(str(value)) == Decimal(str(default)), name


def test_to_market_spec_is_exact():
    data = base_scenario()
    data["markets"][0].update({"imr": 0.025, "policy": "SOCIALIZE", "ranking": "PRO_RATA", "tiers": [[5e6, 0.02]]})
    spec = scenario_from_dict(data).markets[0].to_market_spec()
    assert spec.imr == Decimal("0.025") and spec.mmr == Decimal("0.0125")
    assert spec.policy is BadDebtPolicy.SOCIALIZE and spec.ranking is AdlRanking.PRO_RATA
    assert spec.params()[0] == 25 * 10**15 and spec.params()[1] == 125 * 10**14
    assert spec.tiers == ((Decimal("5000000.0"), Decimal("0.02")),)


@pytest.mark.parametrize("ranking", list(AdlRanking), ids=lambda r: r.name)
def test_every_adl_ranking_is_selectable_per_market(ranking):
    """A scenario names any ranking of the contracts' enum by its name, per market."""
    data = base_scenario()
    data["markets"][0]["ranking"] = ranking.name
    assert scenario_from_dict(data).markets[0].to_market_spec().ranking is ranking


def test_account_count_and_overrides():
    scenario = scenario_from_dict(base_scenario())
    assert scenario.account_count == scenario.population.accounts
    changed = with_overrides(scenario, seed=7, accounts=12, mode="model")
    assert (changed.seed, changed.account_count, changed.mode) == (7, 12, "model")
    with pytest.raises(ScenarioError, match=r"command line: accounts: should be greater than 0"):
        with_overrides(scenario, accounts=0)


def test_per_market_overrides():
    data = base_scenario()
    data["liquidity"] = {"vol_threshold": 2.0, "markets": {"SOL": {"vol_threshold": None, "withdraw_factor": 0.05}}}
    data["oracle"] = {"deviation_threshold": 0.005, "markets": {"SOL": {"deviation_threshold": 0.02}}}
    scenario = scenario_from_dict(data)
    assert scenario.liquidity.for_market("BTC").vol_threshold == 2.0
    assert scenario.liquidity.for_market("SOL").vol_threshold is None
    assert scenario.liquidity.for_market("SOL").withdraw_factor == 0.05
    assert scenario.oracle.for_market("SOL").deviation_threshold == 0.02
    assert scenario.oracle.for_market("ETH").deviation_threshold == 0.005


def _all_keys(model) -> set[str]:
    """Every key name of a model and the models inside it."""
    import typing

    from pydantic import BaseModel

    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys |= _all_keys(annotation)
            else:
                stack.extend(typing.get_args(annotation))
    return keys


def test_reference_file_loads_and_documents_every_key():
    from importlib import resources

    reference = resources.files("simulator.scenarios").joinpath("reference.yaml")
    scenario = load_scenario(str(reference))
    assert scenario.name == "reference"
    text = reference.read_text()
    missing = sorted(key for key in _all_keys(Scenario) if f"{key}:" not in text)
    assert missing == [], f"reference.yaml does not document: {missing}"
