"""The chain backend's call encoding and result decoding: the fast path for one-word types gives
exactly what eth_abi gives, and refuses what eth_abi refuses. And its transport's errors."""

from __future__ import annotations

import json

import pytest
import http.client
from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3

from simulator.chain.rpc import BatchedChain, ContractAbi, _decode_log
from simulator.errors import ChainError

ABI = [
    {"type": "function", "name": "words", "outputs": [{"name": "", "type": "int256"}],
     "inputs": [{"name": "a", "type": "uint256"}, {"name": "b", "type": "int256"},
                {"name": "c", "type": "address"}, {"name": "d", "type": "bool"}]},
    {"type": "function", "name": "array", "inputs": [{"name": "a", "type": "uint256[]"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "many", "inputs": [{"name": "ids", "type": "uint256[]"}, {"name": "m", "type": "uint256"},
                                                    {"name": "s", "type": "int256[]"}],
     "outputs": [{"name": "a", "type": "int256[]"}, {"name": "b", "type": "uint256"}, {"name": "c", "type": "bool[]"}]},
    {"type": "event", "name": "Words", "inputs": [
        {"name": "id", "type": "uint256", "indexed": True}, {"name": "who", "type": "address", "indexed": True},
        {"name": "size", "type": "int256", "indexed": False}, {"name": "to", "type": "address", "indexed": False},
        {"name": "ok", "type": "bool", "indexed": False}, {"name": "tag", "type": "bytes32", "indexed": False}]},
    {"type": "event", "name": "Listed", "inputs": [
        {"name": "id", "type": "uint256", "indexed": True}, {"name": "values", "type": "uint256[]", "indexed": False}]},
]
CONTRACT = ContractAbi("t", "0x" + "11" * 20, ABI)
CODEC = Web3().codec
addresses = st.binary(min_size=20, max_size=20).map(lambda raw: Web3.to_checksum_address(raw))


@given(a=st.integers(0, 2**256 - 1), b=st.integers(-(2**255), 2**255 - 1), c=addresses, d=st.booleans())
def test_word_arguments_encode_as_eth_abi_does(a, b, c, d):
    selector, inputs, _ = CONTRACT.functions["words"]
    assert CONTRACT.encode("words", (a, b, c, d)) == "0x" + (selector + CODEC.encode(inputs, [a, b, c, d])).hex()


@given(value=st.integers(-(2**255), 2**255 - 1))
def test_word_results_decode_as_eth_abi_does(value):
    assert CONTRACT.decode("words", "0x" + CODEC.encode(["int256"], [value]).hex()) == value


def test_other_types_go_through_the_codec():
    selector = CONTRACT.functions["array"][0]
    assert CONTRACT.encode("array", ([1, 2],)) == "0x" + (selector + CODEC.encode(["uint256[]"], [[1, 2]])).hex()
    assert CONTRACT.decode("array", "0x" + "00" * 31 + "01") is True


uints, ints = st.integers(0, 2**256 - 1), st.integers(-(2**255), 2**255 - 1)


@given(ids=st.lists(uints, max_size=5), m=uints, sizes=st.lists(ints, max_size=5), flags=st.lists(st.booleans(), max_size=5))
def test_word_arrays_encode_and_decode_as_eth_abi_does(ids, m, sizes, flags):
    selector, inputs, outputs = CONTRACT.functions["many"]
    assert CONTRACT.encode("many", (ids, m, sizes)) == "0x" + (selector + CODEC.encode(inputs, [ids, m, sizes])).hex()
    answer = "0x" + CODEC.encode(outputs, [sizes, m, flags]).hex()
    assert CONTRACT.decode("many", answer) == CODEC.decode(outputs, bytes.fromhex(answer[2:]))


def test_malformed_array_answers_are_left_to_the_codec():
    bad_offset = "0x" + f"{10**6:064x}" + "00" * 32 + f"{64:064x}"
    with pytest.raises(Exception):
        CONTRACT.decode("many", bad_offset)


def _log(event: str, topics: list[bytes], data: bytes) -> dict:
    topic0 = next(t for t, (name, _) in CONTRACT.events.items() if name == event)
    return {"topics": ["0x" + topic0.hex()] + ["0x" + t.hex() for t in topics], "data": "0x" + data.hex()}


@given(i=st.integers(0, 2**256 - 1), who=addresses, size=st.integers(-(2**255), 2**255 - 1), to=addresses,
       ok=st.booleans(), tag=st.binary(min_size=32, max_size=32))
def test_word_logs_decode_as_eth_abi_does(i, who, size, to, ok, tag):
    """The sliced words of a log give what the codec gives, addresses checksummed."""
    log = _log("Words", [CODEC.encode(["uint256"], [i]), CODEC.encode(["address"], [who])],
               CODEC.encode(["int256", "address", "bool", "bytes32"], [size, to, ok, tag]))
    assert _decode_log(CONTRACT, log) == ("Words", {"id": i, "who": who, "size": size, "to": to, "ok": ok, "tag": tag})


def test_logs_of_other_types_go_through_the_codec():
    log = _log("Listed", [CODEC.encode(["uint256"], [7])], CODEC.encode(["uint256[]"], [[1, 2, 3]]))
    assert _decode_log(CONTRACT, log) == ("Listed", {"id": 7, "values": (1, 2, 3)})


@pytest.mark.parametrize("args, problem", [
    ((-1, 0, "0x" + "00" * 20, True), "not a uint256"),
    ((0, 2**255, "0x" + "00" * 20, True), "not an int256"),
    ((0, 0, "0x12", True), "not an address"),
    ((0, 0, "0x" + "00" * 20, 1), "not a bool"),
])
def test_out_of_range_words_are_refused(args, problem):
    with pytest.raises(ValueError, match=problem):
        CONTRACT.encode("words", args)


def test_unknown_function_is_named():
    with pytest.raises(ValueError, match="t has no function 'nope'"):
        CONTRACT.encode("nope", ())


@pytest.mark.parametrize("failure, problem", [
    (ConnectionRefusedError("refused"), "is not reachable (did anvil stop?): ConnectionRefusedError"),
    (http.client.RemoteDisconnected("cut off"), "is not reachable (did anvil stop?): RemoteDisconnected"),
    (http.client.IncompleteRead(b"[{"), "is not reachable (did anvil stop?): IncompleteRead"),
    (json.JSONDecodeError("truncated", "[{", 2), "is not reachable (did anvil stop?): JSONDecodeError"),
    (TimeoutError("slow"), "did not answer in time"),
])
def test_a_node_that_goes_away_is_named(failure, problem):
    """However the connection breaks (refused, or killed while it answers), the run stops with a
    ChainError naming the node, which the runner reports and writes down."""

    class GoneProvider:
        def make_batch_request(self, requests_):
            raise failure

    chain = object.__new__(BatchedChain)
    chain.uri, chain.provider = "http://127.0.0.1:1", GoneProvider()
    with pytest.raises(ChainError) as error:
        chain.request("eth_blockNumber", [])
    assert error.value.problem == problem and error.value.uri == "http://127.0.0.1:1"
