"""Mirror of contracts/libraries/FundingMath.sol: skew-based funding in a cumulative index per market
(USD per unit of size, WAD). Longs pay shorts when takers are net long. `owed` also works
elementwise on numpy object-dtype arrays."""

from __future__ import annotations

from simulator.model import fixed_point as fp
from simulator.units import WAD


def rate(skew: int, skew_scale: int, max_rate_per_second: int) -> int:
    """rate: funding rate per second, maxRate * clamp(skew / skewScale, -1, 1)."""
    if skew_scale == 0 or max_rate_per_second == 0 or skew == 0:
        return 0
    ratio = fp.min(fp.w_div_down(fp.abs(skew), skew_scale), WAD)
    magnitude = fp.to_int(fp.w_mul_down(ratio, max_rate_per_second))
    return magnitude if skew > 0 else -magnitude


def accrue(index: int, rate_per_second: int, price: int, elapsed: int) -> int:
    """accrue: index + rate * price / WAD (rounded down) * elapsed."""
    return index + fp.s_w_mul_down(rate_per_second, price) * fp.to_int(elapsed)


def owed(size, index, last_index):
    """owed: size * (index - lastIndex) / WAD rounded up: payers pay the dust, receivers forgo it."""
    return fp.s_div_up(size * (index - last_index), WAD)
