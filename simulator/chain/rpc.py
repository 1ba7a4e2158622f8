"""Batched JSON-RPC to the devnet for the simulator's hot loop.

Ape deploys and runs scripts; here many calls go out in one HTTP request over one kept-alive
connection (`JsonRpcConnection`: a quarter of a millisecond per request on loopback, where a
`requests` session spends a millisecond on its own machinery): keeper questions as eth_call
batches, keeper and agent transactions as one batch of eth_sendTransaction from anvil's
impersonated accounts, mined together into one block with `evm_mine` at the step's timestamp."""

from __future__ import annotations

import functools
import http.client
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from simulator.errors import ChainError

# Each simulated transaction gets this much gas: the block gas limit is disabled on the devnet,
# and ADL rankings or health scans over many accounts need more than a mainnet block would hold.
# So does an ADL of a large position among small winners (oct-2025 at 10,000 accounts: a whale's
# deleverage lists 356 winners and needs more than 30M): the model has no gas, and with a cap the
# chain would refuse what the model executes (KNOWN_ISSUES.md).
TX_GAS = 1_000_000_000
# Requests per HTTP batch: a step of a 10,000-account cascade sends thousands, and anvil answers
# an oversized body with "Invalid request".
BATCH_LIMIT = 500
# Block gas limit below which a step's batch cannot fit in one block.
MIN_BLOCK_GAS = 10**12
# Functions the simulator sends that can succeed without emitting a log (the router accepts a
# price quietly); every other one always logs on success (a deposit, a fill, a liquidation, a
# depth change), so a transaction of theirs without a log reverted.
MAY_SUCCEED_SILENTLY = {("router", "update")}
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
        if all(kind in _WORDS or kind in _ARRAYS for kind in inputs) and len(args) == len(inputs):
            # Words and arrays of words (the hot loop's ids, markets, sizes): no codec needed.
            return "0x" + selector.hex() + _encode_words(inputs, args)
        return "0x" + (selector + self.codec.encode(inputs, list(args))).hex()

    def decode(self, function: str, data: str | bytes):
        _, _, outputs = self._function(function)
        if len(outputs) == 1 and outputs[0] in _READ_WORD and isinstance(data, str) and len(data) == 66:
            return _READ_WORD[outputs[0]](int(data, 16))
        if isinstance(data, str) and all(kind in _READ_WORD or kind in _ARRAYS for kind in outputs):
            decoded = _decode_words(outputs, data)
            if decoded is not None:
                return decoded[0] if len(decoded) == 1 else decoded
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


# Dynamic arrays of one-word items: the keeper views' account lists and their answers.
_ARRAYS = {"uint256[]": "uint256", "int256[]": "int256", "bool[]": "bool"}


def _encode_words(inputs: list[str], args: Sequence) -> str:
    """ABI encoding of words and arrays of words: a head of words and offsets, then each array."""
    head, tail = [], []
    offset = 32 * len(inputs)
    for kind, value in zip(inputs, args):
        if kind in _WORDS:
            head.append(_WORDS[kind](value))
            continue
        item = _WORDS[_ARRAYS[kind]]
        head.append(f"{offset:064x}")
        tail.append(f"{len(value):064x}")
        tail.extend(item(v) for v in value)
        offset += 32 * (len(value) + 1)
    return "".join(head) + "".join(tail)


def _decode_words(outputs: list[str], data: str) -> tuple | None:
    """ABI decoding of words and arrays of words, or None for anything unexpected (the codec then
    decodes it, or says what is wrong)."""
    hex_ = data[2:]
    if len(hex_) % 64 or len(hex_) < 64 * len(outputs):
        return None
    words = [int(hex_[i : i + 64], 16) for i in range(0, len(hex_), 64)]
    values = []
    for position, kind in enumerate(outputs):
        if kind in _READ_WORD:
            if kind == "bool" and words[position] > 1:
                return None
            values.append(_READ_WORD[kind](words[position]))
            continue
        start, item = words[position], _ARRAYS[kind]
        if start % 32 or start // 32 >= len(words):
            return None
        count = words[start // 32]
        first = start // 32 + 1
        if first + count > len(words):
            return None
        items = words[first : first + count]
        if item == "bool" and any(w > 1 for w in items):
            return None
        read = _READ_WORD[item]
        values.append(tuple(read(w) for w in items))
    return tuple(values)


def _abi_type(output: dict) -> str:
    """Canonical type string of an ABI output, tuples included."""
    kind = output["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in output["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


class JsonRpcConnection:
    """JSON-RPC batches over one kept-alive HTTP(S) connection, opened again after a failure."""

    def __init__(self, uri: str, timeout: float):
        parts = urlsplit(uri)
        self.uri = uri
        self._factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._address = (parts.hostname or "127.0.0.1", parts.port)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._id = 0

    def make_batch_request(self, requests_: list[tuple[str, list]]) -> list[dict] | dict:
        """The responses in request order (a dict when the node rejects the whole batch)."""
        first = self._id
        body = json.dumps([{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
                           for i, (m, p) in enumerate(requests_)])
        self._id += len(requests_)
        if self._connection is None:
            self._connection = self._factory(*self._address, timeout=self._timeout)
        try:
            self._connection.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = self._connection.getresponse()
            text = response.read()
        except BaseException:
            self._connection.close()
            self._connection = None
            raise
        if response.status != 200 and not text.startswith((b"[", b"{")):
            return {"error": f"HTTP {response.status}: {text[:200].decode(errors='replace')}"}
        answers = json.loads(text)
        if isinstance(answers, dict):
            return answers
        by_id = {answer.get("id"): answer for answer in answers}
        return [by_id.get(first + i, {"error": "no answer"}) for i in range(len(requests_))]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class BatchedChain:
    """The contracts of one deployment, reached over batched JSON-RPC."""

    def __init__(self, uri: str, contracts: dict[str, ContractAbi], timeout: float = 120, own_devnet: bool = False):
        self.uri = uri
        self.own_devnet = own_devnet
        self.provider = JsonRpcConnection(uri, timeout)
        self.contracts = contracts
        self.by_address = {c.address.lower(): c for c in contracts.values()}
        self._funded: set[str] = set()
        self.sent = 0  # transactions mined through `transact`, over this connection's life
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
        except (TimeoutError, socket.timeout) as exc:
            raise ChainError(self.uri, "did not answer in time") from exc
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
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

    def request_many(self, requests_: list[tuple[str, list]]) -> list[Any]:
        """Several requests in one batch; their results in order."""
        results = []
        for (method, _), response in zip(requests_, self._batch(requests_)):
            if "error" in response:
                raise ChainError(self.uri, f"answered {method} with {response['error']}")
            results.append(response["result"])
        return results

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
        # nonces gives two transactions of one sender the same one. Read with the base fee, in
        # one request: someone else (Ape, on a devnet of yours) may send from the same accounts.
        senders = list(dict.fromkeys(tx.sender for tx in txs))
        self._fund_gas(senders)
        *counts, latest = self._batch([("eth_getTransactionCount", [sender, "pending"]) for sender in senders]
                                      + [("eth_getBlockByNumber", ["latest", False])])
        nonces = {sender: int(r["result"], 16) for sender, r in zip(senders, counts)}
        assigned = []
        for tx in txs:
            assigned.append(nonces[tx.sender])
            nonces[tx.sender] += 1
        # Room above the base fee (0 on a perpsim anvil; not on a devnet of yours) for the tips.
        fee_cap = 2 * int(latest["result"].get("baseFeePerGas", "0x0"), 16)
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
        self.sent += len(txs)
        hashes = []
        for tx, response in zip(txs, responses):
            if "error" in response:
                raise ChainError(self.uri, f"refused {tx.contract}.{tx.function}: {response['error']}")
            hashes.append(response["result"])
        self.mine(timestamp)
        results = self._mined_results(txs, hashes)
        failed = [i for i, r in enumerate(results) if not r.ok]
        if failed:
            # Receipts carry no revert data: replay the failed calls on the block's final state
            # to name the error (the state they saw mid-block may differ slightly).
            replays = self.call([Call(txs[i].contract, txs[i].function, txs[i].args, txs[i].sender) for i in failed])
            for i, replay in zip(failed, replays):
                results[i].error = replay.reason if isinstance(replay, Reverted) else "reverted (passes on replay)"
        return results

    def _fund_gas(self, senders: list[str]) -> None:
        """Gives impersonated senders seen for the first time enough ether for gas (on a devnet of
        the run's own, where nobody else holds ether, without reading their balances first)."""
        new = [s for s in senders if s not in self._funded]
        if not new:
            return
        if self.own_devnet:
            poor = new
        else:
            balances = self._batch([("eth_getBalance", [s, "latest"]) for s in new])
            poor = [s for s, b in zip(new, balances) if int(b["result"], 16) < GAS_ETHER]
        self._batch([("anvil_setBalance", [s, hex(GAS_ETHER)]) for s in poor])
        self._funded.update(new)

    def mine(self, timestamp: int | None = None) -> None:
        self.request("evm_mine", [] if timestamp is None else [timestamp])

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber", []), 16)

    def _mined_results(self, txs: Sequence[Tx], hashes: list[str]) -> list[TxResult]:
        """The block's outcome from its logs, in one request.

        anvil builds each receipt by walking the block up to it, so a block's receipts cost the
        square of its size (a second for 800 transactions); its logs cost their number. A
        transaction with a log succeeded (a reverted one keeps none); only those without one are
        asked for their receipt, and only when its function may succeed without a log
        (MAY_SUCCEED_SILENTLY)."""
        block, logs = self._batch([("eth_getBlockByNumber", ["latest", False]),
                                   ("eth_getLogs", [{"fromBlock": "latest", "toBlock": "latest"}])])
        for answer in (block, logs):
            if "error" in answer:
                raise ChainError(self.uri, f"answered a block read with {answer['error']}")
        mined = set(block["result"]["transactions"])
        by_tx: dict[str, list[dict]] = {}
        for log in logs["result"]:
            if log["blockHash"] != block["result"]["hash"]:
                raise ChainError(self.uri, "mined another block while the step's block was read")
            by_tx.setdefault(log["transactionHash"], []).append(log)
        # Only a function that may succeed without a log needs its receipt to tell; any other
        # transaction without a log reverted.
        silent = [h for tx, h in zip(txs, hashes) if h in mined and h not in by_tx and (tx.contract, tx.function) in MAY_SUCCEED_SILENTLY]
        receipts = {h: answer.get("result") for h, answer in
                    zip(silent, self._batch([("eth_getTransactionReceipt", [h]) for h in silent]))}
        results = []
        for tx, tx_hash in zip(txs, hashes):
            if tx_hash not in mined:
                raise ChainError(self.uri, f"has no receipt for {tx.contract}.{tx.function} after mining")
            if tx_hash in by_tx:
                results.append(self._result(tx, True, by_tx[tx_hash]))
            elif tx_hash in receipts:
                receipt = receipts[tx_hash]
                if receipt is None:
                    raise ChainError(self.uri, f"has no receipt for {tx.contract}.{tx.function} after mining")
                results.append(self._result(tx, int(receipt["status"], 16) == 1, receipt["logs"]))
            else:
                results.append(self._result(tx, False, []))
        return results

    def _result(self, tx: Tx, ok: bool, logs: list[dict]) -> TxResult:
        events = []
        for log in sorted(logs, key=lambda log: int(log["logIndex"], 16)) if ok else []:
            contract = self.by_address.get(log["address"].lower())
            if contract is None:
                continue
            decoded = _decode_log(contract, log)
            if decoded is not None:
                events.append(decoded)
        return TxResult(tx=tx, ok=ok, events=events)

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
        values[arg] = _read_word(kind, topic[2:]) if kind in _LOG_WORDS else \
            contract.codec.decode([kind], bytes.fromhex(topic[2:]))[0]
    data = log["data"][2:]
    if all(kind in _LOG_WORDS for _, kind in plain) and len(data) == 64 * len(plain):
        # Static words (every event of the hot loop): sliced, no codec.
        for index, (arg, kind) in enumerate(plain):
            values[arg] = _read_word(kind, data[64 * index : 64 * index + 64])
    else:
        for (arg, kind), value in zip(plain, contract.codec.decode([t for _, t in plain], bytes.fromhex(data))):
            values[arg] = value
    args = {}
    for arg, kind, _ in inputs:  # declaration order, as web3 gives them
        value = values[arg]
        args[arg] = _checksummed(value) if kind == "address" else value
    return name, args


_LOG_WORDS = ("uint256", "int256", "address", "bool", "bytes32")


def _read_word(kind: str, word: str):
    """One 32-byte word (64 hex digits) as eth_abi would decode it."""
    if kind == "bytes32":
        return bytes.fromhex(word)
    value = int(word, 16)
    if kind == "int256":
        return value - 2**256 if value >= 2**255 else value
    if kind == "address":
        return "0x" + word[24:]
    if kind == "bool":
        return bool(value)
    return value


@functools.lru_cache(maxsize=65536)
def _checksummed(address: str) -> str:
    return to_checksum_address(address)
