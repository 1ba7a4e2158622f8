"""Where a deployment's addresses are kept between `ape run` invocations on a devnet you keep
running: deployments/<genesis hash>.json in the checkout (git ignores it). The genesis hash tells
devnets apart, so a file never points at another chain's contracts."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import PerpsimError
from simulator.toolchain import PROJECT_ROOT

FOLDER = PROJECT_ROOT / "deployments"


class DeploymentNotFound(PerpsimError, FileNotFoundError):
    def __init__(self, path: Path):
        super().__init__(f"no perpsim deployment on this chain ({path} does not exist): run `ape run deploy` "
                         "with the same --network first")


def path_for(genesis_hash: str) -> Path:
    return FOLDER / f"{genesis_hash[:18]}.json"


def save(genesis_hash: str, system, markets) -> Path:
    FOLDER.mkdir(exist_ok=True)
    path = path_for(genesis_hash)
    path.write_text(json.dumps({
        "usdc": system.usdc.address,
        "router": system.router.address,
        "engine": system.engine.address,
        "liquidator": system.liquidator.address,
        "feeds": [feed.address for feed in system.feeds],
        "markets": [spec.name for spec in markets],
        "deployer": system.deployer.address,
        "vault": system.vault.address,
    }, indent=2) + "\n")
    return path


def load(genesis_hash: str) -> dict:
    path = path_for(genesis_hash)
    if not path.is_file():
        raise DeploymentNotFound(path)
    return json.loads(path.read_text())


def connect():
    """The `System` saved by `ape run deploy` on the chain Ape is connected to."""
    from ape import accounts, chain, project

    from simulator.chain.deploy import System

    saved = load(chain.blocks[0].hash.hex())
    system = System(
        deployer=accounts.test_accounts[0],
        vault=accounts.test_accounts[9],
        usdc=project.MockUSDC.at(saved["usdc"]),
        router=project.OracleRouter.at(saved["router"]),
        engine=project.PerpEngine.at(saved["engine"]),
        liquidator=project.LiquidationEngine.at(saved["liquidator"]),
        feeds=[project.PriceFeed.at(address) for address in saved["feeds"]],
    )
    return system, saved["markets"]
