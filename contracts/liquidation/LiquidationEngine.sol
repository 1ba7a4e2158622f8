// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {
    ILiquidationEngine, LiquidationParams, BadDebtPolicy, AdlRanking
} from "../interfaces/ILiquidationEngine.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {IPerpEngine} from "../interfaces/IPerpEngine.sol";
import {FixedPointMath, WAD} from "../libraries/FixedPointMath.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {LiquidationMath} from "../libraries/LiquidationMath.sol";

/// @title LiquidationEngine
/// @notice Permissionless liquidation, the loss waterfall and ADL over a PerpEngine (which grants
/// it the LIQUIDATOR role). NatSpec of the public interface lives in ILiquidationEngine.
contract LiquidationEngine is ILiquidationEngine {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /// @dev What a liquidation call would do now; `liquidate`, `adlRequired` and `deleverage`
    /// all read it, so they cannot disagree.
    enum Action {
        FILL,
        USE_ADL,
        LIQUIDITY_VOID,
        RATE_LIMITED,
        WORSENS_HEALTH
    }

    struct Plan {
        Action action;
        int256 positionSize;
        uint256 size;
        int256 sizeDelta;
        uint256 price;
        int256 value;
        uint256 mm;
        int256 valueAfter;
        uint256 mmAfter;
        uint256 windowEnd;
    }

    struct RateWindow {
        uint256 start;
        uint256 used;
    }

    /* STORAGE */

    /// @inheritdoc ILiquidationEngine
    IPerpEngine public immutable engine;
    /// @inheritdoc ILiquidationEngine
    IOracleRouter public immutable oracle;
    /// @inheritdoc ILiquidationEngine
    address public owner;
    /// @inheritdoc ILiquidationEngine
    address public pendingOwner;

    mapping(uint256 marketId => LiquidationParams) internal params;
    /// @inheritdoc ILiquidationEngine
    mapping(uint256 marketId => bool) public configured;
    /// @inheritdoc ILiquidationEngine
    mapping(uint256 marketId => RateWindow) public rateWindows;

    /* MODIFIERS */

    modifier onlyOwner() {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        _;
    }

    constructor(IPerpEngine perpEngine) {
        engine = perpEngine;
        oracle = perpEngine.oracle();
        owner = msg.sender;
    }

    /* ADMINISTRATION */

    /// @inheritdoc ILiquidationEngine
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert InvalidOwner(newOwner);
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @inheritdoc ILiquidationEngine
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);
        delete pendingOwner;
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
    }

    /// @inheritdoc ILiquidationEngine
    function setLiquidationParams(uint256 marketId, LiquidationParams calldata p) external onlyOwner {
        _checkMarket(marketId);
        if (p.sliceFraction == 0 || p.sliceFraction > WAD) revert InvalidParameter("sliceFraction", p.sliceFraction);
        if (p.rateLimitNotional != 0 && p.rateLimitWindow == 0) {
            revert InvalidParameter("rateLimitWindow", p.rateLimitWindow);
        }
        params[marketId] = p;
        configured[marketId] = true;
        delete rateWindows[marketId];
        emit LiquidationParamsSet(marketId, p);
    }

    /// @inheritdoc ILiquidationEngine
    function liquidationParams(uint256 marketId) public view returns (LiquidationParams memory p) {
        _checkMarket(marketId);
        if (configured[marketId]) return params[marketId];
        p.sliceThreshold = type(uint256).max;
        p.sliceFraction = WAD;
    }

    /* LIQUIDATION */

    /// @inheritdoc ILiquidationEngine
    function liquidate(address account, uint256 marketId, uint256 maxSize) external returns (uint256) {
        return liquidateAccount(uint256(uint160(account)), marketId, maxSize);
    }

    /// @inheritdoc ILiquidationEngine
    function liquidateIsolated(address account, uint256 marketId, uint256 maxSize) external returns (uint256) {
        return liquidateAccount(engine.isolatedAccountId(account, marketId), marketId, maxSize);
    }

    /// @inheritdoc ILiquidationEngine
    function liquidateAccount(uint256 accountId, uint256 marketId, uint256 maxSize) public returns (uint256) {
        if (maxSize == 0) revert ZeroAmount();
        LiquidationParams memory lp = liquidationParams(marketId);
        Plan memory plan = _plan(accountId, marketId, maxSize, lp);
        if (plan.action == Action.USE_ADL) {
            uint256 shortfall = plan.size == 0 || plan.valueAfter >= 0 ? type(uint256).max : uint256(-plan.valueAfter);
            revert UseDeleverage(accountId, marketId, shortfall, _fundFor(accountId));
        }
        if (plan.action == Action.LIQUIDITY_VOID) revert LiquidityVoid(marketId, plan.size);
        if (plan.action == Action.RATE_LIMITED) revert RateLimited(marketId, plan.windowEnd);
        if (plan.action == Action.WORSENS_HEALTH) {
            revert LiquidationWorsensHealth(
                accountId, plan.value - int256(plan.mm), plan.valueAfter - int256(plan.mmAfter)
            );
        }

        uint256 fillPrice = engine.liquidationFill(accountId, marketId, plan.sizeDelta);
        uint256 closedNotional = plan.size.wMulDown(plan.price);
        uint256 penalty = _penalty(plan, closedNotional, engine.marketParams(marketId).liquidationFee);
        uint256 keeperReward;
        if (penalty != 0) {
            keeperReward = penalty.wMulDown(engine.marketParams(marketId).keeperShare);
            engine.chargePenalty(accountId, msg.sender, keeperReward, penalty - keeperReward);
        }
        (uint256 fundPaid, uint256 socialized, uint256 badDebt) =
            engine.settleDeficit(accountId, marketId, lp.policy == BadDebtPolicy.SOCIALIZE);
        if (lp.rateLimitNotional != 0) _useRateLimit(marketId, lp.rateLimitWindow, closedNotional);
        emit Liquidation(
            accountId,
            marketId,
            msg.sender,
            plan.sizeDelta,
            fillPrice,
            plan.price,
            penalty,
            keeperReward,
            fundPaid,
            socialized,
            badDebt
        );
        return plan.size;
    }

    /* ADL */

    /// @inheritdoc ILiquidationEngine
    function deleverage(address account, uint256 marketId, uint256[] calldata counterparties) external {
        deleverageAccount(uint256(uint160(account)), marketId, counterparties);
    }

    /// @inheritdoc ILiquidationEngine
    function deleverageAccount(uint256 accountId, uint256 marketId, uint256[] calldata counterparties) public {
        LiquidationParams memory lp = liquidationParams(marketId);
        if (lp.policy != BadDebtPolicy.ADL) revert AdlNotRequired(accountId, marketId);
        Plan memory plan = _plan(accountId, marketId, type(uint256).max, lp);
        if (plan.action != Action.USE_ADL) revert AdlNotRequired(accountId, marketId);
        uint256 bankruptcyPrice = engine.bankruptcyPriceOf(accountId, marketId);
        uint256 total = FixedPointMath.abs(plan.positionSize);
        uint256[] memory takes = lp.ranking == AdlRanking.LEVERAGE_DRAIN
            ? _drainTakes(accountId, marketId, plan, counterparties, total)
            : _byScore(lp.ranking)
                ? _rankedTakes(accountId, marketId, plan, counterparties, total, lp.ranking)
                : _proRataTakes(accountId, marketId, plan, counterparties, total, lp.ranking);
        uint256[] memory prices = lp.ranking == AdlRanking.CAPPED_PRO_RATA
            ? _haircutPrices(marketId, plan, counterparties, takes, bankruptcyPrice)
            : _samePrice(counterparties.length, bankruptcyPrice);
        uint256 closed;
        for (uint256 i; i < counterparties.length; ++i) {
            // A dust winner's pro-rata share can round to nothing: it gives up nothing, and the
            // others' fills close the position (a fill of 0 would revert and stall the ADL).
            if (takes[i] == 0) continue;
            // The bankrupt side closes: a long sells (negative delta), a short buys.
            int256 delta = plan.positionSize > 0 ? -int256(takes[i]) : int256(takes[i]);
            engine.adlFill(accountId, counterparties[i], marketId, delta, prices[i]);
            emit AdlFill(accountId, counterparties[i], marketId, delta, prices[i], plan.price);
            closed += takes[i];
        }
        if (lp.ranking == AdlRanking.QUEUE) _closeQueueRest(marketId, plan, counterparties, bankruptcyPrice);
        // Closing the whole position at the bankruptcy price leaves the account at or above zero
        // value, and this only settles rounding dust if anything else moved it; after a partial
        // ADL it earmarks the deficit the open rest carries.
        engine.settleDeficit(accountId, marketId, false);
        emit Deleveraged(
            accountId,
            marketId,
            plan.positionSize > 0 ? int256(closed) : -int256(closed),
            bankruptcyPrice,
            plan.price,
            plan.value,
            counterparties.length
        );
    }

    /* VIEWS */

    /// @inheritdoc ILiquidationEngine
    function adlRequired(uint256 accountId, uint256 marketId) public view returns (bool) {
        LiquidationParams memory lp = liquidationParams(marketId);
        if (accountId == uint256(uint160(engine.vault()))) return false;
        if (lp.policy != BadDebtPolicy.ADL || !engine.isAccountLiquidatable(accountId)) return false;
        (int256 size,,) = engine.positionOf(accountId, marketId);
        if (size == 0) return false;
        return _plan(accountId, marketId, type(uint256).max, lp).action == Action.USE_ADL;
    }

    /// @inheritdoc ILiquidationEngine
    function adlRanking(uint256 marketId, int256 bankruptSide)
        external
        view
        returns (uint256[] memory ids, uint256[] memory scores)
    {
        _checkMarket(marketId);
        uint256 price = oracle.price(marketId);
        uint256 n = engine.accountCount();
        ids = new uint256[](n);
        scores = new uint256[](n);
        uint256 count;
        AdlRanking ranking = liquidationParams(marketId).ranking;
        for (uint256 i; i < n; ++i) {
            uint256 id = engine.accountIds(i);
            (bool eligible,,, uint256 score) = _candidate(id, marketId, bankruptSide, price, ranking);
            if (!eligible) continue;
            ids[count] = id;
            scores[count] = score;
            ++count;
        }
        assembly ("memory-safe") {
            mstore(ids, count)
            mstore(scores, count)
        }
        _sort(ids, scores, _byScore(ranking));
    }

    /* KEEPER VIEWS */

    /// @inheritdoc ILiquidationEngine
    function adlRequiredMany(uint256[] calldata accountIds, uint256[] calldata marketIds)
        external
        view
        returns (bool[] memory required)
    {
        _checkPairs(accountIds, marketIds);
        required = new bool[](accountIds.length);
        for (uint256 i; i < accountIds.length; ++i) {
            required[i] = adlRequired(accountIds[i], marketIds[i]);
        }
    }

    /// @inheritdoc ILiquidationEngine
    function positionSizes(uint256[] calldata accountIds, uint256 marketId)
        external
        view
        returns (int256[] memory sizes)
    {
        _checkMarket(marketId);
        sizes = new int256[](accountIds.length);
        for (uint256 i; i < accountIds.length; ++i) {
            (sizes[i],,) = engine.positionOf(accountIds[i], marketId);
        }
    }

    /// @inheritdoc ILiquidationEngine
    function marketMasksAndReserves(uint256[] calldata accountIds)
        external
        view
        returns (uint256[] memory marketMasks, uint256[] memory fundReserves)
    {
        marketMasks = new uint256[](accountIds.length);
        fundReserves = new uint256[](accountIds.length);
        for (uint256 i; i < accountIds.length; ++i) {
            marketMasks[i] = engine.marketMaskOf(accountIds[i]);
            fundReserves[i] = engine.fundReserveOf(accountIds[i]);
        }
    }

    /// @inheritdoc ILiquidationEngine
    function unrealizedPnls(uint256[] calldata accountIds, uint256[] calldata marketIds)
        external
        view
        returns (int256[] memory pnls)
    {
        _checkPairs(accountIds, marketIds);
        pnls = new int256[](accountIds.length);
        for (uint256 i; i < accountIds.length; ++i) {
            _checkMarket(marketIds[i]);
            (int256 size, int256 openNotional,) = engine.positionOf(accountIds[i], marketIds[i]);
            if (size != 0) pnls[i] = MarginMath.unrealizedPnl(size, openNotional, oracle.price(marketIds[i]));
        }
    }

    /* INTERNAL: PLANNING */

    function _plan(uint256 accountId, uint256 marketId, uint256 maxSize, LiquidationParams memory lp)
        internal
        view
        returns (Plan memory plan)
    {
        if (accountId == uint256(uint160(engine.vault()))) revert VaultAccount(accountId);
        (plan.positionSize,,) = engine.positionOf(accountId, marketId);
        if (plan.positionSize == 0) revert NoPosition(accountId, marketId);
        (plan.value, plan.mm,) = engine.health(accountId);
        if (plan.value >= int256(plan.mm)) revert NotLiquidatable(accountId, plan.value, plan.mm);
        plan.price = oracle.price(marketId);

        uint256 absSize = FixedPointMath.abs(plan.positionSize);
        uint256 rateRoom;
        (rateRoom, plan.windowEnd) = _rateRoom(marketId, lp, plan.price);
        uint256 bookRoom = engine.bookCapacity(marketId, plan.positionSize < 0).wDivDown(plan.price);
        uint256 wanted = LiquidationMath.sliceSize(absSize, plan.price, lp.sliceThreshold, lp.sliceFraction, maxSize);
        plan.size = FixedPointMath.min(wanted, FixedPointMath.min(rateRoom, bookRoom));
        if (plan.size == 0) {
            plan.action = wanted > 0 && rateRoom == 0 ? Action.RATE_LIMITED : _voidAction(lp);
            return plan;
        }
        _preview(accountId, marketId, plan);
        if (plan.size < absSize && plan.valueAfter - int256(plan.mmAfter) < plan.value - int256(plan.mm)) {
            // A slice that would leave the account less healthy (the book is too thin for it):
            // close the whole position instead, if the rate limit, the caller and the book allow.
            if (absSize > rateRoom) plan.action = Action.RATE_LIMITED;
            else if (absSize > maxSize) plan.action = Action.WORSENS_HEALTH;
            else if (absSize > bookRoom) plan.action = _voidAction(lp);
            else {
                plan.size = absSize;
                _preview(accountId, marketId, plan);
            }
            if (plan.action != Action.FILL) return plan;
        }
        if (lp.policy == BadDebtPolicy.ADL && plan.valueAfter < 0 && uint256(-plan.valueAfter) > _fundFor(accountId)) {
            plan.action = Action.USE_ADL;
        }
    }

    /// @dev What the fund can pay for this account: the free fund plus what it earmarked for it.
    function _fundFor(uint256 accountId) internal view returns (uint256) {
        return engine.insuranceFund() + engine.fundReserveOf(accountId);
    }

    function _preview(uint256 accountId, uint256 marketId, Plan memory plan) internal view {
        plan.sizeDelta = plan.positionSize > 0 ? -int256(plan.size) : int256(plan.size);
        (, plan.valueAfter, plan.mmAfter) = engine.previewLiquidationFill(accountId, marketId, plan.sizeDelta);
    }

    function _voidAction(LiquidationParams memory lp) internal pure returns (Action) {
        return lp.policy == BadDebtPolicy.ADL ? Action.USE_ADL : Action.LIQUIDITY_VOID;
    }

    /// @dev Penalty from the equity left after the fill; on a partial close, also no more than the
    /// fill improved the account's health (AV - MM), so a partial liquidation never worsens it.
    function _penalty(Plan memory plan, uint256 closedNotional, uint256 liquidationFee) internal pure returns (uint256) {
        uint256 penalty = LiquidationMath.penalty(closedNotional, liquidationFee, plan.valueAfter);
        if (plan.size < FixedPointMath.abs(plan.positionSize)) {
            int256 gain = (plan.valueAfter - int256(plan.mmAfter)) - (plan.value - int256(plan.mm));
            penalty = gain > 0 ? FixedPointMath.min(penalty, uint256(gain)) : 0;
        }
        return penalty;
    }

    /// @dev Size the market's rate limit still allows in this window (all of it when disabled).
    function _rateRoom(uint256 marketId, LiquidationParams memory lp, uint256 price)
        internal
        view
        returns (uint256 room, uint256 windowEnd)
    {
        if (lp.rateLimitNotional == 0) return (type(uint256).max, 0);
        RateWindow memory window = rateWindows[marketId];
        if (block.timestamp >= window.start + lp.rateLimitWindow) {
            // A new window starts with this call (`_useRateLimit` records it).
            window.used = 0;
            window.start = block.timestamp;
        }
        windowEnd = window.start + lp.rateLimitWindow;
        uint256 left = lp.rateLimitNotional > window.used ? lp.rateLimitNotional - window.used : 0;
        room = left.wDivDown(price);
    }

    function _useRateLimit(uint256 marketId, uint256 windowLength, uint256 notional) internal {
        RateWindow storage window = rateWindows[marketId];
        if (block.timestamp >= window.start + windowLength) {
            window.start = block.timestamp;
            window.used = 0;
        }
        window.used += notional;
    }

    /* INTERNAL: ADL */

    /// @dev PNL_LEVERAGE, QUEUE, HYPERLIQUID, MIN_OVERSHOOT: counterparties in ranking order, each
    /// taken up to its size until covered (or, a partial ADL, all of each).
    function _rankedTakes(
        uint256 accountId,
        uint256 marketId,
        Plan memory plan,
        uint256[] calldata counterparties,
        uint256 total,
        AdlRanking ranking
    ) internal view returns (uint256[] memory takes) {
        takes = new uint256[](counterparties.length);
        uint256 remaining = total;
        uint256 previousScore;
        for (uint256 i; i < counterparties.length; ++i) {
            if (remaining == 0) revert AdlUnusedCounterparties(i);
            (uint256 cpSize, uint256 score) = _checkedCandidate(accountId, counterparties[i], marketId, plan, ranking);
            _checkRankOrder(counterparties, i, previousScore, score);
            previousScore = score;
            takes[i] = FixedPointMath.min(remaining, cpSize);
            remaining -= takes[i];
        }
        // remaining != 0: a partial ADL, each listed winner closed whole (ILiquidationEngine);
        // an empty list would close nothing.
        if (remaining == total) revert AdlInsufficient(remaining);
    }

    /// @dev The counterparty at `i` ranks after the one before it: a lower score, or the same
    /// score and a higher id.
    function _checkRankOrder(uint256[] calldata counterparties, uint256 i, uint256 previousScore, uint256 score)
        internal
        pure
    {
        if (i > 0 && (score > previousScore || (score == previousScore && counterparties[i] <= counterparties[i - 1])))
        {
            revert AdlOutOfOrder(i, previousScore, score);
        }
    }

    /// @dev LEVERAGE_DRAIN: the listed winners (leverage descending) drained to one leverage. A
    /// winner at or below zero value (unbounded leverage, listed first) gives up min(remaining,
    /// its size); the others keep R = their sizes - what remains, each r_i = R * AV_i / E of it
    /// (down, at most its size; E = their values), so that r_i / AV_i is the same for all, and
    /// give up the rest; what the rounding leaves of R goes back to the first of them, as far as
    /// each gave up. The last listed must be above the level (r_i < its size).
    function _drainTakes(
        uint256 accountId,
        uint256 marketId,
        Plan memory plan,
        uint256[] calldata counterparties,
        uint256 total
    ) internal view returns (uint256[] memory takes) {
        (uint256[] memory sizes, uint256[] memory values) = _drainCandidates(accountId, marketId, plan, counterparties);
        uint256 n = sizes.length;
        takes = new uint256[](n);
        uint256 remaining = total;
        uint256 held;
        uint256 equity;
        for (uint256 i; i < n; ++i) {
            if (values[i] != 0) {
                held += sizes[i];
                equity += values[i];
            } else {
                // Unbounded leverage: drained first, only as far as needed.
                if (remaining == 0) revert AdlUnusedCounterparties(i);
                takes[i] = FixedPointMath.min(remaining, sizes[i]);
                remaining -= takes[i];
            }
        }
        if (held < remaining) revert AdlInsufficient(remaining - held);
        uint256 kept = held - remaining;
        uint256 left = kept;
        for (uint256 i; i < n; ++i) {
            if (values[i] == 0) continue;
            uint256 retained = kept.mulDivDown(values[i], equity);
            if (i == n - 1 && retained >= sizes[i]) revert AdlNotAboveLevel(i, sizes[i], retained);
            retained = FixedPointMath.min(retained, sizes[i]);
            takes[i] = sizes[i] - retained;
            left -= retained;
        }
        for (uint256 i; i < n && left > 0; ++i) {
            if (values[i] == 0) continue;
            uint256 back = FixedPointMath.min(left, takes[i]);
            takes[i] -= back;
            left -= back;
        }
    }

    /// @dev LEVERAGE_DRAIN's list checked (eligible, in ranking order): each winner's size and
    /// account value (0 at or below zero).
    function _drainCandidates(uint256 accountId, uint256 marketId, Plan memory plan, uint256[] calldata counterparties)
        internal
        view
        returns (uint256[] memory sizes, uint256[] memory values)
    {
        uint256 n = counterparties.length;
        sizes = new uint256[](n);
        values = new uint256[](n);
        uint256 previousScore;
        for (uint256 i; i < n; ++i) {
            uint256 score;
            (sizes[i], score) =
                _checkedCandidate(accountId, counterparties[i], marketId, plan, AdlRanking.LEVERAGE_DRAIN);
            _checkRankOrder(counterparties, i, previousScore, score);
            previousScore = score;
            (int256 value,,) = engine.health(counterparties[i]);
            if (value > 0) values[i] = uint256(value);
        }
    }

    /// @dev PRO_RATA: every listed winner (by ascending id) gives up the same fraction of its size;
    /// the rounding remainder, one unit each, goes to the first counterparties with room.
    function _proRataTakes(
        uint256 accountId,
        uint256 marketId,
        Plan memory plan,
        uint256[] calldata counterparties,
        uint256 total,
        AdlRanking ranking
    ) internal view returns (uint256[] memory takes) {
        uint256 n = counterparties.length;
        takes = new uint256[](n);
        uint256[] memory sizes = new uint256[](n);
        uint256 available;
        for (uint256 i; i < n; ++i) {
            (sizes[i],) = _checkedCandidate(accountId, counterparties[i], marketId, plan, ranking);
            if (i > 0 && counterparties[i] <= counterparties[i - 1]) {
                revert AdlNotSortedById(i, counterparties[i - 1], counterparties[i]);
            }
            available += sizes[i];
        }
        if (available < total) revert AdlInsufficient(total - available);
        uint256 assigned;
        for (uint256 i; i < n; ++i) {
            takes[i] = total.mulDivDown(sizes[i], available);
            assigned += takes[i];
        }
        for (uint256 i; i < n && assigned < total; ++i) {
            if (takes[i] < sizes[i]) {
                ++takes[i];
                ++assigned;
            }
        }
    }

    /// @dev QUEUE: the last listed winner closes whole too; the size beyond the bankrupt position
    /// closes against the vault at the same price (the vault, a counterparty itself, has none left).
    function _closeQueueRest(uint256 marketId, Plan memory plan, uint256[] calldata counterparties, uint256 price)
        internal
    {
        uint256 last = counterparties[counterparties.length - 1];
        uint256 vaultId = uint256(uint160(engine.vault()));
        (int256 rest,,) = engine.positionOf(last, marketId);
        if (rest == 0 || last == vaultId) return;
        // The vault takes the bankrupt side's place: the winner's fill is -rest, as above.
        engine.adlFill(vaultId, last, marketId, rest, price);
        emit AdlFill(vaultId, last, marketId, rest, price, plan.price);
    }

    /// @dev CAPPED_PRO_RATA: the price at which each winner gives up x_i = ceil(D * u_i / U) over
    /// its take (distance up, so the winners cover at least D; a short's price floors at 1 wei).
    function _haircutPrices(
        uint256 marketId,
        Plan memory plan,
        uint256[] calldata counterparties,
        uint256[] memory takes,
        uint256 bankruptcyPrice
    ) internal view returns (uint256[] memory prices) {
        uint256 n = counterparties.length;
        prices = new uint256[](n);
        uint256[] memory upnls = new uint256[](n);
        uint256 totalUpnl;
        for (uint256 i; i < n; ++i) {
            if (takes[i] == 0) continue;
            (,, int256 upnl,) =
                _candidate(counterparties[i], marketId, plan.positionSize, plan.price, AdlRanking.CAPPED_PRO_RATA);
            upnls[i] = uint256(upnl);
            totalUpnl += upnls[i];
        }
        uint256 deficit = LiquidationMath.adlDeficit(plan.positionSize, plan.price, bankruptcyPrice);
        for (uint256 i; i < n; ++i) {
            if (takes[i] == 0) continue;
            uint256 distance = deficit.mulDivUp(upnls[i], totalUpnl).mulDivUp(WAD, takes[i]);
            if (plan.positionSize > 0) prices[i] = plan.price + distance;
            else prices[i] = distance < plan.price ? plan.price - distance : 1;
        }
    }

    /// @dev Every fill at one price (the bankruptcy price).
    function _samePrice(uint256 n, uint256 price) internal pure returns (uint256[] memory prices) {
        prices = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            prices[i] = price;
        }
    }

    /// @dev Rankings whose list is ranked by score (PNL_LEVERAGE, QUEUE, HYPERLIQUID, MIN_OVERSHOOT,
    /// LEVERAGE_DRAIN); the others by id.
    function _byScore(AdlRanking ranking) internal pure returns (bool) {
        return ranking != AdlRanking.PRO_RATA && ranking != AdlRanking.CAPPED_PRO_RATA;
    }

    function _checkedCandidate(
        uint256 accountId,
        uint256 counterpartyId,
        uint256 marketId,
        Plan memory plan,
        AdlRanking ranking
    ) internal view returns (uint256 size, uint256 score) {
        (bool eligible, int256 cpSize, int256 upnl, uint256 cpScore) =
            _candidate(counterpartyId, marketId, plan.positionSize, plan.price, ranking);
        if (!eligible || counterpartyId == accountId) revert AdlIneligible(counterpartyId, cpSize, upnl);
        return (FixedPointMath.abs(cpSize), cpScore);
    }

    /// @dev An ADL counterparty holds the opposite side with a positive uPnL at the oracle price.
    function _candidate(uint256 id, uint256 marketId, int256 bankruptSide, uint256 price, AdlRanking ranking)
        internal
        view
        returns (bool eligible, int256 size, int256 upnl, uint256 score)
    {
        int256 openNotional;
        (size, openNotional,) = engine.positionOf(id, marketId);
        if (size == 0 || (size > 0) == (bankruptSide > 0)) return (false, size, 0, 0);
        upnl = MarginMath.unrealizedPnl(size, openNotional, price);
        if (upnl <= 0) return (false, size, upnl, 0);
        (int256 value,,) = engine.health(id);
        uint256 notional = MarginMath.notional(size, price);
        if (ranking == AdlRanking.HYPERLIQUID) score = LiquidationMath.hyperliquidScore(size, openNotional, notional, value);
        else if (ranking == AdlRanking.MIN_OVERSHOOT) score = notional;
        else if (ranking == AdlRanking.LEVERAGE_DRAIN) score = LiquidationMath.leverageScore(notional, value);
        else score = LiquidationMath.adlScore(upnl, openNotional, notional, value);
        eligible = true;
    }

    /// @dev In-place sort of (ids, scores): by score descending then id ascending, or by id only.
    /// Heapsort: the ranking holds every eligible winner of a market side (thousands in a cascade),
    /// and ids are unique, so the order is total and any correct sort gives the same ranking.
    function _sort(uint256[] memory ids, uint256[] memory scores, bool byScore) internal pure {
        uint256 n = ids.length;
        for (uint256 root = n / 2; root > 0; --root) {
            _siftDown(ids, scores, root - 1, n, byScore);
        }
        for (uint256 end = n; end > 1; --end) {
            (ids[0], ids[end - 1]) = (ids[end - 1], ids[0]);
            (scores[0], scores[end - 1]) = (scores[end - 1], scores[0]);
            _siftDown(ids, scores, 0, end - 1, byScore);
        }
    }

    /// @dev Restores the heap below `root` within [0, end): each parent ranks after its children.
    function _siftDown(uint256[] memory ids, uint256[] memory scores, uint256 root, uint256 end, bool byScore)
        internal
        pure
    {
        while (true) {
            uint256 child = 2 * root + 1;
            if (child >= end) return;
            if (child + 1 < end && _before(ids[child], scores[child], ids[child + 1], scores[child + 1], byScore)) {
                ++child;
            }
            if (!_before(ids[root], scores[root], ids[child], scores[child], byScore)) return;
            (ids[root], ids[child]) = (ids[child], ids[root]);
            (scores[root], scores[child]) = (scores[child], scores[root]);
            root = child;
        }
    }

    function _before(uint256 idA, uint256 scoreA, uint256 idB, uint256 scoreB, bool byScore) internal pure returns (bool) {
        if (byScore && scoreA != scoreB) return scoreA > scoreB;
        return idA < idB;
    }

    /// @dev Keeper views over pairs (accountIds[i], marketIds[i]) need lists of one length.
    function _checkPairs(uint256[] calldata accountIds, uint256[] calldata marketIds) internal pure {
        if (accountIds.length != marketIds.length) revert LengthMismatch(accountIds.length, marketIds.length);
    }

    function _checkMarket(uint256 marketId) internal view {
        if (marketId >= engine.marketCount()) revert UnknownMarket(marketId);
    }
}
