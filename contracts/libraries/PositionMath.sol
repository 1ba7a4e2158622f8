// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FixedPointMath, WAD} from "./FixedPointMath.sol";

/// @title PositionMath
/// @notice How a fill changes a position `(size, openNotional)`. Mirrored by simulator/model/position.py.
library PositionMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @notice Applies a fill of `sizeDelta` at `fillPrice`.
    /// @dev The part that reduces the position releases its share of openNotional pro rata and
    /// realises PnL; the rest opens at the fill price. The released share is rounded so that the
    /// realised PnL rounds down (the protocol's favour); what stays in openNotional is the exact rest.
    /// @return newSize the size after the fill
    /// @return newOpenNotional the open notional after the fill
    /// @return realizedPnl PnL realised by the reducing part (WAD, rounded down)
    function applyFill(int256 size, int256 openNotional, int256 sizeDelta, uint256 fillPrice)
        internal
        pure
        returns (int256 newSize, int256 newOpenNotional, int256 realizedPnl)
    {
        newSize = size + sizeDelta;
        if (size == 0 || (size > 0) == (sizeDelta > 0)) {
            // Opening or increasing: the whole fill adds to the open notional, valued at cost.
            return (newSize, openNotional + sizeDelta.sWMulUp(fillPrice), 0);
        }
        uint256 absSize = FixedPointMath.abs(size);
        uint256 closed = FixedPointMath.min(FixedPointMath.abs(sizeDelta), absSize);
        // Released open notional, pro rata, rounded up: realised PnL rounds down for longs and shorts.
        int256 released = openNotional.sMulDivUp(closed, absSize);
        int256 closedSigned = size > 0 ? FixedPointMath.toInt(closed) : -FixedPointMath.toInt(closed);
        // Value of the closed part at the fill price, rounded down: a long receives, a short pays.
        realizedPnl = closedSigned.sWMulDown(fillPrice) - released;
        newOpenNotional = openNotional - released;
        uint256 opened = FixedPointMath.abs(sizeDelta) - closed;
        if (opened > 0) {
            // The fill flipped the position: the rest opens at the fill price.
            int256 openedSigned = sizeDelta > 0 ? FixedPointMath.toInt(opened) : -FixedPointMath.toInt(opened);
            newOpenNotional = openedSigned.sWMulUp(fillPrice);
        }
    }
}
