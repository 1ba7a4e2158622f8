"""Strict revert assertions. `ape.reverts(SomeContract.Error)` checks nothing when the error comes
from a contract below the one called (the router's errors through the engine): Ape cannot decode
it and ignores the expectation. `reverts` decodes the revert data itself and compares the error's
signature and every argument."""

import re
from contextlib import contextmanager

import ape
import pytest
from ape.exceptions import ContractLogicError, CustomError, VirtualMachineError
from ape.utils.abi import Struct
from eth_abi import decode as abi_decode
from eth_utils import keccak


def _raw_revert_data(exc):
    """Revert data of an error Ape did not decode. Anvil reports it as `0x<selector><args hex>` or
    `custom error 0x<selector>: <args>`, the arguments as text when they are valid UTF-8, else hex."""
    message = getattr(exc, "revert_message", None) or ""
    match = re.fullmatch(r"0x([0-9a-fA-F]{8})([0-9a-fA-F]*)", message)
    if match:
        return bytes.fromhex(match.group(1) + match.group(2))
    match = re.fullmatch(r"custom error 0x([0-9a-fA-F]{8})(?:: ?(.*))?", message, re.DOTALL)
    if not match:
        return None
    args = match.group(2) or ""
    if len(args) % 64 == 0 and re.fullmatch(r"[0-9a-fA-F]*", args):
        return bytes.fromhex(match.group(1) + args)
    return bytes.fromhex(match.group(1)) + args.encode("utf-8")


def _norm(value):
    """Comparable form: addresses lower-case, bytes as bytes, structs and arrays as tuples."""
    if hasattr(value, "address"):
        value = value.address
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, Struct):
        return tuple(_norm(v) for v in value.values())
    if hasattr(value, "model_dump"):
        return tuple(_norm(v) for v in value.model_dump().values())
    return value


@contextmanager
def reverts(error, any_args=False, **expected):
    """The block must revert with `error` (matched by signature) and exactly these arguments, or
    with any arguments when `any_args` is set."""
    with ape.reverts() as info:
        yield info
    exc = info.value
    abi = error.abi
    if isinstance(exc, CustomError):
        assert exc.abi.signature == abi.signature, f"expected {abi.signature}, got {exc.abi.signature}: {exc.inputs}"
        actual = dict(exc.inputs)
    else:
        selector = keccak(text=abi.selector)[:4]
        raw = _raw_revert_data(exc)
        if raw is None and not abi.inputs:
            # Anvil prints bare revert data that is valid UTF-8 as text, and Ape strips it.
            text = (getattr(exc, "revert_message", None) or "").strip()
            try:
                raw = selector if text and text == selector.decode("utf-8").strip() else None
            except UnicodeDecodeError:
                raw = None
        assert raw is not None, f"expected {abi.signature}, got {exc!r}"
        assert raw[:4] == selector, f"expected {abi.signature}, got revert data 0x{raw.hex()}"
        values = abi_decode([i.canonical_type for i in abi.inputs], raw[4:])
        actual = {i.name: v for i, v in zip(abi.inputs, values)}
    if any_args:
        return
    actual = {k: _norm(v) for k, v in actual.items()}
    expected = {k: _norm(v) for k, v in expected.items()}
    assert actual == expected, f"{abi.name}: expected {expected}, got {actual}"


@contextmanager
def reverts_with_panic(code):
    with pytest.raises((ContractLogicError, VirtualMachineError)) as info:
        yield info
    assert f"0x{code:02x}" in str(info.value).lower() or f"{code:064x}" in str(info.value).lower(), info.value


def events(receipt, event):
    return [{k: _norm(v) for k, v in log.event_arguments.items()} for log in receipt.events.filter(event)]


def expected_events(*dicts):
    return [{k: _norm(v) for k, v in d.items()} for d in dicts]
