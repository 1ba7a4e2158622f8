"""Scenarios: the YAML file format, its validation, and the built-in scenarios.

    >>> from simulator.scenarios import load_scenario, list_scenarios
    >>> scenario = load_scenario("oct-2025")          # built-in, by name
    >>> scenario = load_scenario("my-scenario.yaml")  # or a file
"""

from simulator.scenarios.errors import ScenarioError
from simulator.scenarios.loader import (
    ScenarioInfo,
    list_scenarios,
    load_scenario,
    scenario_from_dict,
    with_overrides,
    with_settings,
)
from simulator.scenarios.schema import (
    Agents,
    BridgePath,
    Correlation,
    CsvPath,
    GbmPath,
    Jumps,
    Liquidity,
    LiquiditySettings,
    Market,
    Oracle,
    OracleSettings,
    PopulationSpec,
    PricePath,
    Scenario,
    ScriptedPath,
    StepWindow,
    Sweep,
    Wick,
)

__all__ = [
    "Agents",
    "BridgePath",
    "Correlation",
    "CsvPath",
    "GbmPath",
    "Jumps",
    "Liquidity",
    "LiquiditySettings",
    "Market",
    "Oracle",
    "OracleSettings",
    "PopulationSpec",
    "PricePath",
    "Scenario",
    "ScenarioError",
    "ScenarioInfo",
    "ScriptedPath",
    "StepWindow",
    "Sweep",
    "Wick",
    "list_scenarios",
    "load_scenario",
    "scenario_from_dict",
    "with_overrides",
    "with_settings",
]
