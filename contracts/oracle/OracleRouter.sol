// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";

/// @title OracleRouter
/// @notice Per market: a feed, a heartbeat and a deviation circuit breaker. Serves WAD prices the
/// engine may trade and liquidate on, and refuses (reverts) every other price.
/// @dev Units: every price the router takes or reports (`price`, `prices`, `lastAccepted`, error
/// and event arguments) is WAD, except `InvalidPrice.answer`, which is the feed's raw answer.
///
/// Breaker: `lastAccepted` is the reference price and only moves in `update` (or when the owner
/// configures the market). An answer more than `maxDeviation` away from it is not served by
/// `price`; the next `update` trips the breaker for `cooldown` seconds, after which the current
/// answer is served unchecked and the next `update` makes it the new reference.
/// Keepers should call `update` after every feed answer so the reference follows the market.
///
/// `price`, `prices` and `update` all decide through `_classify`, so they cannot disagree.
contract OracleRouter is IOracleRouter {
    /* ERRORS */

    error NotOwner(address caller);
    error NotPendingOwner(address caller, address pendingOwner);
    error ZeroAddress();
    error InvalidFeed(address feed);
    error UnsupportedDecimals(uint8 decimals);
    error InvalidHeartbeat(uint32 heartbeat);
    error InvalidMaxDeviation(uint256 maxDeviation);
    error UnknownMarket(uint256 marketId);
    error InvalidPrice(uint256 marketId, int256 answer);
    error StalePrice(uint256 marketId, uint256 updatedAt, uint256 nowTs, uint256 heartbeat);
    error BreakerTripped(uint256 marketId, uint256 until);
    error DeviationUnconfirmed(uint256 marketId, uint256 lastAccepted, uint256 answer);
    error FeedOutOfGas(address feed);

    /* EVENTS */

    event OwnershipTransferStarted(address indexed owner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event MarketConfigured(
        uint256 indexed marketId,
        address indexed feed,
        uint8 decimals,
        uint32 heartbeat,
        uint256 maxDeviation,
        uint32 cooldown,
        uint256 lastAccepted
    );
    event BreakerConfigured(
        uint256 indexed marketId, uint256 maxDeviation, uint32 cooldown, uint256 lastAccepted
    );
    event CircuitBreakerTripped(
        uint256 indexed marketId, uint256 lastAccepted, uint256 answer, uint256 until
    );
    event BreakerReset(uint256 indexed marketId, uint256 answer);

    /* TYPES */

    /// @notice Verdict on a market's current answer; the values are the status codes of `prices`.
    enum Status {
        Ok, // 0: usable
        Unknown, // 1: no feed configured
        Invalid, // 2: answer <= 0, too large for WAD math, or the feed reverted
        Stale, // 3: older than the heartbeat
        Tripped, // 4: breaker cooling down
        Unconfirmed // 5: deviates more than maxDeviation from lastAccepted; `update` would trip
    }

    /// @dev Two slots per market: configuration, then breaker parameters and state.
    struct Market {
        AggregatorV3Interface feed;
        uint8 decimals;
        uint32 heartbeat;
        uint32 cooldown;
        uint64 maxDeviation; // WAD fraction; 0 disables the breaker
        uint64 trippedUntil; // 0 when not tripped
        uint128 lastAccepted; // WAD; 0 when none yet (the next positive answer is accepted as is)
    }

    struct Reading {
        Status status;
        int256 answer; // raw feed answer (0 when the feed reverted)
        uint256 price; // WAD; 0 when the answer is invalid
        uint256 updatedAt;
        bool cooldownOver; // Ok because a cooldown ended: `update` makes `price` the new reference
    }

    /* STORAGE */

    uint256 internal constant WAD = 1e18;
    /// @dev Larger prices are Invalid: `lastAccepted` fits in 128 bits and the deviation math
    /// cannot overflow, so `prices` never reverts on a feed's garbage.
    uint256 internal constant MAX_PRICE = type(uint128).max;

    address public owner;
    /// @notice The address ownership was offered to and that has not accepted it yet (0: none).
    address public pendingOwner;
    mapping(uint256 => Market) internal _markets;

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    /* MODIFIERS */

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /* ADMIN */

    /// @notice Offers the router to `newOwner` (the zero address is refused); the owner stays the
    /// owner until `newOwner` accepts. A new offer replaces the previous one.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice The pending owner takes the router.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);
        delete pendingOwner;
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
    }

    /// @notice Registers or replaces the feed of `marketId` and resets its breaker.
    /// @param feed Any AggregatorV3Interface with at most 18 decimals (read once, here).
    /// @param heartbeat Maximum age of an answer, in seconds (> 0).
    /// @param maxDeviation Largest accepted move from the last accepted price, as a WAD fraction
    /// (0.1e18 = 10%), below 1e18; 0 disables the breaker.
    /// @param cooldown Seconds the breaker stays tripped (0: the next `update` already ends it).
    /// @dev The reference becomes the feed's current answer if it is valid, else 0 (then the first
    /// valid answer is accepted without a deviation check). Staleness is not checked here: the
    /// owner chose this feed, and `price` still refuses a stale answer.
    function setMarket(uint256 marketId, address feed, uint32 heartbeat, uint256 maxDeviation, uint32 cooldown)
        external
        onlyOwner
    {
        if (feed.code.length == 0) revert InvalidFeed(feed);
        if (heartbeat == 0) revert InvalidHeartbeat(heartbeat);
        _checkMaxDeviation(maxDeviation);
        uint8 decimals = AggregatorV3Interface(feed).decimals();
        if (decimals > 18) revert UnsupportedDecimals(decimals);

        Market storage m = _markets[marketId];
        m.feed = AggregatorV3Interface(feed);
        m.decimals = decimals;
        m.heartbeat = heartbeat;
        m.cooldown = cooldown;
        uint256 last = _resetBreaker(m, maxDeviation);
        emit MarketConfigured(marketId, feed, decimals, heartbeat, maxDeviation, cooldown, last);
    }

    /// @notice Enables (maxDeviation > 0), retunes or disables (0) the breaker of `marketId`.
    /// @dev Resets the breaker as `setMarket` does: a running trip ends and the reference becomes
    /// the feed's current valid answer (else 0). An owner who changes the breaker mid-trip is
    /// overriding it on purpose.
    function setBreaker(uint256 marketId, uint256 maxDeviation, uint32 cooldown) external onlyOwner {
        Market storage m = _markets[marketId];
        if (address(m.feed) == address(0)) revert UnknownMarket(marketId);
        _checkMaxDeviation(maxDeviation);
        m.cooldown = cooldown;
        uint256 last = _resetBreaker(m, maxDeviation);
        emit BreakerConfigured(marketId, maxDeviation, cooldown, last);
    }

    /* PRICES */

    /// @inheritdoc IOracleRouter
    /// @dev Reverts, first match wins: `UnknownMarket`, `InvalidPrice` (answer <= 0, too large, or
    /// the feed reverted: answer 0), `StalePrice` (age > heartbeat; age == heartbeat is fresh),
    /// `BreakerTripped` (before `until`), `DeviationUnconfirmed` (breaker on, not tripped, and the
    /// answer moved more than maxDeviation from `lastAccepted`). Once a cooldown has ended the
    /// current answer is served without a deviation check.
    function price(uint256 marketId) external view returns (uint256) {
        Reading memory r = _classify(marketId);
        if (r.status != Status.Ok) _revertWith(marketId, r);
        return r.price;
    }

    /// @notice `price` of many markets without reverting, for batched reads.
    /// @return wadPrices WAD price per market, 0 unless its status is 0 (so a caller that ignores
    /// the status cannot use a refused price).
    /// @return status Per market: 0 ok, 1 unknown, 2 invalid, 3 stale, 4 tripped, 5 deviation
    /// unconfirmed (the `Status` values).
    function prices(uint256[] calldata marketIds)
        external
        view
        returns (uint256[] memory wadPrices, uint8[] memory status)
    {
        wadPrices = new uint256[](marketIds.length);
        status = new uint8[](marketIds.length);
        for (uint256 i; i < marketIds.length; ++i) {
            Reading memory r = _classify(marketIds[i]);
            status[i] = uint8(r.status);
            if (r.status == Status.Ok) wadPrices[i] = r.price;
        }
    }

    /// @notice Records what `price` decides about `marketId`'s current answer. Permissionless.
    /// Ok after a cooldown: the answer becomes the reference and the breaker resets. Ok: the answer
    /// becomes the reference. Deviation unconfirmed: the breaker trips for `cooldown` seconds.
    /// Invalid, stale or cooling down: nothing changes.
    /// @return usable Whether `price(marketId)` now succeeds.
    function update(uint256 marketId) external returns (bool usable) {
        Reading memory r = _classify(marketId);
        Market storage m = _markets[marketId];
        if (r.status == Status.Ok) {
            if (r.cooldownOver) {
                m.trippedUntil = 0;
                m.lastAccepted = uint128(r.price);
                emit BreakerReset(marketId, r.price);
            } else if (m.lastAccepted != r.price) {
                m.lastAccepted = uint128(r.price);
            }
            return true;
        }
        if (r.status == Status.Unconfirmed) {
            uint256 until = block.timestamp + m.cooldown;
            m.trippedUntil = uint64(until);
            emit CircuitBreakerTripped(marketId, m.lastAccepted, r.price, until);
            // With a zero cooldown the trip is over as it starts, and `price` serves the answer.
            return m.cooldown == 0;
        }
        if (r.status == Status.Unknown) revert UnknownMarket(marketId);
        return false;
    }

    /* VIEWS */

    /// @notice Configuration of `marketId` (all zero when unknown).
    function marketConfig(uint256 marketId)
        external
        view
        returns (address feed, uint8 decimals, uint32 heartbeat, uint256 maxDeviation, uint32 cooldown)
    {
        Market storage m = _markets[marketId];
        return (address(m.feed), m.decimals, m.heartbeat, m.maxDeviation, m.cooldown);
    }

    /// @notice Breaker state of `marketId`: the reference price (WAD, 0 when none) and the end of
    /// the current trip (0 when not tripped; a past time means the cooldown is over but no
    /// `update` has reset it yet).
    function breakerState(uint256 marketId) external view returns (uint256 lastAccepted, uint256 trippedUntil) {
        Market storage m = _markets[marketId];
        return (m.lastAccepted, m.trippedUntil);
    }

    /* INTERNAL */

    /// @dev The one place that decides whether a market's current answer is usable.
    function _classify(uint256 marketId) internal view returns (Reading memory r) {
        Market storage m = _markets[marketId];
        AggregatorV3Interface feed = m.feed;
        if (address(feed) == address(0)) {
            r.status = Status.Unknown;
            return r;
        }
        (r.answer, r.updatedAt) = _latest(feed);
        r.price = _toWad(r.answer, m.decimals);
        if (r.price == 0) {
            r.status = Status.Invalid;
        } else if (_age(r.updatedAt) > m.heartbeat) {
            r.status = Status.Stale;
        } else if (m.trippedUntil != 0) {
            if (block.timestamp < m.trippedUntil) r.status = Status.Tripped;
            else r.cooldownOver = true;
        } else {
            uint256 maxDeviation = m.maxDeviation;
            uint256 last = m.lastAccepted;
            if (maxDeviation != 0 && last != 0 && _deviationUp(last, r.price) > maxDeviation) {
                r.status = Status.Unconfirmed;
            }
        }
    }

    /// @dev Reverts with the custom error of a refused reading.
    function _revertWith(uint256 marketId, Reading memory r) internal view {
        Market storage m = _markets[marketId];
        if (r.status == Status.Unknown) revert UnknownMarket(marketId);
        if (r.status == Status.Invalid) revert InvalidPrice(marketId, r.answer);
        if (r.status == Status.Stale) revert StalePrice(marketId, r.updatedAt, block.timestamp, m.heartbeat);
        if (r.status == Status.Tripped) revert BreakerTripped(marketId, m.trippedUntil);
        revert DeviationUnconfirmed(marketId, m.lastAccepted, r.price);
    }

    /// @dev The feed's latest answer and time; (0, 0) when the feed reverts (e.g. `NoAnswer`
    /// before its first round), which classifies as Invalid instead of sinking a batched read.
    /// A call that failed only for want of gas reverts `FeedOutOfGas` instead: otherwise a low gas
    /// limit (such as the one `eth_estimateGas` searches for) would turn `update` and `setMarket`
    /// into a silent "no valid answer".
    function _latest(AggregatorV3Interface feed) internal view returns (int256 answer, uint256 updatedAt) {
        uint256 gasBefore = gasleft();
        try feed.latestRoundData() returns (uint80, int256 a, uint256, uint256 u, uint80) {
            return (a, u);
        } catch {
            // EIP-150 keeps 1/64 of the gas back from a call: having no more than that left means
            // the feed used all it was given.
            if (gasleft() <= gasBefore / 64) revert FeedOutOfGas(address(feed));
            return (0, 0);
        }
    }

    /// @dev Sets the breaker parameters, ends any trip and re-anchors the reference to the feed's
    /// current valid answer (else 0). Returns the new reference.
    function _resetBreaker(Market storage m, uint256 maxDeviation) internal returns (uint256 last) {
        (int256 answer,) = _latest(m.feed);
        last = _toWad(answer, m.decimals);
        m.maxDeviation = uint64(maxDeviation);
        m.trippedUntil = 0;
        m.lastAccepted = uint128(last);
    }

    function _checkMaxDeviation(uint256 maxDeviation) internal pure {
        // A 100% move down is a zero price, which is Invalid anyway; >= 1 would be meaningless.
        if (maxDeviation >= WAD) revert InvalidMaxDeviation(maxDeviation);
    }

    /// @dev answer * 10**(18 - decimals), exact (decimals <= 18). 0 when answer <= 0 or the
    /// result would exceed MAX_PRICE: 0 is how callers recognise an invalid answer.
    function _toWad(int256 answer, uint8 decimals) internal pure returns (uint256) {
        if (answer <= 0) return 0;
        uint256 scale = 10 ** (18 - decimals);
        if (uint256(answer) > MAX_PRICE / scale) return 0;
        return uint256(answer) * scale;
    }

    /// @dev Age of an answer; a timestamp ahead of the chain (clock skew of a foreign feed) counts
    /// as age 0 rather than underflowing.
    function _age(uint256 updatedAt) internal view returns (uint256) {
        return block.timestamp > updatedAt ? block.timestamp - updatedAt : 0;
    }

    /// @dev Equivalent to |current - last| * WAD / last rounded up. Rounding up makes the breaker's
    /// `> maxDeviation` test exact (ceil(x) > m iff x > m for an integer m): no move above the
    /// limit slips through by rounding, and a move of exactly maxDeviation is allowed. Both
    /// inputs are <= MAX_PRICE, so nothing overflows.
    function _deviationUp(uint256 last, uint256 current) internal pure returns (uint256) {
        uint256 diff = current > last ? current - last : last - current;
        return (diff * WAD + last - 1) / last;
    }
}
