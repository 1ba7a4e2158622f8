// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FixedPointMath, WAD} from "./FixedPointMath.sol";

/// @title FundingMath
/// @notice Skew-based funding accrued into a cumulative index per market (USD per unit of size,
/// WAD). Longs pay shorts when takers are net long. Mirrored by simulator/model/funding.py.
library FundingMath {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev Funding rate per second (WAD fraction of notional): maxRate * clamp(skew / skewScale, -1, 1).
    function rate(int256 skew, uint256 skewScale, uint256 maxRatePerSecond) internal pure returns (int256) {
        if (skewScale == 0 || maxRatePerSecond == 0 || skew == 0) return 0;
        uint256 ratio = FixedPointMath.min(FixedPointMath.abs(skew).wDivDown(skewScale), WAD);
        int256 magnitude = FixedPointMath.toInt(ratio.wMulDown(maxRatePerSecond));
        return skew > 0 ? magnitude : -magnitude;
    }

    /// @dev Index after `elapsed` seconds at `price`: index + rate * price * elapsed / WAD.
    function accrue(int256 index, int256 ratePerSecond, uint256 price, uint256 elapsed) internal pure returns (int256) {
        return index + ratePerSecond.sWMulDown(price) * FixedPointMath.toInt(elapsed);
    }

    /// @dev Funding a position owes since `lastIndex`: size * (index - lastIndex) / WAD, rounded up,
    /// so payers pay the dust and receivers forgo it: paid >= received, the dust stays in the protocol.
    function owed(int256 size, int256 index, int256 lastIndex) internal pure returns (int256) {
        return FixedPointMath.sDivUp(size * (index - lastIndex), WAD);
    }
}
