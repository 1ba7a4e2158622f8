// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IPerpEngine, MarketView} from "../interfaces/IPerpEngine.sol";
import {FixedPointMath} from "../libraries/FixedPointMath.sol";
import {FundingMath} from "../libraries/FundingMath.sol";
import {PerpEngineStorage} from "./PerpEngineStorage.sol";

/// @title PerpEngineViews
/// @notice The engine's batch views: many accounts or markets in one call, for keepers, indexers
/// and the simulator (a node answers each call at a fixed cost). Read-only conveniences over the
/// core's storage and its health math; PerpEngine inherits them, so they answer at its address.
/// NatSpec of the public interface lives in IPerpEngine.
abstract contract PerpEngineViews is IPerpEngine, PerpEngineStorage {
    /* FROM THE CORE (PerpEngine) */

    /// @dev (AV, MM, IM) of an account, prices cached in `prices` (0 = not read yet).
    function _health(uint256 id, uint256[] memory prices)
        internal
        view
        virtual
        returns (int256 value, uint256 mm, uint256 im);

    /// @dev The market's funding rate per second now (WAD).
    function _fundingRate(uint256 marketId) internal view virtual returns (int256);

    /// @dev Socialised loss the position owes since it last settled (WAD USD).
    function _pendingSocialLoss(Position storage position, uint256 marketId) internal view virtual returns (uint256);

    /* ACCOUNTS */

    /// @inheritdoc IPerpEngine
    function healthOf(uint256[] calldata ids)
        external
        view
        returns (int256[] memory values, uint256[] memory mms, uint256[] memory ims)
    {
        uint256[] memory prices = _emptyPrices();
        values = new int256[](ids.length);
        mms = new uint256[](ids.length);
        ims = new uint256[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            (values[i], mms[i], ims[i]) = _health(ids[i], prices);
        }
    }

    /// @inheritdoc IPerpEngine
    function healthRange(uint256 start, uint256 count)
        external
        view
        returns (uint256[] memory ids, int256[] memory values, uint256[] memory mms)
    {
        uint256 n = start < accountIds.length ? FixedPointMath.min(count, accountIds.length - start) : 0;
        uint256[] memory prices = _emptyPrices();
        ids = new uint256[](n);
        values = new int256[](n);
        mms = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            ids[i] = accountIds[start + i];
            (values[i], mms[i],) = _health(ids[i], prices);
        }
    }

    /// @inheritdoc IPerpEngine
    function accountIdsFrom(uint256 start, uint256 count) external view returns (uint256[] memory ids) {
        uint256 n = start < accountIds.length ? FixedPointMath.min(count, accountIds.length - start) : 0;
        ids = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            ids[i] = accountIds[start + i];
        }
    }

    /// @inheritdoc IPerpEngine
    function accountStates(uint256[] calldata ids)
        external
        view
        returns (
            int256[] memory collaterals,
            uint256[] memory fundReserves,
            int256[] memory sizes,
            int256[] memory openNotionals,
            int256[] memory fundingIndices,
            uint256[] memory socialLossIndices
        )
    {
        uint256 n = markets.length;
        collaterals = new int256[](ids.length);
        fundReserves = new uint256[](ids.length);
        sizes = new int256[](ids.length * n);
        openNotionals = new int256[](ids.length * n);
        fundingIndices = new int256[](ids.length * n);
        socialLossIndices = new uint256[](ids.length * n);
        for (uint256 i; i < ids.length; ++i) {
            collaterals[i] = accounts[ids[i]].collateral;
            fundReserves[i] = fundReserveOf[ids[i]];
            uint256 mask = accounts[ids[i]].marketMask;
            for (uint256 m; mask >> m != 0; ++m) {
                if ((mask >> m) & 1 == 0) continue;
                Position storage position = positions[ids[i]][m];
                (sizes[i * n + m], openNotionals[i * n + m]) = (position.size, position.openNotional);
                (fundingIndices[i * n + m], socialLossIndices[i * n + m]) =
                    (position.fundingIndex, position.socialLossIndex);
            }
        }
    }

    /* MARKETS */

    /// @inheritdoc IPerpEngine
    function marketView(uint256 marketId) public view returns (MarketView memory view_) {
        Market storage market = _market(marketId);
        view_.marketId = marketId;
        view_.longOpenInterest = market.longOpenInterest;
        view_.shortOpenInterest = market.shortOpenInterest;
        view_.vaultSize = positions[_crossId(vault)][marketId].size;
        view_.fundingRate = _fundingRate(marketId);
        view_.fundingIndex = market.fundingIndex;
        view_.depth2pct = market.params.depth2pct;
        view_.bookBlock = market.bookBlock;
        view_.bookConsumed = market.bookBlock == block.number ? market.bookConsumed : int256(0);
        view_.socialLossIndex = market.socialLossIndex;
        view_.lastFundingTime = market.lastFundingTime;
    }

    /// @inheritdoc IPerpEngine
    function marketViews() external view returns (MarketView[] memory views) {
        views = new MarketView[](markets.length);
        for (uint256 m; m < markets.length; ++m) {
            views[m] = marketView(m);
        }
    }

    /* PROTOCOL */

    /// @inheritdoc IPerpEngine
    function balanceSheet() external view returns (uint256 tokens, int256 claims, uint256 fund) {
        tokens = collateralToken.balanceOf(address(this)) * tokenScale;
        fund = insuranceFund + insuranceFundReserved;
        for (uint256 i; i < accountIds.length; ++i) {
            uint256 id = accountIds[i];
            Account storage account = accounts[id];
            claims += account.collateral;
            uint256 mask = account.marketMask;
            for (uint256 m; mask >> m != 0; ++m) {
                if ((mask >> m) & 1 == 0) continue;
                Position storage position = positions[id][m];
                claims -= position.openNotional;
                claims -= FundingMath.owed(position.size, markets[m].fundingIndex, position.fundingIndex);
                claims -= FixedPointMath.toInt(_pendingSocialLoss(position, m));
            }
        }
    }
}
