"""A devnet for one simulator run: two anvils started through the project's wrapper (an empty base
and the fork of it the run uses), the contracts deployed through Ape, and both anvils stopped when
the run ends, whatever happens."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator, Sequence
from urllib.parse import urlsplit

import yaml

from simulator.chain.deploy import MarketSpec
from simulator.errors import ChainError
from simulator.exchange import RUN_START
from simulator.toolchain import PROJECT_ROOT, check


GENESIS_LEAD = 60  # seconds: far within the router heartbeats (3600 s) the feeds are deployed with
START_TIMEOUT = 60  # seconds for an anvil to answer, however loaded the machine


@contextmanager
def devnet(markets: Sequence[MarketSpec]) -> Iterator["ChainExchange"]:  # noqa: F821
    """A devnet for one run: an empty base anvil and, forking it, the anvil the run uses.

    Why two: a plain anvil rebuilds its whole state trie for every block it mines, so a block's
    cost grows with every account and storage slot the run has written (60 ms per empty block at
    2,000 accounts, 250 ms at 10,000); a forking anvil computes no state root, and an empty block
    costs under a millisecond at any size. The contracts are deployed on the fork, where storage
    they never wrote reads as zero without asking the base; the EVM, and so every result, is the
    same."""
    check()  # name a missing compiler or anvil before Ape's time-outs
    # Step tracing records every EVM step of every transaction: ten times slower blocks, and the
    # simulator never asks for traces.
    os.environ["PERPSIM_ANVIL_NO_TRACING"] = "1"
    # A fixed genesis before the run's start (deployment takes a few seconds; a slower one starts
    # the run when it ends).
    os.environ["PERPSIM_ANVIL_GENESIS"] = str(RUN_START - GENESIS_LEAD)
    # Ape resolves its project from the working directory.
    os.chdir(PROJECT_ROOT)
    from ape import accounts, networks, project
    from ape.exceptions import ProviderError
    from ape.logging import logger

    logger.set_level("WARNING")  # a line per deployment transaction would bury the progress bar

    from simulator.chain.deploy import deploy_system
    from simulator.chain.exchange import ChainExchange

    with ExitStack() as stack:
        base = stack.enter_context(_anvil([], "the base anvil"))
        # Only the newest block's transactions are kept: the run reads each block's receipts as it
        # is mined, and a kept history (a 10,000-account run sends 56,000 transactions) costs
        # memory and makes the opened book's state dump hundreds of MB of JSON.
        uri = stack.enter_context(_anvil(["--fork-url", base, "--disable-block-gas-limit", "--hardfork",
                                          _evm_version(), "--block-base-fee-per-gas", "0", "--gas-price", "0",
                                          "--transaction-block-keeper", "1"],
                                         "the run's anvil"))
        try:
            context = networks.parse_network_choice("ethereum:local:foundry", provider_settings={"host": uri})
            provider = context.__enter__()
        except ProviderError as exc:
            raise ChainError("anvil", f"could not be started: {exc}") from exc
        try:
            deployer = accounts.test_accounts[0]
            vault = accounts.test_accounts[9]
            system = deploy_system(project, deployer, vault, markets, vault_collateral_usd=0, insurance_fund_usd=0)
            exchange = ChainExchange(system, provider.uri, start=RUN_START, own_devnet=True)
            yield exchange
        finally:
            try:
                context.__exit__(None, None, None)
            except Exception:  # anvil already gone: nothing left to stop
                pass


@contextmanager
def _anvil(arguments: list[str], what: str) -> Iterator[str]:
    """An anvil (through the project's wrapper) on a free port, stopped on exit; yields its URI."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    errors = tempfile.TemporaryFile()
    process = subprocess.Popen([str(PROJECT_ROOT / "toolchain" / "bin" / "anvil"), "--port", str(port), *arguments],
                               stdout=subprocess.DEVNULL, stderr=errors, preexec_fn=_stop_with_parent)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(uri):
            if process.poll() is not None or time.monotonic() > deadline:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise ChainError("anvil", f"{what} could not be started: {said[-1] if said else 'no answer in time'}")
            time.sleep(0.05)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors.close()


def _stop_with_parent() -> None:
    """In the anvil's process before it starts (Linux): SIGTERM it when the thread that started
    it dies, so an anvil never outlives a killed run (a sweep's Dask worker killed mid-run cannot
    run its `finally`). The wrapper execs anvil, which keeps the setting."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the context manager still stops it on any exception
        pass


def _answers(uri: str) -> bool:
    parts = urlsplit(uri)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("POST", "/", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
                           {"Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _evm_version() -> str:
    config = yaml.safe_load((PROJECT_ROOT / "ape-config.yaml").read_text())
    return config["foundry"]["evm_version"]
