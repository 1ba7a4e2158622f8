// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title PriceFeed
/// @notice One market's price feed, readable as a Chainlink aggregator. Authorised updaters (the
/// simulator's oracle agent) push answers; each answer is a new round.
/// @dev Accepts any answer, zero and negative ones included: rejecting bad answers is the
/// router's job, and tests must be able to push bad answers through a real feed.
contract PriceFeed is AggregatorV3Interface {
    /* ERRORS */

    error NotOwner(address caller);
    error NotUpdater(address caller);
    error UnknownRound(uint80 roundId);
    error NoAnswer();

    /* EVENTS */

    /// @notice Chainlink's event for a new answer (same signature, so Chainlink indexers read it).
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event UpdaterSet(address indexed updater, bool allowed);

    /* STORAGE */

    /// @dev startedAt == updatedAt for every round (an answer is pushed in one transaction), so
    /// one timestamp is stored.
    struct Round {
        int256 answer;
        uint64 updatedAt;
    }

    uint256 public constant version = 1;

    uint8 public immutable decimals;
    address public immutable owner;
    string public description;

    /// @notice Id of the latest round; 0 before the first `submit`. Round ids start at 1.
    uint80 public latestRound;
    mapping(address => bool) public isUpdater;
    mapping(uint80 => Round) internal _rounds;

    /// @param decimals_ Decimals of the answers (8 for USD pairs, Chainlink's convention).
    /// @param description_ What the feed prices, e.g. "BTC / USD".
    /// @dev The deployer is owner and the first updater, so a fresh feed works without set-up.
    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        isUpdater[msg.sender] = true;
        emit UpdaterSet(msg.sender, true);
    }

    /* ADMIN */

    /// @notice Allows or revokes `updater` to submit answers. Owner only.
    function setUpdater(address updater, bool allowed) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        isUpdater[updater] = allowed;
        emit UpdaterSet(updater, allowed);
    }

    /* UPDATES */

    /// @notice Records `answer` as a new round timestamped with the current block. Updater only.
    /// @return roundId The id of the new round.
    function submit(int256 answer) external returns (uint80 roundId) {
        if (!isUpdater[msg.sender]) revert NotUpdater(msg.sender);
        roundId = latestRound + 1;
        latestRound = roundId;
        _rounds[roundId] = Round({answer: answer, updatedAt: uint64(block.timestamp)});
        emit AnswerUpdated(answer, roundId, block.timestamp);
    }

    /* AGGREGATOR V3 */

    /// @notice The data of round `_roundId`; reverts `UnknownRound` for an id never submitted.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (_roundId == 0 || _roundId > latestRound) revert UnknownRound(_roundId);
        return _roundData(_roundId);
    }

    /// @notice The data of the latest round; reverts `NoAnswer` before the first `submit`.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        uint80 latest = latestRound;
        if (latest == 0) revert NoAnswer();
        return _roundData(latest);
    }

    function _roundData(uint80 id) internal view returns (uint80, int256, uint256, uint256, uint80) {
        Round storage r = _rounds[id];
        return (id, r.answer, r.updatedAt, r.updatedAt, id);
    }
}
