"""The house's arrows point down: a model-mode run loads neither the chain package nor the Ethereum
client stack (web3, Ape), so model mode and its sweeps start fast and run where no node is."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("simulator.chain", "web3", "ape", "eth_abi")


@pytest.mark.parametrize("module", ["simulator.runner", "simulator.model.exchange", "simulator.agents.keepers",
                                    "simulator.scenarios.schema"])
def test_import_model_path_loads_no_chain_package(module):
    code = (f"import sys, {module}\n"
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m.startswith('simulator.chain'))\n"
            "print(','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loads {out}"
