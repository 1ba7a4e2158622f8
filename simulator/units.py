"""Fixed-point units shared by the chain driver and the model: WAD (18 decimals) inside the
contracts, 6-decimal collateral tokens, 8-decimal oracle answers. Conversions are exact (Decimal)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Union

import numpy as np

WAD = 10**18
USDC_DECIMALS = 6
ORACLE_DECIMALS = 8

Number = Union[int, float, str, Decimal]


def _scaled(value: Number, decimals: int) -> int:
    # str() first so that a float like 0.1 means "0.1", not its binary expansion.
    exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    scaled = exact.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimals")
    return int(scaled)


def wad(value: Number) -> int:
    """`wad("0.1") == 10**17`: a decimal number as an 18-decimal integer."""
    return _scaled(value, 18)


def usdc(value: Number) -> int:
    """Token units of a 6-decimal stablecoin."""
    return _scaled(value, USDC_DECIMALS)


def oracle_answer(price: Number) -> int:
    """An 8-decimal oracle answer (Chainlink USD convention), rounded to the nearest unit."""
    return int((Decimal(str(price)) * 10**ORACLE_DECIMALS).to_integral_value())


# -- floats that do not depend on the CPU -- #
# numpy's vectorised exp and log take AVX-512 code on a CPU that has it, and that code rounds
# differently from the C library's in the last bit: a run's price paths, external prices and
# population, and so its liquidations, would depend on the machine. These go through the C
# library's exp and log (Python's math), element by element, on every CPU.


def portable_exp(x) -> np.ndarray:
    """exp of every element of `x` (an array or a number), as the C library computes it."""
    return _elementwise(_exp, x)


def portable_log(x) -> np.ndarray:
    """log of every element of `x` (an array or a number), as the C library computes it; as numpy's,
    -inf at 0 and nan below."""
    return _elementwise(_log, x)


def _elementwise(function, x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return np.fromiter(map(function, a.ravel().tolist()), dtype=float, count=a.size).reshape(a.shape)


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:  # numpy's answer
        return math.inf


def _log(value: float) -> float:
    if value > 0:
        return math.log(value)
    return -math.inf if value == 0 else math.nan


def portable_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a small inner dimension, as a sum of columns in index order: BLAS kernels chosen
    for the CPU (OpenBLAS's Haswell, SkylakeX, ...) may order and fuse the products differently."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = np.zeros((a.shape[0], b.shape[1]))
    for k in range(a.shape[1]):
        out = out + a[:, k, None] * b[None, k, :]
    return out
