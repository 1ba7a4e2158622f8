// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IPerpEngine} from "./IPerpEngine.sol";
import {IOracleRouter} from "./IOracleRouter.sol";

/// @notice What happens to a loss the insurance fund cannot pay, or to a position the book cannot take.
enum BadDebtPolicy {
    /// Close the rest against opposite-side winners at the bankruptcy price (default).
    ADL,
    /// Spread the loss over the market's other open positions pro rata to size (Drift).
    SOCIALIZE,
    /// Record the loss as bad debt: the protocol is insolvent by that amount.
    NONE
}

/// @notice Order in which ADL picks counterparties.
enum AdlRanking {
    /// PnL% times effective leverage, highest first (BitMEX / Bybit); ties by account id.
    PNL_LEVERAGE,
    /// Every eligible winner, reduced in proportion to its size; listed by account id.
    PRO_RATA,
    /// The queue baseline of Chitra (arXiv 2512.01112): PNL_LEVERAGE's ranking and list, every listed
    /// winner closed whole at the bankruptcy price; the size beyond the bankrupt position closes
    /// against the vault at the same price, which keeps the haircut on it (the overshoot).
    QUEUE,
    /// Capped pro-rata haircut (Chitra, arXiv 2512.01112): PRO_RATA's sizes and list; each winner
    /// closes at its own price, giving up x_i = ceil(D * u_i / U) of its uPnL u_i (U = sum of u_i,
    /// D = the deficit the bankruptcy price puts on the winners), so x_i / u_i is the same for all.
    CAPPED_PRO_RATA,
    /// Hyperliquid's ranking (its documentation: unrealised PnL and leverage): (mark / entry for a
    /// long, entry / mark for a short) times notional / account value, highest first; ties by id.
    /// Listed and filled as PNL_LEVERAGE, at the bankruptcy price (Hyperliquid: the oracle price,
    /// which would leave the deficit as bad debt).
    HYPERLIQUID,
    /// Minimal overshoot with the fewest closures: the largest winners first (score = notional;
    /// ties by id), each giving up min(remaining, its size) at the bankruptcy price, so the fills
    /// cover exactly the deficit and touch the fewest winners any ranking can.
    MIN_OVERSHOOT,
    /// Leverage draining (Campbell, Hey, Moallemi and Nutz, arXiv 2603.15963: the water-filling
    /// rule): the most levered winners first (score = notional / AV, the maximum at AV <= 0; ties
    /// by id), drained until their leverage is equal. The listed winners at AV <= 0 give up
    /// min(remaining, size) first; the others keep R = (their sizes - what remains) in proportion
    /// to their AV, r_i = floor(R * AV_i / E) capped at the size (E = the sum of their AV), and
    /// give up the rest; what the rounding leaves of R goes back to the first of them, as far as
    /// each gave up. All at the bankruptcy price. The last listed winner must be above the level
    /// (r_i < size), else AdlNotAboveLevel: the list is the ranking's prefix the water reaches.
    LEVERAGE_DRAIN
}

/// @notice Per-market liquidation rules. Notionals in WAD USD, fractions WAD.
struct LiquidationParams {
    /// positions with notional at or below this close whole; above it, in slices
    uint256 sliceThreshold;
    /// largest fraction of a position one call closes above the threshold (Hyperliquid: 0.2)
    uint256 sliceFraction;
    /// liquidated notional allowed per window (0 = no rate limit)
    uint256 rateLimitNotional;
    /// rate-limit window in seconds
    uint256 rateLimitWindow;
    BadDebtPolicy policy;
    AdlRanking ranking;
}

/// @title ILiquidationEngine
/// @notice Permissionless liquidation with an insurance fund, bad-debt policies and ADL, over a PerpEngine
/// that grants it LIQUIDATOR_ROLE. Units as in IPerpEngine: sizes, prices, notionals and values WAD.
interface ILiquidationEngine {
    /* ERRORS */

    /// @notice `caller` is not the owner.
    error Unauthorized(address caller);
    /// @notice Ownership cannot go to the zero address (no one could configure markets again).
    error InvalidOwner(address newOwner);
    /// @notice `caller` accepted an ownership that was not offered to it (`pendingOwner`, 0: none).
    error NotPendingOwner(address caller, address pendingOwner);
    /// @notice The engine has no market with this id.
    error UnknownMarket(uint256 marketId);
    /// @notice `maxSize` of zero.
    error ZeroAmount();
    /// @notice A liquidation parameter is out of its range.
    error InvalidParameter(bytes32 name, uint256 value);
    /// @notice The account's value is at or above its maintenance margin.
    error NotLiquidatable(uint256 accountId, int256 accountValue, uint256 maintenanceMargin);
    /// @notice The account has no position in the market.
    error NoPosition(uint256 accountId, uint256 marketId);
    /// @notice The vault is the backstop and is never liquidated or deleveraged.
    error VaultAccount(uint256 accountId);
    /// @notice The market's rate limit is used up until `windowEnd`.
    error RateLimited(uint256 marketId, uint256 windowEnd);
    /// @notice The book cannot take any of the slice (depth gone or `maxImpact` reached); under
    /// SOCIALIZE and NONE the position stays open until depth returns.
    error LiquidityVoid(uint256 marketId, uint256 size);
    /// @notice Under ADL: the book and the insurance fund cannot absorb this liquidation; call
    /// `deleverage`. `shortfall` is the loss beyond bankruptcy (type(uint256).max: no book at all);
    /// `fundAvailable` is the free insurance fund plus what it earmarked for this account.
    error UseDeleverage(uint256 accountId, uint256 marketId, uint256 shortfall, uint256 fundAvailable);
    /// @notice `deleverage` while the book and the fund can still absorb the loss, or under
    /// another policy.
    error AdlNotRequired(uint256 accountId, uint256 marketId);
    /// @notice Counterparty `accountId` is not on the opposite side with a positive uPnL.
    error AdlIneligible(uint256 accountId, int256 size, int256 unrealizedPnl);
    /// @notice The counterparty at `index` ranks before the one above it.
    error AdlOutOfOrder(uint256 index, uint256 previousScore, uint256 score);
    /// @notice PRO_RATA: counterparties must be listed by strictly increasing account id.
    error AdlNotSortedById(uint256 index, uint256 previousId, uint256 id);
    /// @notice The counterparties do not cover the size to deleverage, under PRO_RATA,
    /// CAPPED_PRO_RATA and LEVERAGE_DRAIN (their shares are of the whole position); under the other
    /// rankings a list that covers less is a partial ADL, and only an empty list reverts.
    error AdlInsufficient(uint256 remaining);
    /// @notice A partial slice would leave the account less healthy (AV - MM) and the caller's
    /// `maxSize` does not allow closing the whole position instead.
    error LiquidationWorsensHealth(uint256 accountId, int256 healthBefore, int256 healthAfter);
    /// @notice Counterparties are listed after the size was already covered.
    error AdlUnusedCounterparties(uint256 firstUnused);
    /// @notice LEVERAGE_DRAIN: the last counterparty, at `index`, would keep `retained` >= its
    /// `size` at the drained leverage: it is not above the level, and the list without it drains
    /// the others to a level at or below its leverage.
    error AdlNotAboveLevel(uint256 index, uint256 size, uint256 retained);
    /// @notice A many-pair view was given lists of different lengths.
    error LengthMismatch(uint256 accountIds, uint256 marketIds);
    // Also raised: FixedPointMath's IntOverflow, and the engine's errors from the calls into it.

    /* EVENTS */

    /// @notice The owner offered ownership to `newOwner`; it moves when `newOwner` accepts.
    event OwnershipTransferStarted(address indexed owner, address indexed newOwner);
    /// @notice The owner changed (the offered owner accepted).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice A market's liquidation rules were set; its rate-limit window restarts.
    event LiquidationParamsSet(uint256 indexed marketId, LiquidationParams params);
    /// @notice One liquidation call: what was closed, where, and where the loss went.
    event Liquidation(
        uint256 indexed accountId,
        uint256 indexed marketId,
        address indexed keeper,
        int256 sizeClosed,
        uint256 fillPrice,
        uint256 oraclePrice,
        uint256 penalty,
        uint256 keeperReward,
        uint256 fundPaid,
        uint256 socialized,
        uint256 badDebt
    );
    /// @notice One ADL fill: the bankrupt account's `size` closed against `counterpartyId` at `price`
    /// (under QUEUE, a fill with `accountId` the vault closes the last winner's rest).
    /// `counterpartyId` gives up |size| * (price - oraclePrice) * sign(-size) of profit.
    event AdlFill(
        uint256 indexed accountId,
        uint256 indexed counterpartyId,
        uint256 indexed marketId,
        int256 size,
        uint256 price,
        uint256 oraclePrice
    );

    /// @notice One ADL call: `size` of the bankrupt account's position (the whole position, or
    /// what a partial ADL's winners held) closed at the bankruptcy price (CAPPED_PRO_RATA: each
    /// winner at its own price). `valueBefore` is its account value at the oracle price before ADL;
    /// the deficit the winners cover is sign(size) * (bankruptcyPrice - oraclePrice) * |size| when
    /// positive (its deficit beyond the fund's earmark, docs §6.8).
    event Deleveraged(
        uint256 indexed accountId,
        uint256 indexed marketId,
        int256 size,
        uint256 bankruptcyPrice,
        uint256 oraclePrice,
        int256 valueBefore,
        uint256 counterparties
    );

    /* CONFIGURATION */

    /// @notice The engine whose accounts this contract liquidates.
    function engine() external view returns (IPerpEngine);
    /// @notice The engine's oracle router, read once at construction.
    function oracle() external view returns (IOracleRouter);
    /// @notice The owner: sets each market's liquidation rules.
    function owner() external view returns (address);
    /// @notice The address ownership was offered to and that has not accepted it yet (0: none).
    function pendingOwner() external view returns (address);
    /// @notice Whether `setLiquidationParams` has been called for `marketId`.
    function configured(uint256 marketId) external view returns (bool);
    /// @notice The market's current rate-limit window.
    /// @return start when the window began (seconds)
    /// @return used notional liquidated in it (WAD USD)
    function rateWindows(uint256 marketId) external view returns (uint256 start, uint256 used);
    /// @notice A market's rules; an unconfigured market closes whole positions under ADL / PNL_LEVERAGE.
    function liquidationParams(uint256 marketId) external view returns (LiquidationParams memory p);

    /// @notice Offers ownership to `newOwner`, which cannot be the zero address; the owner stays the
    /// owner until `newOwner` accepts. A new offer replaces the previous one.
    function transferOwnership(address newOwner) external;
    /// @notice The pending owner takes ownership.
    function acceptOwnership() external;
    /// @notice Sets a market's liquidation rules and restarts its rate-limit window.
    /// @dev `sliceFraction` in (0, 1]; a rate limit (`rateLimitNotional` > 0) needs a window > 0.
    function setLiquidationParams(uint256 marketId, LiquidationParams calldata p) external;

    /* ACTIONS */

    /// @notice Liquidates a slice of `account`'s cross position in `marketId` (at most `maxSize`).
    /// @dev The slice is the whole position up to `sliceThreshold` of notional, else `sliceFraction`
    /// of it, limited by the rate limit and the book; a slice that would leave the account less
    /// healthy closes the whole position instead, if allowed. The caller is the keeper and is paid
    /// its share of the penalty into its cross account.
    /// @param maxSize most size (WAD units) the caller lets this call close
    /// @return closed size closed (WAD units)
    function liquidate(address account, uint256 marketId, uint256 maxSize) external returns (uint256 closed);
    /// @notice Liquidates an isolated bucket, judged on its own margin.
    function liquidateIsolated(address account, uint256 marketId, uint256 maxSize) external returns (uint256 closed);
    /// @notice Liquidates any account id (cross or isolated).
    function liquidateAccount(uint256 accountId, uint256 marketId, uint256 maxSize) external returns (uint256 closed);

    /// @notice ADL: closes `account`'s whole cross position in `marketId` against `counterparties`
    /// (account ids, in the market's ranking order) at the bankruptcy price; the ranking
    /// (LiquidationParams.ranking) decides the list's order, its length (LEVERAGE_DRAIN: the
    /// winners above the drained level), each winner's size and, under CAPPED_PRO_RATA, each
    /// winner's price (docs/design.md §6.7).
    /// @dev Under PNL_LEVERAGE, QUEUE, HYPERLIQUID and MIN_OVERSHOOT a list whose winners hold less
    /// than the position is a partial ADL: each listed winner closes whole, and the rest of the
    /// position stays open for the next call, its deficit earmarked like any carried deficit
    /// (docs §6.8). A position too large for one transaction's gas is deleveraged in several calls,
    /// on consecutive stretches of the ranking.
    function deleverage(address account, uint256 marketId, uint256[] calldata counterparties) external;
    /// @notice As `deleverage`, for any account id (cross or isolated).
    function deleverageAccount(uint256 accountId, uint256 marketId, uint256[] calldata counterparties) external;

    /* VIEWS */

    /// @notice Whether liquidating the account now needs ADL (policy ADL, liquidatable, and the book
    /// cannot take the slice or the fund cannot pay the loss beyond bankruptcy).
    function adlRequired(uint256 accountId, uint256 marketId) external view returns (bool);
    /// @notice The canonical ADL ranking of winners against a position of sign `bankruptSide`:
    /// eligible account ids with their scores, in the order `deleverage` expects.
    function adlRanking(uint256 marketId, int256 bankruptSide)
        external
        view
        returns (uint256[] memory accountIds, uint256[] memory scores);

    /* KEEPER VIEWS: many accounts in one call (a node answers each call at a fixed cost) */

    /// @notice `adlRequired` of each pair (accountIds[i], marketIds[i]).
    function adlRequiredMany(uint256[] calldata accountIds, uint256[] calldata marketIds)
        external
        view
        returns (bool[] memory required);
    /// @notice Each account's position size in `marketId` (signed WAD).
    function positionSizes(uint256[] calldata accountIds, uint256 marketId)
        external
        view
        returns (int256[] memory sizes);
    /// @notice Each account's open markets (bit m for market m) and the insurance fund's earmark for
    /// its carried deficit (WAD).
    function marketMasksAndReserves(uint256[] calldata accountIds)
        external
        view
        returns (uint256[] memory marketMasks, uint256[] memory fundReserves);
    /// @notice Unrealised PnL at the oracle price of each position (accountIds[i], marketIds[i]),
    /// 0 where there is none: keepers use it to liquidate a cross account's losing leg first.
    function unrealizedPnls(uint256[] calldata accountIds, uint256[] calldata marketIds)
        external
        view
        returns (int256[] memory pnls);
}
