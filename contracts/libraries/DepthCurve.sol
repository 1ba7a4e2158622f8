// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FixedPointMath, WAD} from "./FixedPointMath.sol";

/// @title DepthCurve
/// @notice The external book as a parametric curve. `depth2pct` is the notional that moves the
/// price 2%; book density is uniform, so walking `q` of notional moves the marginal price by
/// 2% * q / depth2pct and fills at the average of the walked range. Consumption within a block
/// accumulates (signed: buys +, sells -). The book ends where the marginal impact reaches
/// `maxImpact`. Mirrored by simulator/model/depth.py.
library DepthCurve {
    using FixedPointMath for uint256;

    uint256 internal constant IMPACT_AT_DEPTH = 0.02e18;

    /// @notice The fill would walk the book past its end.
    error BookExhausted(uint256 marketId, uint256 impact, uint256 maxImpact);

    /// @dev Marginal impact (WAD fraction) of `consumed` notional, rounded up.
    function impactOf(uint256 consumed, uint256 depth2pct) internal pure returns (uint256) {
        if (consumed == 0) return 0;
        if (depth2pct == 0) return type(uint256).max;
        return consumed.mulDivUp(IMPACT_AT_DEPTH, depth2pct);
    }

    /// @notice Average fill price of `sizeDelta` at oracle price `price` after `consumed` notional
    /// was already walked in this block. Buys round the price up, sells down.
    /// @return fillPrice average execution price (WAD)
    /// @return consumedAfter the block's signed consumption after this fill
    function fill(
        uint256 marketId,
        uint256 price,
        int256 sizeDelta,
        int256 consumed,
        uint256 depth2pct,
        uint256 maxImpact
    ) internal pure returns (uint256 fillPrice, int256 consumedAfter) {
        bool isBuy = sizeDelta > 0;
        // Notional walked, at the oracle price; rounded up so the walk is never understated.
        uint256 q = FixedPointMath.abs(sizeDelta).wMulUp(price);
        consumedAfter = isBuy ? consumed + FixedPointMath.toInt(q) : consumed - FixedPointMath.toInt(q);
        uint256 endImpact = impactOf(FixedPointMath.abs(consumedAfter), depth2pct);
        if (endImpact > maxImpact) revert BookExhausted(marketId, endImpact, maxImpact);
        fillPrice = averagePrice(price, consumed + consumedAfter, depth2pct, isBuy);
    }

    /// @dev Average fill price when the walked range's midpoint is `midTwice / 2` of notional: the
    /// impact at the midpoint, rounded against the taker (buys up, sells down).
    function averagePrice(uint256 price, int256 midTwice, uint256 depth2pct, bool isBuy)
        internal
        pure
        returns (uint256)
    {
        if (midTwice == 0) return price;
        bool premium = midTwice > 0; // the average lies above the oracle price
        uint256 midAbsTwice = FixedPointMath.abs(midTwice);
        uint256 avgImpact = premium == isBuy
            ? midAbsTwice.mulDivUp(IMPACT_AT_DEPTH, 2 * depth2pct)
            : midAbsTwice.mulDivDown(IMPACT_AT_DEPTH, 2 * depth2pct);
        uint256 factor = premium ? WAD + avgImpact : WAD - avgImpact;
        return isBuy ? price.wMulUp(factor) : price.wMulDown(factor);
    }

    /// @notice Largest notional that can still be walked in direction `isBuy` before the book ends.
    function capacity(int256 consumed, uint256 depth2pct, uint256 maxImpact, bool isBuy)
        internal
        pure
        returns (uint256)
    {
        int256 edge = FixedPointMath.toInt(depth2pct.mulDivDown(maxImpact, IMPACT_AT_DEPTH));
        int256 room = isBuy ? edge - consumed : edge + consumed;
        return room > 0 ? uint256(room) : 0;
    }
}
