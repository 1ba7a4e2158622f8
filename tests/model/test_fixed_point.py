"""FixedPointMath mirror: every function against exact rational arithmetic (fractions.Fraction) with
its rounding direction, against the Solidity formula as written in FixedPointMath.sol, and
elementwise on numpy object arrays."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model import fixed_point as fp
from simulator.model.errors import IntOverflow
from simulator.units import WAD

# Operands whose products fit in uint256, as the contracts' values do.
uints = st.integers(min_value=0, max_value=2**127)
ints = st.integers(min_value=-(2**127), max_value=2**127)
divisors = st.integers(min_value=1, max_value=2**127)


def floor(q: Fraction) -> int:
    return math.floor(q)


def ceil(q: Fraction) -> int:
    return math.ceil(q)


# The Solidity bodies, transcribed literally (uint `/` truncates, i.e. floors non-negatives).
def sol_mul_div_up(x, y, d):
    product = x * y
    return 0 if product == 0 else (product - 1) // d + 1


def sol_s_mul_div_down(x, y, d):
    return (x * y) // d if x >= 0 else -sol_mul_div_up(-x, y, d)


def sol_s_mul_div_up(x, y, d):
    return sol_mul_div_up(x, y, d) if x >= 0 else -((-x * y) // d)


def sol_s_div_up(x, d):
    return -((-x) // d) if x <= 0 else (x - 1) // d + 1


@given(uints, uints, divisors)
def test_mul_div_rounds_down_and_up(x, y, d):
    exact = Fraction(x * y, d)
    assert fp.mul_div_down(x, y, d) == floor(exact)
    assert fp.mul_div_up(x, y, d) == ceil(exact) == sol_mul_div_up(x, y, d)


@given(uints, st.integers(min_value=1, max_value=2**127))
def test_wad_multiplication_and_division(x, y):
    assert fp.w_mul_down(x, y) == floor(Fraction(x * y, WAD))
    assert fp.w_mul_up(x, y) == ceil(Fraction(x * y, WAD))
    assert fp.w_div_down(x, y) == floor(Fraction(x * WAD, y))
    assert fp.w_div_up(x, y) == ceil(Fraction(x * WAD, y))


@given(ints, uints, divisors)
def test_signed_mul_div_rounds_toward_negative_and_positive_infinity(x, y, d):
    exact = Fraction(x * y, d)
    assert fp.s_mul_div_down(x, y, d) == floor(exact) == sol_s_mul_div_down(x, y, d)
    assert fp.s_mul_div_up(x, y, d) == ceil(exact) == sol_s_mul_div_up(x, y, d)


@given(ints, divisors)
def test_signed_div_up(x, d):
    assert fp.s_div_up(x, d) == ceil(Fraction(x, d)) == sol_s_div_up(x, d)


@given(ints, uints)
def test_signed_wad_multiplication(x, y):
    assert fp.s_w_mul_down(x, y) == floor(Fraction(x * y, WAD))
    assert fp.s_w_mul_up(x, y) == ceil(Fraction(x * y, WAD))


@given(ints, ints)
def test_abs_min_max(a, b):
    assert fp.abs(a) == (a if a >= 0 else -a)
    assert fp.min(a, b) == min(a, b)
    assert fp.max(a, b) == max(a, b)


def test_to_int_reverts_past_int256():
    assert fp.to_int(fp.MAX_INT256) == fp.MAX_INT256
    with pytest.raises(IntOverflow) as info:
        fp.to_int(fp.MAX_INT256 + 1)
    assert info.value.value == fp.MAX_INT256 + 1
    with pytest.raises(IntOverflow):
        fp.to_int(np.array([1, fp.MAX_INT256 + 1], dtype=object))


SCALAR_FUNCTIONS = {
    "mul_div_down": (fp.mul_div_down, ("u", "u", "d")),
    "mul_div_up": (fp.mul_div_up, ("u", "u", "d")),
    "w_mul_down": (fp.w_mul_down, ("u", "u")),
    "w_mul_up": (fp.w_mul_up, ("u", "u")),
    "w_div_down": (fp.w_div_down, ("u", "d")),
    "w_div_up": (fp.w_div_up, ("u", "d")),
    "s_mul_div_down": (fp.s_mul_div_down, ("i", "u", "d")),
    "s_mul_div_up": (fp.s_mul_div_up, ("i", "u", "d")),
    "s_div_up": (fp.s_div_up, ("i", "d")),
    "s_w_mul_down": (fp.s_w_mul_down, ("i", "u")),
    "s_w_mul_up": (fp.s_w_mul_up, ("i", "u")),
    "abs": (fp.abs, ("i",)),
    "min": (fp.min, ("i", "i")),
    "max": (fp.max, ("i", "i")),
}
KINDS = {"u": uints, "i": ints, "d": divisors}


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
@settings(max_examples=30)
@given(data=st.data())
def test_array_form_is_elementwise_scalar_form(name, data):
    function, kinds = SCALAR_FUNCTIONS[name]
    n = data.draw(st.integers(min_value=0, max_value=6), label="n")
    columns = [data.draw(st.lists(KINDS[k], min_size=n, max_size=n), label=k) for k in kinds]
    # The last argument is sometimes a scalar broadcast over the arrays.
    broadcast = data.draw(st.booleans(), label="broadcast") and len(kinds) > 1
    last = data.draw(KINDS[kinds[-1]], label="scalar") if broadcast else None
    arrays = [np.array(column, dtype=object) for column in columns]
    if broadcast:
        arrays[-1] = last
    result = function(*arrays)
    expected = [function(*(row[:-1] + ((last,) if broadcast else row[-1:]))) for row in zip(*columns)]
    assert isinstance(result, np.ndarray) and result.dtype == object
    assert [int(x) for x in result.tolist()] == expected
    assert all(type(x) is int for x in result.tolist())
