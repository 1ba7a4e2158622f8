"""Mirror of contracts/libraries/FixedPointMath.sol: WAD arithmetic, rounding direction in the name.

Every function takes Python ints or numpy object-dtype arrays of Python ints (elementwise, with
broadcasting) and gives exactly what the Solidity function gives: no branches on the sign, only
floor division (``//`` floors for ints and object arrays alike), so ceil(a / b) is written
``-((-a) // b)``. Arguments that are ``uint256`` in Solidity must be >= 0 (not checked).

Not mirrored: uint256 overflow of ``x * y`` (Solidity reverts past 2**256; the model's values stay
far below it) and division by zero (Python raises ZeroDivisionError where Solidity panics 0x12).
"""

from __future__ import annotations

import builtins

import numpy as np

from simulator.model.errors import IntOverflow
from simulator.units import WAD

MAX_UINT256 = 2**256 - 1
MAX_INT256 = 2**255 - 1


def mul_div_down(x, y, d):
    """mulDivDown: (x * y) / d rounded down."""
    return (x * y) // d


def mul_div_up(x, y, d):
    """mulDivUp: (x * y) / d rounded up (``product == 0 ? 0 : (product - 1) / d + 1``)."""
    return -((-(x * y)) // d)


def w_mul_down(x, y):
    """wMulDown: (x * y) / WAD rounded down."""
    return mul_div_down(x, y, WAD)


def w_mul_up(x, y):
    """wMulUp: (x * y) / WAD rounded up."""
    return mul_div_up(x, y, WAD)


def w_div_down(x, y):
    """wDivDown: (x * WAD) / y rounded down."""
    return mul_div_down(x, WAD, y)


def w_div_up(x, y):
    """wDivUp: (x * WAD) / y rounded up."""
    return mul_div_up(x, WAD, y)


def s_mul_div_down(x, y, d):
    """sMulDivDown: (x * y) / d for signed x, rounded toward negative infinity.

    Solidity: ``x >= 0 ? mulDivDown(x, y, d) : -mulDivUp(-x, y, d)``, which is floor for both signs."""
    return (x * y) // d


def s_mul_div_up(x, y, d):
    """sMulDivUp: (x * y) / d for signed x, rounded toward positive infinity.

    Solidity: ``x >= 0 ? mulDivUp(x, y, d) : -mulDivDown(-x, y, d)``, which is ceil for both signs."""
    return -((-(x * y)) // d)


def s_div_up(x, d):
    """sDivUp: x / d for signed x, rounded up (toward positive infinity)."""
    return -((-x) // d)


def s_w_mul_down(x, y):
    """sWMulDown: (x * y) / WAD for signed x, rounded down."""
    return s_mul_div_down(x, y, WAD)


def s_w_mul_up(x, y):
    """sWMulUp: (x * y) / WAD for signed x, rounded up."""
    return s_mul_div_up(x, y, WAD)


def abs(x):  # noqa: A001 - mirrors FixedPointMath.abs
    """abs: |x| (uint256 of an int256)."""
    return builtins.abs(x)


def to_int(x):
    """toInt: x as int256, reverting IntOverflow(x) when it does not fit."""
    if isinstance(x, np.ndarray):
        too_large = x > MAX_INT256
        if too_large.any():
            raise IntOverflow(x[too_large].flat[0])
        return x
    if x > MAX_INT256:
        raise IntOverflow(x)
    return x


def min(a, b):  # noqa: A001 - mirrors FixedPointMath.min
    """min: the smaller of a and b (exact for integers: (a + b - |a - b|) / 2)."""
    return (a + b - builtins.abs(a - b)) // 2


def max(a, b):  # noqa: A001 - mirrors FixedPointMath.max
    """max: the larger of a and b (exact for integers: (a + b + |a - b|) / 2)."""
    return (a + b + builtins.abs(a - b)) // 2
