"""Fixtures shared by the contract tests (Ape on anvil).

Ape isolates chain state per test. Hypothesis examples inside one test are not isolated by Ape:
wrap each example in ``chain.isolate()`` (see ``isolated``)."""

import pytest

from simulator import toolchain
from simulator.errors import ToolchainError

USDC = 10**6


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
def usdc(project, deployer):
    return deployer.deploy(project.MockUSDC)
