"""Fixtures of the PerpEngine revert tests (tests/engine/test_*.py); their helpers and constants
are in tests/engine/helpers.py."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _session_fixtures_first(project, base_system, deployer, alice, bob, carol, vault_account):
    """Creates every broader-scoped fixture before the first test: Ape otherwise rebases its
    per-test snapshots when a later test first asks for one (slow, InvalidIsolationWarning)."""


@pytest.fixture
def engine(system):
    return system.engine


@pytest.fixture
def vault(system):
    return system.vault
