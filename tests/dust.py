"""Support for the dust-registry tests (tests/test_dust_registry.py): thousands of dust accounts
made in blocks of batched transactions, and calls made under an `eth_call` gas cap."""

from __future__ import annotations

from simulator.chain.exchange import ChainExchange
from simulator.chain.rpc import BatchedChain, ChainError, Tx

# What the keepers' views and transactions must fit in: a common node's `eth_call` gas cap and
# Ethereum's block gas limit.
GAS_CAP = 30_000_000
BLOCK = 100  # transactions per mined block


def keeper_exchange(system, uri: str) -> ChainExchange:
    """The keepers' backend on the test's chain, with automine kept on for Ape (BatchedChain turns
    it off) and the deployer, a funded dev account, never topped up with ether."""
    exchange = ChainExchange(system, uri)
    exchange.chain.request("evm_setAutomine", [True])
    exchange.chain._funded.add(system.deployer.address)
    return exchange


def dust_address(i: int) -> str:
    """The i-th dust account's address (no key: only credited, or traded by the operator)."""
    return "0x" + f"{(0xD057 << 144) | (i + 1):040x}"


def make_dust(chain: BatchedChain, operator: str, empty: int, winners: int, sink: str, price: int) -> None:
    """`empty + winners` cross accounts registered by `depositFor(address, 1)` (1e-6 USDC each),
    the operator paying; the last `winners` of them then sell 1 wei to `sink` in a matched fill at
    `price` (a 1-wei short each: a dust winner when the price falls)."""
    deposits = [Tx(operator, "engine", "depositFor", (dust_address(i), 1)) for i in range(empty + winners)]
    fills = [Tx(operator, "engine", "settleMatchedFill", (sink, dust_address(i), 0, 1, price))
             for i in range(empty, empty + winners)]
    chain.request("evm_setAutomine", [False])  # BatchedChain mines its blocks itself
    for txs in (deposits, fills):
        for start in range(0, len(txs), BLOCK):
            results = chain.transact(txs[start : start + BLOCK])
            failed = [r for r in results if not r.ok]
            assert not failed, f"{len(failed)} set-up transactions failed: {failed[0].error}"
    chain.request("evm_setAutomine", [True])  # BatchedChain turns it off; Ape needs it on


def capped_call(chain: BatchedChain, contract: str, function: str, args: tuple = ()) -> str | None:
    """`eth_call` with the gas cap: None if it completes, else the node's error."""
    abi = chain.contracts[contract]
    try:
        chain.request("eth_call", [{"to": abi.address, "data": abi.encode(function, args), "gas": hex(GAS_CAP)},
                                   "latest"])
    except ChainError as exc:
        return str(exc)
    return None


def gas_of(chain: BatchedChain, contract: str, function: str, args: tuple = ()) -> int:
    """What the call costs without a cap (`eth_estimateGas`)."""
    abi = chain.contracts[contract]
    return int(chain.request("eth_estimateGas", [{"to": abi.address, "data": abi.encode(function, args)}]), 16)
