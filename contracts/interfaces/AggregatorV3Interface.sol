// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice Chainlink's price-feed interface (the same signatures as Chainlink's
/// `shared/interfaces/AggregatorV3Interface.sol`), so the router reads our `PriceFeed` and, on a
/// fork, real Chainlink aggregators alike.
interface AggregatorV3Interface {
    /// @notice Number of decimals of `answer`.
    function decimals() external view returns (uint8);

    /// @notice What the feed prices, e.g. "BTC / USD".
    function description() external view returns (string memory);

    /// @notice Version of the feed implementation.
    function version() external view returns (uint256);

    /// @notice The data of round `_roundId`.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice The data of the latest round.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
