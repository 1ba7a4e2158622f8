"""Helpers for the simulator tests (no chain): write a scenario file and load it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from simulator.scenarios import load_scenario

BASE_SCENARIO = {
    "name": "test",
    "steps": 100,
    "markets": [
        {"name": "BTC", "price": 100000, "imr": 0.05},
        {"name": "ETH", "price": 4000},
        {"name": "SOL", "price": 200},
    ],
}


def base_scenario() -> dict:
    """A fresh, valid minimal scenario as a dict."""
    return copy.deepcopy(BASE_SCENARIO)


@pytest.fixture
def write_scenario(tmp_path):
    """write_scenario(data_or_text, name="scenario.yaml") -> path of the written file."""

    def write(content, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def load_dict(write_scenario):
    """load_dict(data) -> Scenario, through a real file."""

    def load(data: dict, name: str = "scenario.yaml"):
        return load_scenario(write_scenario(data, name))

    return load
