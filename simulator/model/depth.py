"""Mirror of contracts/libraries/DepthCurve.sol: the external book as a parametric curve.

`depth2pct` is the notional that moves the price 2%; walking `q` of notional moves the marginal
price by 2% * q / depth2pct and fills at the average of the walked range. Consumption within a
block accumulates (signed: buys +, sells -). The book ends where the marginal impact reaches
`maxImpact`. Scalar functions (one fill at a time)."""

from __future__ import annotations

from simulator.model import fixed_point as fp
from simulator.model.errors import PANIC_ARITHMETIC, BookExhausted, Panic
from simulator.units import WAD

__all__ = ["IMPACT_AT_DEPTH", "BookExhausted", "impact_of", "fill", "average_price", "capacity"]

IMPACT_AT_DEPTH = 2 * 10**16  # 0.02e18


def impact_of(consumed: int, depth2pct: int) -> int:
    """impactOf: marginal impact (WAD fraction) of `consumed` notional, rounded up."""
    if consumed == 0:
        return 0
    if depth2pct == 0:
        return fp.MAX_UINT256
    return fp.mul_div_up(consumed, IMPACT_AT_DEPTH, depth2pct)


def fill(
    market_id: int, price: int, size_delta: int, consumed: int, depth2pct: int, max_impact: int
) -> tuple[int, int]:
    """fill: (average fill price, the block's consumption after this fill). Buys round up, sells down.

    Raises BookExhausted when the walk would end past `max_impact`."""
    is_buy = size_delta > 0
    # Notional walked, at the oracle price; rounded up so the walk is never understated.
    q = fp.w_mul_up(fp.abs(size_delta), price)
    consumed_after = consumed + fp.to_int(q) if is_buy else consumed - fp.to_int(q)
    end_impact = impact_of(fp.abs(consumed_after), depth2pct)
    if end_impact > max_impact:
        raise BookExhausted(market_id, end_impact, max_impact)
    fill_price = average_price(price, consumed + consumed_after, depth2pct, is_buy)
    return fill_price, consumed_after


def average_price(price: int, mid_twice: int, depth2pct: int, is_buy: bool) -> int:
    """averagePrice: the impact at the walked range's midpoint, rounded against the taker."""
    if mid_twice == 0:
        return price
    premium = mid_twice > 0  # the average lies above the oracle price
    mid_abs_twice = fp.abs(mid_twice)
    if premium == is_buy:
        avg_impact = fp.mul_div_up(mid_abs_twice, IMPACT_AT_DEPTH, 2 * depth2pct)
    else:
        avg_impact = fp.mul_div_down(mid_abs_twice, IMPACT_AT_DEPTH, 2 * depth2pct)
    factor = WAD + avg_impact if premium else WAD - avg_impact
    if factor < 0:
        # uint256 `WAD - avgImpact` underflows and Solidity panics. Not reachable while setDepth
        # rescales the block's consumption with the book (the walked impact stays below maxImpact
        # < 1); kept because the contract's arithmetic is checked.
        raise Panic(PANIC_ARITHMETIC)
    return fp.w_mul_up(price, factor) if is_buy else fp.w_mul_down(price, factor)


def capacity(consumed: int, depth2pct: int, max_impact: int, is_buy: bool) -> int:
    """capacity: largest notional that can still be walked in direction `is_buy` before the book ends."""
    edge = fp.to_int(fp.mul_div_down(depth2pct, max_impact, IMPACT_AT_DEPTH))
    room = edge - consumed if is_buy else edge + consumed
    return room if room > 0 else 0
