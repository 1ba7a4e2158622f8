"""The interfaces are the API: IPerpEngine and ILiquidationEngine list every function, event and
error of their implementations, with the same types, and every one carries a `@notice`; the
implementations document their external functions only through `@inheritdoc`. Reads the compiled
project and the sources, no chain (well under a second)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ape import project

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Errors the libraries declare and raise inside the implementations: they appear in the
# implementations' ABIs but are declared once, in the library (a second declaration in the
# interface would list them twice in the implementation's ABI).
LIBRARY_ERRORS = {
    "PerpEngine": {"BookExhausted(uint256,uint256,uint256)", "IntOverflow(uint256)"},
    "LiquidationEngine": {"IntOverflow(uint256)"},
}

INTERFACES = ["IPerpEngine", "ILiquidationEngine"]

# Each implementation's external functions live in these files (PerpEngine inherits the other two).
SOURCES = {
    "IPerpEngine": [
        "contracts/engine/PerpEngine.sol",
        "contracts/engine/PerpEngineViews.sol",
        "contracts/engine/PerpEngineStorage.sol",
    ],
    "ILiquidationEngine": ["contracts/liquidation/LiquidationEngine.sol"],
}


def members(name: str) -> dict[str, set]:
    """The ABI of a compiled contract as sets: functions with their outputs and mutability, events
    with which inputs are indexed, errors."""
    abi = project.get_contract(name).contract_type.abi
    return {
        "function": {
            (item.selector, tuple(o.canonical_type for o in item.outputs), item.stateMutability)
            for item in abi if item.type == "function"
        },
        "event": {
            (item.selector, tuple(i.indexed for i in item.inputs), item.anonymous)
            for item in abi if item.type == "event"
        },
        "error": {item.selector for item in abi if item.type == "error"},
    }


def assert_abi_equals_interface(implementation: str, interface: str) -> None:
    implemented, declared = members(implementation), members(interface)
    assert implemented["function"] == declared["function"]
    assert implemented["event"] == declared["event"]
    assert implemented["error"] == declared["error"] | LIBRARY_ERRORS[implementation]
    assert not declared["error"] & LIBRARY_ERRORS[implementation]


def test_perp_engine_abi_equals_its_interface():
    assert_abi_equals_interface("PerpEngine", "IPerpEngine")


def test_liquidation_engine_abi_equals_its_interface():
    assert_abi_equals_interface("LiquidationEngine", "ILiquidationEngine")


@pytest.mark.parametrize("interface", INTERFACES)
def test_interface_members_have_a_notice(interface):
    contract_type = project.get_contract(interface).contract_type
    userdoc = contract_type.userdoc or {}
    kinds = {"function": "methods", "event": "events", "error": "errors"}
    undocumented = []
    for item in contract_type.abi:
        if item.type not in kinds:
            continue
        docs = userdoc.get(kinds[item.type], {}).get(item.selector)
        # Solidity lists an event's or error's docs as one entry or a list of entries.
        entries = docs if isinstance(docs, list) else [docs] if docs else []
        if not any(entry.get("notice") for entry in entries):
            undocumented.append(item.selector)
    assert not undocumented, f"{interface}: no @notice on {undocumented}"


@pytest.mark.parametrize("interface", INTERFACES)
def test_implementation_documents_only_through_inheritdoc(interface):
    """Every external or public function and public state variable of the implementation has
    `/// @inheritdoc <interface>` right above it, and no NatSpec of its own."""
    public = re.compile(r"^    (function [a-zA-Z]\w*\(|[\w.]+(\[\])? public |mapping\(.*\) public )")
    offenders = []
    for path in SOURCES[interface]:
        lines = (PROJECT_ROOT / path).read_text().splitlines()
        for number, line in enumerate(lines):
            if not public.match(line):
                continue
            above = []
            for previous in reversed(lines[:number]):
                if not previous.startswith("    ///"):
                    break
                above.append(previous.strip())
            if above != [f"/// @inheritdoc {interface}"]:
                offenders.append(f"{path}:{number + 1}: {line.strip()[:60]}")
    assert not offenders, "\n".join(offenders)
