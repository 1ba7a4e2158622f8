// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

uint256 constant WAD = 1e18;

/// @notice A value does not fit in int256.
error IntOverflow(uint256 value);

/// @title FixedPointMath
/// @notice WAD arithmetic with the rounding direction in the name (Morpho Blue style). Every
/// division in the protocol goes through here so that a reader can see who the rounding favours.
/// The numpy model (simulator/model/fixed_point.py) has the same functions with the same names.
library FixedPointMath {
    /// @dev (x * y) / d rounded down.
    function mulDivDown(uint256 x, uint256 y, uint256 d) internal pure returns (uint256) {
        return (x * y) / d;
    }

    /// @dev (x * y) / d rounded up.
    function mulDivUp(uint256 x, uint256 y, uint256 d) internal pure returns (uint256) {
        uint256 product = x * y;
        return product == 0 ? 0 : (product - 1) / d + 1;
    }

    /// @dev (x * y) / WAD rounded down.
    function wMulDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return mulDivDown(x, y, WAD);
    }

    /// @dev (x * y) / WAD rounded up.
    function wMulUp(uint256 x, uint256 y) internal pure returns (uint256) {
        return mulDivUp(x, y, WAD);
    }

    /// @dev (x * WAD) / y rounded down.
    function wDivDown(uint256 x, uint256 y) internal pure returns (uint256) {
        return mulDivDown(x, WAD, y);
    }

    /// @dev (x * WAD) / y rounded up.
    function wDivUp(uint256 x, uint256 y) internal pure returns (uint256) {
        return mulDivUp(x, WAD, y);
    }

    /// @dev (x * y) / d for signed x, rounded toward negative infinity (down).
    function sMulDivDown(int256 x, uint256 y, uint256 d) internal pure returns (int256) {
        if (x >= 0) return toInt(mulDivDown(uint256(x), y, d));
        return -toInt(mulDivUp(uint256(-x), y, d));
    }

    /// @dev (x * y) / d for signed x, rounded toward positive infinity (up).
    function sMulDivUp(int256 x, uint256 y, uint256 d) internal pure returns (int256) {
        if (x >= 0) return toInt(mulDivUp(uint256(x), y, d));
        return -toInt(mulDivDown(uint256(-x), y, d));
    }

    /// @dev x / d for signed x, rounded up (toward positive infinity).
    function sDivUp(int256 x, uint256 d) internal pure returns (int256) {
        if (x <= 0) return -toInt(uint256(-x) / d);
        return toInt((uint256(x) - 1) / d + 1);
    }

    /// @dev (x * y) / WAD for signed x, rounded down.
    function sWMulDown(int256 x, uint256 y) internal pure returns (int256) {
        return sMulDivDown(x, y, WAD);
    }

    /// @dev (x * y) / WAD for signed x, rounded up.
    function sWMulUp(int256 x, uint256 y) internal pure returns (int256) {
        return sMulDivUp(x, y, WAD);
    }

    function abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function toInt(uint256 x) internal pure returns (int256) {
        if (x > uint256(type(int256).max)) revert IntOverflow(x);
        return int256(x);
    }

    function min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    function max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }
}
