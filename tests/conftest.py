"""Fixtures shared by the contract tests (Ape on anvil).

Ape isolates chain state per test. Hypothesis examples inside one test are not isolated by Ape:
wrap each example in ``chain.isolate()``."""

import pytest

from simulator import toolchain
from simulator.chain.deploy import MarketSpec, deploy_system
from simulator.errors import ToolchainError
from tests.invariants import check_invariants

USDC = 10**6
WAD = 10**18

BTC, ETH = 0, 1
DEFAULT_MARKETS = (
    MarketSpec("BTC", 100_000, depth2pct=10_000_000),
    MarketSpec("ETH", 4_000, depth2pct=5_000_000),
)


def pytest_sessionstart(session):
    # Fail with the fix to run instead of Ape's download or connection time-outs.
    try:
        toolchain.check()
    except ToolchainError as exc:
        raise pytest.UsageError(f"perpsim toolchain: {exc.user_message}") from exc


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def alice(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def bob(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def carol(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def vault_account(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def usdc(project, deployer):
    return deployer.deploy(project.MockUSDC)


@pytest.fixture(scope="module")
def base_system(project, deployer, vault_account):
    """BTC and ETH markets, breaker off, a $10M vault. Module-scoped: each test starts from this
    state (Ape reverts what a test does)."""
    return deploy_system(project, deployer, vault_account, DEFAULT_MARKETS)


@pytest.fixture
def system(base_system):
    """The base system, with the conservation and open-interest invariants checked after the test."""
    yield base_system
    check_invariants(base_system)
