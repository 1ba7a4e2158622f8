"""A devnet for one simulator run: Ape starts anvil (through the project's wrapper), deploys the
contracts, and stops anvil when the run ends, whatever happens."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Sequence

from simulator.chain.deploy import MarketSpec
from simulator.errors import ChainError
from simulator.exchange import RUN_START
from simulator.toolchain import PROJECT_ROOT, check


GENESIS_LEAD = 60  # seconds: far within the router heartbeats (3600 s) the feeds are deployed with


@contextmanager
def devnet(markets: Sequence[MarketSpec]) -> Iterator["ChainExchange"]:  # noqa: F821
    check()  # name a missing compiler or anvil before Ape's time-outs
    # Step tracing records every EVM step of every transaction: ten times slower blocks, and the
    # simulator never asks for traces.
    os.environ["PERPSIM_ANVIL_NO_TRACING"] = "1"
    # A fixed genesis before the run's start (deployment takes a few seconds; a slower one starts the run when it ends).
    os.environ["PERPSIM_ANVIL_GENESIS"] = str(RUN_START - GENESIS_LEAD)
    # Ape resolves its project from the working directory.
    os.chdir(PROJECT_ROOT)
    from ape import accounts, networks, project
    from ape.exceptions import ProviderError
    from ape.logging import logger

    logger.set_level("WARNING")  # a line per deployment transaction would bury the progress bar

    from simulator.chain.deploy import deploy_system
    from simulator.chain.exchange import ChainExchange

    try:
        context = networks.parse_network_choice("ethereum:local:foundry")
        provider = context.__enter__()
    except ProviderError as exc:
        raise ChainError("anvil", f"could not be started: {exc}") from exc
    exchange = None
    try:
        deployer = accounts.test_accounts[0]
        vault = accounts.test_accounts[9]
        system = deploy_system(project, deployer, vault, markets, vault_collateral_usd=0, insurance_fund_usd=0)
        exchange = ChainExchange(system, provider.uri, start=RUN_START)
        yield exchange
    finally:
        try:
            context.__exit__(None, None, None)
        except Exception:  # anvil already gone: nothing left to stop
            pass
