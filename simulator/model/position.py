"""Mirror of contracts/libraries/PositionMath.sol: how a fill changes a position (size, openNotional)."""

from __future__ import annotations

from simulator.model import fixed_point as fp


def apply_fill(size: int, open_notional: int, size_delta: int, fill_price: int) -> tuple[int, int, int]:
    """applyFill: (newSize, newOpenNotional, realizedPnl) after a fill of `size_delta` at `fill_price`.

    The reducing part releases its share of openNotional pro rata (rounded up, so realised PnL rounds
    down) and realises PnL; the rest opens at the fill price."""
    new_size = size + size_delta
    if size == 0 or (size > 0) == (size_delta > 0):
        # Opening or increasing: the whole fill adds to the open notional, valued at cost.
        return new_size, open_notional + fp.s_w_mul_up(size_delta, fill_price), 0
    abs_size = fp.abs(size)
    closed = fp.min(fp.abs(size_delta), abs_size)
    # Released open notional, pro rata, rounded up: realised PnL rounds down for longs and shorts.
    released = fp.s_mul_div_up(open_notional, closed, abs_size)
    closed_signed = fp.to_int(closed) if size > 0 else -fp.to_int(closed)
    # Value of the closed part at the fill price, rounded down: a long receives, a short pays.
    realized_pnl = fp.s_w_mul_down(closed_signed, fill_price) - released
    new_open_notional = open_notional - released
    opened = fp.abs(size_delta) - closed
    if opened > 0:
        # The fill flipped the position: the rest opens at the fill price.
        opened_signed = fp.to_int(opened) if size_delta > 0 else -fp.to_int(opened)
        new_open_notional = fp.s_w_mul_up(opened_signed, fill_price)
    return new_size, new_open_notional, realized_pnl
