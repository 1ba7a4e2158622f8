"""Batched JSON-RPC to the devnet for the simulator's hot loop.

Ape deploys and runs scripts; here many calls go out in one HTTP request through web3's batch
transport (HTTPProvider.make_batch_request): health scans as eth_call batches, keeper and agent
transactions as one batch of eth_sendTransaction from anvil's impersonated accounts, mined
together into one block with `evm_mine` at the step's timestamp."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import requests
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3

from simulator.errors import ChainError

# Each simulated transaction gets this much gas: the block gas limit is disabled on the devnet,
# and ADL rankings or health scans over many accounts need more than a mainnet block would hold.
TX_GAS = 30_000_000
# Requests per HTTP batch: a step of a 10,000-account cascade sends thousands, and anvil answers
# an oversized body with "Invalid request".
BATCH_LIMIT = 500
# Block gas limit below which a step's batch cannot fit in one block.
MIN_BLOCK_GAS = 10**12
# Ether given to impersonated senders (traders) for gas on devnets with a base fee.
GAS_ETHER = 10**20


@dataclass(frozen=True)
class Call:
    contract: str
    function: str
    args: tuple = ()
    sender: str | None = None


@dataclass(frozen=True)
class Tx:
    sender: str
    contract: str
    function: str
    args: tuple = ()
    tag: Any = None  # what the caller wants back with the result (e.g. the account and market)


@dataclass
class TxResult:
    tx: Tx
    ok: bool
    gas_used: int
    events: list = field(default_factory=list)  # (event name, args dict), in log order
    error: str | None = None


class ContractAbi:
    """Encoding, decoding and error names of one contract, from its ABI.

    Selectors and types are worked out once per function: web3's `encode_abi` validates the whole
    ABI and hashes every function's signature on each call, which was two thirds of a chain run."""

    def __init__(self, name: str, address: str, abi: list[dict]):
        self.name = name
        self.address = to_checksum_address(address)
        self.codec = Web3().codec
        # name -> (selector, input types, output types); perpsim's contracts overload no function.
        self.functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "function":
                continue
            if item["name"] in self.functions:
                raise ValueError(f"{name}: function {item['name']} is overloaded; call it by signature")
            inputs = [_abi_type(i) for i in item["inputs"]]
            outputs = [_abi_type(o) for o in item.get("outputs", [])]
            selector = keccak(text=f"{item['name']}({','.join(inputs)})")[:4]
            self.functions[item["name"]] = (selector, inputs, outputs)
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
        # topic0 -> (name, [(input name, type, indexed)])
        self.events: dict[bytes, tuple[str, list[tuple[str, str, bool]]]] = {
            keccak(text=f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"): (
                item["name"], [(i["name"], _abi_type(i), bool(i.get("indexed"))) for i in item["inputs"]])
            for item in abi
            if item.get("type") == "event"
        }

    def _function(self, function: str) -> tuple[bytes, list[str], list[str]]:
        try:
            return self.functions[function]
        except KeyError:
            raise ValueError(f"{self.name} has no function {function!r}") from None

    def encode(self, function: str, args: Sequence) -> str:
        selector, inputs, _ = self._function(function)
        if all(kind in _WORDS for kind in inputs) and len(args) == len(inputs):
            # Static words (the hot loop's ids, markets, sizes): no codec needed.
            return "0x" + selector.hex() + "".join(_WORDS[kind](value) for kind, value in zip(inputs, args))
        return "0x" + (selector + self.codec.encode(inputs, list(args))).hex()

    def decode(self, function: str, data: str | bytes):
        _, _, outputs = self._function(function)
        if len(outputs) == 1 and outputs[0] in _READ_WORD and isinstance(data, str) and len(data) == 66:
            return _READ_WORD[outputs[0]](int(data, 16))
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        decoded = self.codec.decode(outputs, raw)
        return decoded[0] if len(decoded) == 1 else decoded

    def error_name(self, data: str | bytes | None) -> str | None:
        """`Name(arg=value, ...)` of a custom error in revert data, or None if not ours."""
        if not data:
            return None
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        if raw[:4] not in self.errors:
            return None
        name, types, names = self.errors[raw[:4]]
        values = self.codec.decode(types, raw[4:])
        return f"{name}({', '.join(f'{n}={v}' for n, v in zip(names, values))})"


def _uint_word(value: int) -> str:
    if not 0 <= value < 2**256:
        raise ValueError(f"{value} is not a uint256")
    return f"{value:064x}"


def _int_word(value: int) -> str:
    if not -(2**255) <= value < 2**255:
        raise ValueError(f"{value} is not an int256")
    return f"{value % 2**256:064x}"


def _address_word(value: str) -> str:
    raw = value[2:] if value.startswith("0x") else value
    if len(raw) != 40:
        raise ValueError(f"{value!r} is not an address")
    return raw.lower().rjust(64, "0")


# One 32-byte word each, written and read without the codec (the hot loop's types).
def _bool_word(value: bool) -> str:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a bool")
    return _uint_word(int(value))


_WORDS = {"uint256": _uint_word, "int256": _int_word, "address": _address_word, "bool": _bool_word}
_READ_WORD = {"uint256": lambda word: word, "int256": lambda word: word - 2**256 if word >= 2**255 else word,
              "bool": bool}


def _abi_type(output: dict) -> str:
    """Canonical type string of an ABI output, tuples included."""
    kind = output["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in output["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


class BatchedChain:
    """The contracts of one deployment, reached over batched JSON-RPC."""

    def __init__(self, uri: str, contracts: dict[str, ContractAbi], timeout: float = 120):
        self.uri = uri
        self.provider = HTTPProvider(uri, request_kwargs={"timeout": timeout})
        self.contracts = contracts
        self.by_address = {c.address.lower(): c for c in contracts.values()}
        self._funded: set[str] = set()
        latest = self.request("eth_getBlockByNumber", ["latest", False])
        if int(latest["gasLimit"], 16) < MIN_BLOCK_GAS:
            raise ChainError(uri, f"has a block gas limit of {int(latest['gasLimit'], 16):,}: a simulation step "
                             "puts hundreds of transactions in one block; start anvil with "
                             "--disable-block-gas-limit (or --gas-limit 1000000000000)")
        self._batch([("anvil_autoImpersonateAccount", [True]), ("evm_setAutomine", [False])])

    # -- transport -- #

    def _batch(self, requests_: list[tuple[str, list]]) -> list[dict]:
        """One HTTP request per BATCH_LIMIT requests (anvil refuses larger bodies as invalid)."""
        responses = []
        for start in range(0, len(requests_), BATCH_LIMIT):
            responses += self._one_batch(requests_[start : start + BATCH_LIMIT])
        return responses

    def _one_batch(self, requests_: list[tuple[str, list]]) -> list[dict]:
        if not requests_:
            return []
        try:
            responses = self.provider.make_batch_request(requests_)
        except requests.exceptions.Timeout as exc:
            raise ChainError(self.uri, "did not answer in time") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                json.JSONDecodeError) as exc:
            # Refused, or cut off mid-answer (a node killed while it replies): gone either way.
            raise ChainError(self.uri, f"is not reachable (did anvil stop?): {type(exc).__name__}") from exc
        if isinstance(responses, dict):  # the node rejected the whole batch
            raise ChainError(self.uri, f"rejected a batch: {responses.get('error')}")
        return list(responses)

    def request(self, method: str, params: list) -> Any:
        [response] = self._batch([(method, params)])
        if "error" in response:
            raise ChainError(self.uri, f"answered {method} with {response['error']}")
        return response["result"]

    # -- reads -- #

    def call(self, calls: Sequence[Call], block: str = "latest") -> list:
        """Runs the calls as one batch of eth_call; a reverted call gives a `Reverted`."""
        payload = [("eth_call", [self._call_params(c), block]) for c in calls]
        results = []
        for call, response in zip(calls, self._batch(payload)):
            abi = self.contracts[call.contract]
            if "error" in response:
                results.append(Reverted(self._error_text(response["error"])))
            else:
                results.append(abi.decode(call.function, response["result"]))
        return results

    def _call_params(self, call: Call) -> dict:
        params = {"to": self.contracts[call.contract].address, "data": self.contracts[call.contract].encode(call.function, call.args)}
        if call.sender:
            params["from"] = call.sender
        return params

    # -- writes -- #

    def transact(self, txs: Sequence[Tx], timestamp: int | None = None) -> list[TxResult]:
        """Sends the transactions in order, mines them into one block, returns their results."""
        # Explicit nonces: the node handles a batch's requests concurrently, so letting it pick
        # nonces gives two transactions of one sender the same one.
        senders = list(dict.fromkeys(tx.sender for tx in txs))
        self._fund_gas(senders)
        counts = self._batch([("eth_getTransactionCount", [sender, "pending"]) for sender in senders])
        nonces = {sender: int(r["result"], 16) for sender, r in zip(senders, counts)}
        assigned = []
        for tx in txs:
            assigned.append(nonces[tx.sender])
            nonces[tx.sender] += 1
        # Room above the base fee (0 on a perpsim anvil; not on a devnet of yours) for the tips.
        base_fee = int(self.request("eth_getBlockByNumber", ["latest", False]).get("baseFeePerGas", "0x0"), 16)
        fee_cap = 2 * base_fee
        sends = [
            (
                "eth_sendTransaction",
                [{
                    "from": tx.sender,
                    "to": self.contracts[tx.contract].address,
                    "data": self.contracts[tx.contract].encode(tx.function, tx.args),
                    "gas": hex(TX_GAS),
                    # anvil orders a block by tip; the node takes a batch's requests in no fixed
                    # order, so strictly decreasing tips (in wei, the base fee is 0) are what
                    # makes the block run the transactions in the order given.
                    "maxFeePerGas": hex(fee_cap + len(txs) - index),
                    "maxPriorityFeePerGas": hex(len(txs) - index),
                    "nonce": hex(nonce),
                }],
            )
            for index, (tx, nonce) in enumerate(zip(txs, assigned))
        ]
        responses = self._batch(sends)
        hashes = []
        for tx, response in zip(txs, responses):
            if "error" in response:
                raise ChainError(self.uri, f"refused {tx.contract}.{tx.function}: {response['error']}")
            hashes.append(response["result"])
        self.mine(timestamp)
        # One request for the block's receipts, not one per transaction.
        receipts = {r["transactionHash"]: r for r in self.request("eth_getBlockReceipts", ["latest"]) or []}
        results = [self._result(tx, receipts.get(h)) for tx, h in zip(txs, hashes)]
        failed = [i for i, r in enumerate(results) if not r.ok]
        if failed:
            # Receipts carry no revert data: replay the failed calls on the block's final state
            # to name the error (the state they saw mid-block may differ slightly).
            replays = self.call([Call(txs[i].contract, txs[i].function, txs[i].args, txs[i].sender) for i in failed])
            for i, replay in zip(failed, replays):
                results[i].error = replay.reason if isinstance(replay, Reverted) else "reverted (passes on replay)"
        return results

    def _fund_gas(self, senders: list[str]) -> None:
        """Gives impersonated senders seen for the first time enough ether for gas."""
        new = [s for s in senders if s not in self._funded]
        if not new:
            return
        balances = self._batch([("eth_getBalance", [s, "latest"]) for s in new])
        poor = [s for s, b in zip(new, balances) if int(b["result"], 16) < GAS_ETHER]
        self._batch([("anvil_setBalance", [s, hex(GAS_ETHER)]) for s in poor])
        self._funded.update(new)

    def mine(self, timestamp: int | None = None) -> None:
        self.request("evm_mine", [] if timestamp is None else [timestamp])

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber", []), 16)

    def _result(self, tx: Tx, receipt: dict | None) -> TxResult:
        if receipt is None:
            raise ChainError(self.uri, f"has no receipt for {tx.contract}.{tx.function} after mining")
        ok = int(receipt["status"], 16) == 1
        events = []
        for log in receipt["logs"] if ok else []:
            contract = self.by_address.get(log["address"].lower())
            if contract is None:
                continue
            decoded = _decode_log(contract, log)
            if decoded is not None:
                events.append(decoded)
        return TxResult(tx=tx, ok=ok, gas_used=int(receipt["gasUsed"], 16), events=events)

    def _error_text(self, error: dict) -> str:
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        for contract in self.contracts.values():
            name = contract.error_name(data)
            if name:
                return name
        return error.get("message", str(error))


@dataclass(frozen=True)
class Reverted:
    reason: str


def _decode_log(contract: ContractAbi, log: dict):
    """(event name, args) of a log emitted by `contract`, or None for an event it does not declare.
    Indexed values come from the topics, the rest from the data; addresses are checksummed."""
    topics = log["topics"]
    found = contract.events.get(bytes.fromhex(topics[0][2:]))
    if found is None:
        return None
    name, inputs = found
    indexed = [(n, t) for n, t, is_indexed in inputs if is_indexed]
    plain = [(n, t) for n, t, is_indexed in inputs if not is_indexed]
    values = {}
    for (arg, kind), topic in zip(indexed, topics[1:]):
        [values[arg]] = contract.codec.decode([kind], bytes.fromhex(topic[2:]))
    for (arg, kind), value in zip(plain, contract.codec.decode([t for _, t in plain], bytes.fromhex(log["data"][2:]))):
        values[arg] = value
    args = {}
    for arg, kind, _ in inputs:  # declaration order, as web3 gives them
        value = values[arg]
        args[arg] = to_checksum_address(value) if kind == "address" else value
    return name, args
