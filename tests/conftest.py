"""Fixtures shared by the contract tests (Ape on anvil).

Ape isolates chain state per test. Hypothesis examples inside one test are not isolated by Ape:
wrap each example in ``tests.isolation.isolated(chain)`` (not ``chain.isolate()``, which swallows
failed assertions)."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from simulator import toolchain
from simulator.chain.deploy import MarketSpec, deploy_system
from simulator.errors import ToolchainError
from tests.invariants import check_invariants

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE: "quick" while developing, "ci" (default;
# derandomized, so a CI run repeats exactly), "nightly" for long searches. Tests scale their
# example counts from the profile's max_examples (tests/model/helpers.examples). "mutation" is "ci"
# without shrinking or the example database, for `python -m tests.mutation`: a failure is enough.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("quick", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=1000, **_COMMON)
settings.register_profile(
    "mutation", max_examples=100, derandomize=True, database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate), **_COMMON,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

USDC = 10**6
WAD = 10**18

BTC, ETH = 0, 1
DEFAULT_MARKETS = (
    MarketSpec("BTC", 100_000, depth2pct=10_000_000),
    MarketSpec("ETH", 4_000, depth2pct=5_000_000),
)


# The longest test files, run first (measured: the 50 slowest tests of a whole run). `make test`
# spreads files over pytest-xdist workers (--dist loadfile, in this order): a long file started
# last would leave the other worker idle until it ends. Order only; a file missing here runs after.
LONGEST_FIRST = (
    "tests/test_stateful.py",
    "tests/test_differential.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: k for k, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


def pytest_configure(config):
    """Under pytest-xdist, the controller prepares what the workers share before they start: the
    folder of their temporary folders (each worker makes `<basetemp>/gw<n>` and fails when the
    parent is missing, as in a fresh checkout), and the compiled contracts (each worker would
    otherwise compile a fresh checkout at the same time into the same .build)."""
    workers = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    if workers and not hasattr(config, "workerinput"):
        if config.option.basetemp:
            Path(config.option.basetemp).mkdir(parents=True, exist_ok=True)
        from ape import project

        project.load_contracts()


@pytest.fixture(scope="session")
def toolchain_checked():
    """Contract tests fail with the fix to run instead of Ape's download or connection time-outs.
    Tests of the model and the simulator need no chain and do not ask for this."""
    try:
        toolchain.check()
    except ToolchainError as exc:
        pytest.exit(f"perpsim toolchain: {exc.user_message}", returncode=4)


@pytest.fixture(scope="session")
def deployer(toolchain_checked, accounts):
    return accounts[0]


@pytest.fixture(scope="session", autouse=True)
def _no_debug_log_traces():
    """Speed only. After every transaction to a contract, Ape 0.8.51 asks the node for the whole
    call trace (eth_getCode, then trace_transaction, decoded into a call tree) to print the
    transaction's `console.log` lines. The contracts have no console.log, so it never prints
    anything: in the tests (where the twin sends thousands of transactions) that step is skipped.
    Reads that need a trace (receipt.return_value, revert decoding) still fetch it themselves."""
    import ape_ethereum.provider as ape_provider

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ape_provider, "_post_send_transaction", lambda txn, receipt: None)
        yield


@pytest.fixture(autouse=True)
def _fast_reverts(request, monkeypatch):
    """Speed only, for tests on the chain. When the reverting contract's ABI lacks the error (the
    router's errors raised through the engine), Ape replays the whole transaction trace to guess
    the inner contract: seconds per revert; tests/reverts.py decodes such errors from the revert
    data itself. The foundry plugin also prints the call trace of every reverted transaction."""
    if not {"networks", "chain", "accounts", "project"} & set(request.fixturenames):
        return
    from ape_ethereum.trace import Trace

    networks = request.getfixturevalue("networks")
    monkeypatch.setattr(Trace, "show", lambda self, *args, **kwargs: None)
    ecosystem_cls = type(networks.provider.network.ecosystem)
    original = ecosystem_cls.decode_custom_error

    def decode_custom_error(self, data, address, **kwargs):
        kwargs.pop("txn", None)
        kwargs.pop("trace", None)
        return original(self, data, address, **kwargs)

    monkeypatch.setattr(ecosystem_cls, "decode_custom_error", decode_custom_error)


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
