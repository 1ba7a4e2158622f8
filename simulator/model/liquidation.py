"""Mirror of contracts/libraries/LiquidationMath.sol: slices, penalties, bankruptcy prices, socialised
losses and ADL scores. `social_loss_owed` also works elementwise on numpy object-dtype arrays."""

from __future__ import annotations

from simulator.model import fixed_point as fp
from simulator.units import WAD


def slice_size(abs_size: int, price: int, slice_threshold: int, slice_fraction: int, max_size: int) -> int:
    """sliceSize: the whole position when its notional is at most `slice_threshold`, else
    `slice_fraction` of it (rounded up, never 0), never more than `max_size`."""
    size = abs_size
    if fp.w_mul_up(abs_size, price) > slice_threshold:
        size = fp.w_mul_up(abs_size, slice_fraction)
    return fp.min(fp.min(size, abs_size), max_size)


def penalty(closed_notional: int, liquidation_fee: int, value_after_fill: int) -> int:
    """penalty: fee * closed notional, taken only from what equity remains after the fill."""
    if value_after_fill <= 0:
        return 0
    return fp.min(fp.w_mul_down(closed_notional, liquidation_fee), value_after_fill)


def bankruptcy_price(price: int, account_value: int, size: int) -> int:
    """bankruptcyPrice: P - (AV - 1) / size, the division rounded toward the account; at least 1."""
    abs_size = fp.abs(size)
    # Distance from the oracle price that consumes AV - 1: positive moves against a long.
    distance = fp.s_mul_div_down(account_value - 1, WAD, abs_size)
    bankrupt = price - distance if size > 0 else price + distance
    return bankrupt if bankrupt > 0 else 1


def hyperliquid_score(size: int, open_notional: int, notional: int, account_value: int) -> int:
    """hyperliquidScore: (mark / entry for a long, entry / mark for a short) * notional / AV, i.e.
    (notional / |openNotional|, or its inverse) * notional / AV, rounded down; an account at or
    below zero value (or with no cost basis) ranks first."""
    if account_value <= 0:
        return fp.MAX_UINT256
    cost = fp.abs(open_notional)
    if cost == 0 or notional == 0:
        return fp.MAX_UINT256
    price_ratio = fp.w_div_down(notional, cost) if size > 0 else fp.w_div_down(cost, notional)
    return fp.w_mul_down(price_ratio, fp.w_div_down(notional, account_value))


def leverage_score(notional: int, account_value: int) -> int:
    """leverageScore: the winner's effective leverage notional / AV, rounded down; an account at or
    below zero value ranks first (its leverage is unbounded)."""
    if account_value <= 0:
        return fp.MAX_UINT256
    return fp.w_div_down(notional, account_value)


def adl_deficit(size: int, price: int, bankruptcy_price: int) -> int:
    """adlDeficit: |size| * |P_bk - P| rounded down, what closing at the bankruptcy price takes from
    the winners; 0 when the bankruptcy price is on the winners' side."""
    if size > 0:
        return fp.w_mul_down(fp.abs(size), bankruptcy_price - price) if bankruptcy_price > price else 0
    return fp.w_mul_down(fp.abs(size), price - bankruptcy_price) if bankruptcy_price < price else 0


def social_loss_owed(size, index, last_index):
    """socialLossOwed: |size| * (index - lastIndex) / WAD rounded up."""
    return fp.mul_div_up(fp.abs(size), index - last_index, WAD)


def social_loss_index_delta(loss: int, total_abs_size: int) -> int:
    """socialLossIndexDelta: index increase that spreads `loss` over `total_abs_size`, rounded up."""
    return fp.mul_div_up(loss, WAD, total_abs_size)


def adl_score(upnl: int, open_notional: int, notional: int, account_value: int) -> int:
    """adlScore: PnL% * effective leverage (uPnL / |openNotional| * notional / AV), rounded down.

    An account at or below zero value (or with no cost basis) ranks first."""
    if account_value <= 0:
        return fp.MAX_UINT256
    if upnl <= 0:
        return 0
    cost = fp.abs(open_notional)
    if cost == 0:
        return fp.MAX_UINT256
    pnl_fraction = fp.w_div_down(upnl, cost)
    leverage = fp.w_div_down(notional, account_value)
    return fp.w_mul_down(pnl_fraction, leverage)
