"""The chain side of the Twin: batched eth_calls over the deployment's ABIs, and reverts decoded to
(error name, arguments), compared with the model's."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from enum import IntEnum
from typing import Any

from ape.exceptions import CustomError
from ape.utils.abi import Struct
from web3 import HTTPProvider

from simulator.chain.exchange import contract_abi
from simulator.model.errors import ModelRevert
from tests.reverts import _raw_revert_data

PANIC_SELECTOR = bytes.fromhex("4e487b71")
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")


def norm(value: Any) -> Any:
    """Comparable form of an event field or error argument: addresses as ints, enums as ints,
    structs and dataclasses as tuples."""
    if isinstance(value, bool):
        return value
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return int(value, 16)
    if hasattr(value, "address") and isinstance(getattr(value, "address"), str):
        return int(value.address, 16)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if is_dataclass(value) and not isinstance(value, type):
        return tuple(norm(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, Struct):
        return tuple(norm(v) for v in value.values())
    if hasattr(value, "model_dump"):
        return tuple(norm(v) for v in value.model_dump().values())
    if isinstance(value, (list, tuple)):
        return tuple(norm(v) for v in value)
    return value


def norm_args(args: dict) -> dict:
    return {key: norm(value) for key, value in dict(args).items()}


class Reverted(Exception):
    """An error outcome, (name, args) as compared between chain and model."""

    def __init__(self, name: str, args: dict):
        super().__init__(f"{name}({', '.join(f'{k}={v}' for k, v in args.items())})")
        self.name, self.args_ = name, args

    def key(self) -> tuple:
        return self.name, tuple(sorted(self.args_.items()))


# ================================================================================================
# The chain side: batched reads, error decoding
# ================================================================================================


class Reader:
    """Batched eth_call (one HTTP request) over the deployment's ABIs, and revert decoding. Calls are
    encoded with eth_abi directly (web3's `encode_abi` re-validates the whole ABI on every call)."""

    def __init__(self, uri: str, system):
        self.provider = HTTPProvider(uri, request_kwargs={"timeout": 120})
        contracts = {"engine": system.engine, "liquidator": system.liquidator, "router": system.router}
        self.abis = {name: contract_abi(name, contract) for name, contract in contracts.items()}
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in self.abis.values():
            self.errors.update(abi.errors)
        self.codec = self.abis["engine"].codec
        # (contract, function) -> (address, selector, input types, output types): each ContractAbi's
        # table. Results are decoded with the codec alone, not ContractAbi.decode's word fast paths.
        self.functions: dict[tuple[str, str], tuple[str, bytes, list[str], list[str]]] = {
            (name, function): (abi.address, *entry)
            for name, abi in self.abis.items()
            for function, entry in abi.functions.items()
        }

    def _encode(self, contract: str, function: str, args) -> dict:
        address, selector, inputs, _ = self.functions[(contract, function)]
        return {"to": address, "data": "0x" + (selector + self.codec.encode(inputs, list(args))).hex()}

    def _decode(self, contract: str, function: str, result: str):
        outputs = self.functions[(contract, function)][3]
        decoded = self.codec.decode(outputs, bytes.fromhex(result[2:]))
        return decoded[0] if len(decoded) == 1 else decoded

    def batch(self, calls: list[tuple], extra: list[tuple] = ()) -> list:
        """`calls`: (contract, function, *args); `extra`: raw (method, params). Results in order; a
        reverted call gives a `Reverted`."""
        payload = [("eth_call", [self._encode(c, f, args), "latest"]) for c, f, *args in calls] + list(extra)
        responses = self.provider.make_batch_request(payload)
        if isinstance(responses, dict):
            raise RuntimeError(f"batch rejected: {responses}")
        responses = sorted(responses, key=lambda r: r["id"]) if all("id" in r for r in responses) else responses
        results = []
        for request, response in zip(calls, responses):
            if "error" in response:
                data = response["error"].get("data")
                if isinstance(data, dict):
                    data = data.get("data")
                results.append(self.decode_revert(bytes.fromhex(data[2:]) if data else b""))
            else:
                results.append(self._decode(request[0], request[1], response["result"]))
        results += [r.get("result", r.get("error")) for r in responses[len(calls):]]
        return results

    def call(self, contract: str, function: str, *args):
        [result] = self.batch([(contract, function, *args)])
        if isinstance(result, Reverted):
            raise result
        return result

    def decode_revert(self, raw: bytes) -> Reverted:
        selector = raw[:4]
        if selector == PANIC_SELECTOR:
            return Reverted("Panic", {"code": self.codec.decode(["uint256"], raw[4:])[0]})
        if selector == ERROR_STRING_SELECTOR:
            return Reverted("Error", {"message": self.codec.decode(["string"], raw[4:])[0]})
        if selector in self.errors:
            name, types, names = self.errors[selector]
            values = self.codec.decode(types, raw[4:])
            return Reverted(name, {n: norm(v) for n, v in zip(names, values)})
        return Reverted("<undecoded>", {"data": raw.hex()})

    def chain_error(self, exc: Exception) -> Reverted:
        """The (name, args) of a reverted Ape transaction."""
        if isinstance(exc, CustomError) and getattr(exc, "abi", None) is not None:
            return Reverted(exc.abi.name, norm_args(exc.inputs))
        raw = _raw_revert_data(exc)
        if raw is not None:
            return self.decode_revert(raw)
        message = getattr(exc, "revert_message", None) or str(exc)
        return Reverted("<undecoded>", {"message": message})


def model_error(exc: ModelRevert) -> Reverted:
    return Reverted(type(exc).__name__, norm_args(exc.inputs))
