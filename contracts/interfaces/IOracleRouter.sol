// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice What the engine and the liquidation engine need from the oracle router.
interface IOracleRouter {
    /// @notice The accepted price of `marketId` in WAD (18 decimals).
    /// @dev Reverts with a custom error when the feed is unknown, the answer is non-positive, the
    /// answer is older than the market's heartbeat, the circuit breaker is tripped, or the answer
    /// deviates from the last accepted price by more than the breaker allows (an `update` would
    /// trip it). Trades and liquidations never execute on such a price.
    function price(uint256 marketId) external view returns (uint256);
}
