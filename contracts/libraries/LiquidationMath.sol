// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FixedPointMath, WAD} from "./FixedPointMath.sol";

/// @title LiquidationMath
/// @notice Slices, penalties, bankruptcy prices, socialised losses and ADL scores. Mirrored by
/// simulator/model/liquidation.py.
library LiquidationMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev Size to close in one call: the whole position when its notional is at most
    /// `sliceThreshold`, else at most `sliceFraction` of it (rounded up, so a slice is never 0),
    /// and never more than `maxSize`.
    function sliceSize(uint256 absSize, uint256 price, uint256 sliceThreshold, uint256 sliceFraction, uint256 maxSize)
        internal
        pure
        returns (uint256 size)
    {
        size = absSize;
        if (absSize.wMulUp(price) > sliceThreshold) size = absSize.wMulUp(sliceFraction);
        size = FixedPointMath.min(FixedPointMath.min(size, absSize), maxSize);
    }

    /// @dev Penalty = fee * closed notional, taken only from what equity remains after the fill.
    function penalty(uint256 closedNotional, uint256 liquidationFee, int256 valueAfterFill) internal pure returns (uint256) {
        if (valueAfterFill <= 0) return 0;
        return FixedPointMath.min(closedNotional.wMulDown(liquidationFee), uint256(valueAfterFill));
    }

    /// @dev Price at which closing the whole position leaves the account's value at zero, other
    /// prices fixed: P - AV / size. One wei of value is held back and the division rounds toward
    /// the account, so closing there never leaves it below zero. At least 1.
    function bankruptcyPrice(uint256 price, int256 accountValue, int256 size) internal pure returns (uint256) {
        uint256 absSize = FixedPointMath.abs(size);
        // Distance from the oracle price that consumes AV - 1: positive moves against a long.
        int256 distance = (accountValue - 1).sMulDivDown(WAD, absSize);
        int256 bankrupt = size > 0 ? int256(price) - distance : int256(price) + distance;
        return bankrupt > 0 ? uint256(bankrupt) : 1;
    }

    /// @dev HYPERLIQUID ranking score: (mark / entry for a long, entry / mark for a short) times
    /// notional / AV, i.e. (notional / |openNotional|, or its inverse) * notional / AV. An account at
    /// or below zero value (or with no cost basis) ranks first. Rounded down.
    function hyperliquidScore(int256 size, int256 openNotional, uint256 notional, int256 accountValue)
        internal
        pure
        returns (uint256)
    {
        if (accountValue <= 0) return type(uint256).max;
        uint256 cost = FixedPointMath.abs(openNotional);
        if (cost == 0 || notional == 0) return type(uint256).max;
        uint256 priceRatio = size > 0 ? notional.wDivDown(cost) : cost.wDivDown(notional);
        return priceRatio.wMulDown(notional.wDivDown(uint256(accountValue)));
    }

    /// @dev LEVERAGE_DRAIN ranking score: the winner's effective leverage notional / AV, rounded
    /// down. An account at or below zero value ranks first (its leverage is unbounded).
    function leverageScore(uint256 notional, int256 accountValue) internal pure returns (uint256) {
        if (accountValue <= 0) return type(uint256).max;
        return notional.wDivDown(uint256(accountValue));
    }

    /// @dev The deficit an ADL puts on the winners: what closing the bankrupt `size` at the
    /// bankruptcy price rather than the oracle price takes from them, |size| * |P_bk - P|, rounded
    /// down; 0 when the bankruptcy price is on the winners' side (the account still has equity).
    function adlDeficit(int256 size, uint256 price, uint256 bankruptcyPrice) internal pure returns (uint256) {
        if (size > 0) return bankruptcyPrice > price ? FixedPointMath.abs(size).wMulDown(bankruptcyPrice - price) : 0;
        return bankruptcyPrice < price ? FixedPointMath.abs(size).wMulDown(price - bankruptcyPrice) : 0;
    }

    /// @dev Socialised loss a position owes since `lastIndex`: |size| * (index - lastIndex), rounded
    /// up so the positions together pay at least the loss.
    function socialLossOwed(int256 size, uint256 index, uint256 lastIndex) internal pure returns (uint256) {
        return FixedPointMath.abs(size).mulDivUp(index - lastIndex, WAD);
    }

    /// @dev Index increase that spreads `loss` over `totalAbsSize` of open positions, rounded up.
    function socialLossIndexDelta(uint256 loss, uint256 totalAbsSize) internal pure returns (uint256) {
        return loss.mulDivUp(WAD, totalAbsSize);
    }

    /// @dev PNL_LEVERAGE ranking score (BitMEX / Bybit): PnL% * effective leverage, with
    /// PnL% = uPnL / |openNotional| and leverage = notional / AV. An account at or below zero value
    /// ranks first. Rounded down (ties are broken by account id, ascending).
    function adlScore(int256 upnl, int256 openNotional, uint256 notional, int256 accountValue)
        internal
        pure
        returns (uint256)
    {
        if (accountValue <= 0) return type(uint256).max;
        if (upnl <= 0) return 0;
        uint256 cost = FixedPointMath.abs(openNotional);
        if (cost == 0) return type(uint256).max;
        uint256 pnlFraction = uint256(upnl).wDivDown(cost);
        uint256 leverage = notional.wDivDown(uint256(accountValue));
        return pnlFraction.wMulDown(leverage);
    }
}
