// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FixedPointMath, WAD} from "./FixedPointMath.sol";

/// @notice One maintenance-margin tier: from `floor` notional upward, `mmr` applies and
/// `deduction` keeps MM continuous at the tier boundaries (Binance / Hyperliquid form).
struct Tier {
    uint256 floor;
    uint256 mmr;
    uint256 deduction;
}

/// @title MarginMath
/// @notice Position value, PnL and margin requirements. Mirrored by simulator/model/margin.py.
/// Every rounding favours the protocol: requirements round up, PnL rounds down.
library MarginMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev |size| * price / WAD rounded up: the notional that margin requirements are taken on.
    function notional(int256 size, uint256 price) internal pure returns (uint256) {
        return FixedPointMath.abs(size).wMulUp(price);
    }

    /// @dev size * price - openNotional, with size * price rounded down.
    function unrealizedPnl(int256 size, int256 openNotional, uint256 price) internal pure returns (int256) {
        return size.sWMulDown(price) - openNotional;
    }

    /// @dev MM = notional * mmr_k - deduction_k for the highest tier k whose floor <= notional.
    function maintenanceMargin(uint256 positionNotional, Tier[] storage tiers) internal view returns (uint256) {
        uint256 k = tiers.length - 1;
        while (tiers[k].floor > positionNotional) k--;
        return positionNotional.wMulUp(tiers[k].mmr) - tiers[k].deduction;
    }

    /// @dev IM = max(notional * imr, MM): a tier whose MM exceeds the base IM also raises the IM.
    function initialMargin(uint256 positionNotional, uint256 imr, uint256 mm) internal pure returns (uint256) {
        return FixedPointMath.max(positionNotional.wMulUp(imr), mm);
    }

    /// @dev Deduction of tier k given tier k-1: d_k = d_{k-1} + floor_k * (mmr_k - mmr_{k-1}), rounded
    /// down so MM is never understated.
    function tierDeduction(uint256 previousDeduction, uint256 floor, uint256 mmr, uint256 previousMmr)
        internal
        pure
        returns (uint256)
    {
        return previousDeduction + floor.wMulDown(mmr - previousMmr);
    }
}
