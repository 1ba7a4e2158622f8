// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IPerpEngine, MarketParams} from "../interfaces/IPerpEngine.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {IERC20} from "../interfaces/IERC20.sol";
import {FixedPointMath, WAD} from "../libraries/FixedPointMath.sol";
import {MarginMath, Tier} from "../libraries/MarginMath.sol";
import {DepthCurve} from "../libraries/DepthCurve.sol";
import {PositionMath} from "../libraries/PositionMath.sol";
import {FundingMath} from "../libraries/FundingMath.sol";
import {LiquidationMath} from "../libraries/LiquidationMath.sol";
import {PerpEngineStorage} from "./PerpEngineStorage.sol";
import {PerpEngineViews} from "./PerpEngineViews.sol";

/// @title PerpEngine
/// @notice Perpetual futures with cross and isolated margin against a liquidity vault.
/// The mechanism: margin, fills, funding, the insurance fund and the loss waterfall. Its storage is
/// declared in PerpEngineStorage; the batch views over many accounts or markets are inherited from
/// PerpEngineViews. NatSpec of the public interface lives in IPerpEngine.
contract PerpEngine is IPerpEngine, PerpEngineViews {
    using FixedPointMath for uint256;
    using FixedPointMath for int256;

    /* MODIFIERS */

    // The modifiers call internal functions: inlined in every function they guard, their reverts
    // cost the engine hundreds of bytes of its EIP-170 budget.

    modifier onlyOwner() {
        _checkOwner();
        _;
    }

    modifier onlyRole(bytes32 role) {
        _checkRole(role);
        _;
    }

    /// @dev Guards every function that moves tokens or positions (transient storage lock).
    modifier nonReentrant() {
        _lock();
        _;
        locked = false;
    }

    function _checkOwner() internal view {
        if (msg.sender != owner) revert Unauthorized(msg.sender, OWNER_ROLE);
    }

    function _checkRole(bytes32 role) internal view {
        if (!hasRole[role][msg.sender]) revert Unauthorized(msg.sender, role);
    }

    function _lock() internal {
        if (locked) revert Reentrancy();
        locked = true;
    }

    constructor(IERC20 token, IOracleRouter oracleRouter) PerpEngineStorage(token, oracleRouter) {
        owner = msg.sender;
        emit RoleSet(OWNER_ROLE, msg.sender, true);
    }

    /* ADMINISTRATION */

    /// @inheritdoc IPerpEngine
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert InvalidCounterparty(newOwner);
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @inheritdoc IPerpEngine
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);
        delete pendingOwner;
        emit RoleSet(OWNER_ROLE, owner, false);
        owner = msg.sender;
        emit RoleSet(OWNER_ROLE, msg.sender, true);
    }

    /// @inheritdoc IPerpEngine
    function setRole(bytes32 role, address account, bool granted) external onlyOwner {
        // Ownership moves only with transferOwnership; a RoleSet(OWNER_ROLE) here would mislead indexers.
        if (role == OWNER_ROLE) revert InvalidParameter("role", uint256(role));
        hasRole[role][account] = granted;
        emit RoleSet(role, account, granted);
    }

    /// @inheritdoc IPerpEngine
    function setVault(address newVault) external onlyOwner {
        if (newVault == address(0)) revert InvalidCounterparty(newVault);
        // Neither the old nor the new vault may hold a position: open interest excludes the vault,
        // so a switch with positions would corrupt it.
        if (vault != address(0) && accounts[_crossId(vault)].marketMask != 0) revert InvalidCounterparty(vault);
        if (accounts[_crossId(newVault)].marketMask != 0) revert InvalidCounterparty(newVault);
        vault = newVault;
        emit VaultSet(newVault);
    }

    /// @inheritdoc IPerpEngine
    function setMinCollateral(uint256 minimum) external onlyOwner {
        minCollateral = minimum;
        emit MinCollateralSet(minimum);
    }

    /// @inheritdoc IPerpEngine
    function createMarket(bytes32 name, MarketParams calldata params) external onlyOwner returns (uint256 marketId) {
        marketId = markets.length;
        if (marketId == MAX_MARKETS) revert TooManyMarkets();
        _validateParams(params);
        Market storage market = markets.push();
        market.name = name;
        market.params = params;
        market.lastFundingTime = block.timestamp;
        _setTiers(marketId, new uint256[](1), _single(params.mmr));
        emit MarketCreated(marketId, name, params);
    }

    /// @inheritdoc IPerpEngine
    function setMarketParams(uint256 marketId, MarketParams calldata params) external onlyOwner {
        Market storage market = _market(marketId);
        _validateParams(params);
        uint256 price = oracle.price(marketId);
        _accrueFunding(marketId, price);
        market.params = params;
        (uint256[] memory floors, uint256[] memory mmrs) = _tierArrays(marketId);
        mmrs[0] = params.mmr;
        _setTiers(marketId, floors, mmrs);
        emit MarketParamsSet(marketId, params);
    }

    /// @inheritdoc IPerpEngine
    function setTiers(uint256 marketId, uint256[] calldata floors, uint256[] calldata mmrs) external onlyOwner {
        Market storage market = _market(marketId);
        if (mmrs.length == 0 || mmrs[0] != market.params.mmr) {
            revert InvalidTier(0, floors.length == 0 ? 0 : floors[0], mmrs.length == 0 ? 0 : mmrs[0]);
        }
        _setTiers(marketId, floors, mmrs);
    }

    /// @inheritdoc IPerpEngine
    function setDepth(uint256 marketId, uint256 depth2pct) external onlyRole(MARKET_MAKER_ROLE) {
        Market storage market = _market(marketId);
        if (depth2pct > MAX_DEPTH) revert InvalidParameter("depth2pct", depth2pct);
        if (market.bookBlock == block.number && market.bookConsumed != 0) {
            // Requoting within a block keeps the walked price move: consumption scales with the
            // book, so the marginal impact is unchanged and stays inside the new book's end.
            uint256 old = market.params.depth2pct;
            market.bookConsumed = old == 0 ? int256(0) : market.bookConsumed.sMulDivDown(depth2pct, old);
        }
        market.params.depth2pct = depth2pct;
        emit DepthSet(marketId, depth2pct, msg.sender);
    }

    /* COLLATERAL */

    /// @inheritdoc IPerpEngine
    function deposit(uint256 amount) external nonReentrant {
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc IPerpEngine
    function depositFor(address account, uint256 amount) external nonReentrant {
        if (account == address(0)) revert InvalidCounterparty(account);
        _deposit(account, amount);
    }

    /// @inheritdoc IPerpEngine
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 id = _crossId(msg.sender);
        uint256 wad = amount * tokenScale;
        _debit(id, wad);
        _safeTransfer(msg.sender, amount);
        emit Withdrawal(id, msg.sender, amount);
    }

    /// @inheritdoc IPerpEngine
    function transferMargin(uint256 marketId, int256 amount) external nonReentrant {
        _market(marketId);
        if (amount == 0) revert ZeroAmount();
        uint256 crossId = _crossId(msg.sender);
        uint256 isolatedId = isolatedAccountId(msg.sender, marketId);
        (uint256 from, uint256 to) = amount > 0 ? (crossId, isolatedId) : (isolatedId, crossId);
        uint256 wad = FixedPointMath.abs(amount);
        _debit(from, wad);
        _credit(to, wad);
        emit MarginTransferred(msg.sender, marketId, amount);
    }

    /* TRADING */

    /// @inheritdoc IPerpEngine
    function openPosition(uint256 marketId, int256 sizeDelta, uint256 priceLimit) external nonReentrant {
        _takerTrade(_crossId(msg.sender), marketId, sizeDelta, priceLimit);
    }

    /// @inheritdoc IPerpEngine
    function openIsolatedPosition(uint256 marketId, int256 sizeDelta, uint256 priceLimit) external nonReentrant {
        _takerTrade(isolatedAccountId(msg.sender, marketId), marketId, sizeDelta, priceLimit);
    }

    /// @inheritdoc IPerpEngine
    function settleMatchedFill(address buyer, address seller, uint256 marketId, uint256 size, uint256 price)
        external
        nonReentrant
        onlyRole(OPERATOR_ROLE)
    {
        Market storage market = _market(marketId);
        if (size == 0) revert ZeroAmount();
        if (buyer == vault || buyer == address(0)) revert InvalidCounterparty(buyer);
        if (seller == vault || seller == buyer || seller == address(0)) revert InvalidCounterparty(seller);
        uint256[] memory prices = new uint256[](markets.length);
        uint256 oraclePrice = _priceOf(prices, marketId);
        uint256 distance = price > oraclePrice ? price - oraclePrice : oraclePrice - price;
        if (distance.wDivUp(oraclePrice) > market.params.matchBand) {
            revert PriceOutsideBand(marketId, price, oraclePrice, market.params.matchBand);
        }
        _accrueFunding(marketId, oraclePrice);
        int256 signedSize = FixedPointMath.toInt(size);
        (uint256 longBefore, uint256 shortBefore) = (market.longOpenInterest, market.shortOpenInterest);
        _fillAndCheck(_crossId(buyer), marketId, signedSize, price, prices);
        _fillAndCheck(_crossId(seller), marketId, -signedSize, price, prices);
        _checkOpenInterestCap(marketId, longBefore, shortBefore);
    }

    /// @inheritdoc IPerpEngine
    function accrueFunding(uint256 marketId) external {
        _market(marketId);
        _accrueFunding(marketId, oracle.price(marketId));
    }

    /// @inheritdoc IPerpEngine
    function settleFunding(uint256 accountId, uint256 marketId) external nonReentrant {
        _market(marketId);
        _accrueFunding(marketId, oracle.price(marketId));
        _settleFunding(accountId, marketId);
    }

    /* INSURANCE FUND */

    /// @inheritdoc IPerpEngine
    function depositInsurance(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        _pullTokens(amount);
        insuranceFund += amount * tokenScale;
        emit InsuranceFundDeposit(msg.sender, amount);
    }

    /* LIQUIDATION HOOKS: called by the liquidation engine, which holds the liquidation rules */

    /// @inheritdoc IPerpEngine
    function liquidationFill(uint256 accountId, uint256 marketId, int256 sizeDelta)
        external
        nonReentrant
        onlyRole(LIQUIDATOR_ROLE)
        returns (uint256 fillPrice)
    {
        Market storage market = _market(marketId);
        if (sizeDelta == 0) revert ZeroAmount();
        uint256 price = oracle.price(marketId);
        _accrueFunding(marketId, price);
        fillPrice = _walkBook(market, marketId, price, sizeDelta);
        _fill(accountId, marketId, sizeDelta, fillPrice);
        _fill(_crossId(vault), marketId, -sizeDelta, fillPrice);
    }

    /// @inheritdoc IPerpEngine
    function adlFill(uint256 accountId, uint256 counterpartyId, uint256 marketId, int256 sizeDelta, uint256 price)
        external
        nonReentrant
        onlyRole(LIQUIDATOR_ROLE)
    {
        _market(marketId);
        if (sizeDelta == 0) revert ZeroAmount();
        _accrueFunding(marketId, oracle.price(marketId));
        _fill(accountId, marketId, sizeDelta, price);
        _fill(counterpartyId, marketId, -sizeDelta, price);
    }

    /// @inheritdoc IPerpEngine
    function chargePenalty(uint256 accountId, address keeper, uint256 toKeeper, uint256 toFund)
        external
        nonReentrant
        onlyRole(LIQUIDATOR_ROLE)
    {
        accounts[accountId].collateral -= FixedPointMath.toInt(toKeeper + toFund);
        if (toKeeper != 0) {
            uint256 keeperId = _crossId(keeper);
            _register(keeperId);
            accounts[keeperId].collateral += FixedPointMath.toInt(toKeeper);
        }
        insuranceFund += toFund;
        emit PenaltyCharged(accountId, keeper, toKeeper, toFund);
    }

    /// @inheritdoc IPerpEngine
    function settleDeficit(uint256 accountId, uint256 marketId, bool socialize)
        external
        nonReentrant
        onlyRole(LIQUIDATOR_ROLE)
        returns (uint256 fromFund, uint256 socialized, uint256 writtenOff)
    {
        Market storage market = _market(marketId);
        (int256 value,,) = _health(accountId, _emptyPrices());
        uint256 deficit = value < 0 ? uint256(-value) : 0;
        if (accounts[accountId].marketMask != 0) {
            _earmarkDeficit(accountId, marketId, deficit);
            return (0, 0, 0);
        }
        // The close-out fill (`_fill`) has already released the account's earmark to the fund.
        if (deficit == 0) return (0, 0, 0);
        fromFund = FixedPointMath.min(deficit, insuranceFund);
        insuranceFund -= fromFund;
        uint256 rest = deficit - fromFund;
        if (rest != 0 && socialize) {
            // The account is closed out, so every open position of the market is someone else's.
            uint256 others = market.longOpenInterest + market.shortOpenInterest
                + FixedPointMath.abs(positions[_crossId(vault)][marketId].size);
            if (others != 0) {
                uint256 delta = LiquidationMath.socialLossIndexDelta(rest, others);
                market.socialLossIndex += delta;
                socialized = rest;
                rest = 0;
                emit LossSocialized(marketId, accountId, socialized, delta);
            }
        }
        writtenOff = rest;
        badDebt += writtenOff;
        accounts[accountId].collateral += FixedPointMath.toInt(deficit);
        if (fromFund != 0) emit InsuranceFundPayment(accountId, marketId, fromFund);
        if (writtenOff != 0) emit BadDebtRecorded(accountId, marketId, writtenOff);
    }

    /* VIEWS: one account or market (the batch views are in PerpEngineViews) */

    /// @inheritdoc IPerpEngine
    function bankruptcyPrice(address account, uint256 marketId) external view returns (uint256) {
        return bankruptcyPriceOf(_crossId(account), marketId);
    }

    /// @inheritdoc IPerpEngine
    function bankruptcyPriceOf(uint256 accountId, uint256 marketId) public view returns (uint256) {
        _market(marketId);
        int256 size = positions[accountId][marketId].size;
        if (size == 0) revert ZeroAmount();
        uint256[] memory prices = _emptyPrices();
        (int256 value,,) = _health(accountId, prices);
        value += FixedPointMath.toInt(fundReserveOf[accountId]);
        return LiquidationMath.bankruptcyPrice(prices[marketId], value, size);
    }

    /// @inheritdoc IPerpEngine
    function bookCapacity(uint256 marketId, bool isBuy) external view returns (uint256) {
        Market storage market = _market(marketId);
        int256 consumed = market.bookBlock == block.number ? market.bookConsumed : int256(0);
        return DepthCurve.capacity(consumed, market.params.depth2pct, market.params.maxImpact, isBuy);
    }

    /// @inheritdoc IPerpEngine
    function previewLiquidationFill(uint256 accountId, uint256 marketId, int256 sizeDelta)
        external
        view
        returns (uint256 fillPrice, int256 valueAfter, uint256 mmAfter)
    {
        Market storage market = _market(marketId);
        uint256[] memory prices = _emptyPrices();
        uint256 price = _priceOf(prices, marketId);
        int256 consumed = market.bookBlock == block.number ? market.bookConsumed : int256(0);
        (fillPrice,) =
            DepthCurve.fill(marketId, price, sizeDelta, consumed, market.params.depth2pct, market.params.maxImpact);
        (valueAfter, mmAfter,) = _health(accountId, prices);
        Position storage position = positions[accountId][marketId];
        (int256 newSize, int256 newOpenNotional, int256 realizedPnl) =
            PositionMath.applyFill(position.size, position.openNotional, sizeDelta, fillPrice);
        valueAfter += realizedPnl - MarginMath.unrealizedPnl(position.size, position.openNotional, price)
            + MarginMath.unrealizedPnl(newSize, newOpenNotional, price);
        mmAfter = mmAfter - _positionMaintenanceMargin(marketId, position.size, price)
            + _positionMaintenanceMargin(marketId, newSize, price);
    }

    /// @inheritdoc IPerpEngine
    function accountValue(address account) external view returns (int256 value) {
        (value,,) = _health(_crossId(account), _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function maintenanceMargin(address account) external view returns (uint256 mm) {
        (, mm,) = _health(_crossId(account), _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function initialMargin(address account) external view returns (uint256 im) {
        (,, im) = _health(_crossId(account), _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function isLiquidatable(address account) external view returns (bool) {
        return _isLiquidatable(_crossId(account), _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function isAccountLiquidatable(uint256 accountId) external view returns (bool) {
        return _isLiquidatable(accountId, _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function getPosition(address account, uint256 marketId) external view returns (int256, int256) {
        Position storage position = positions[_crossId(account)][marketId];
        return (position.size, position.openNotional);
    }

    /// @inheritdoc IPerpEngine
    function positionOf(uint256 accountId, uint256 marketId)
        external
        view
        returns (int256 size, int256 openNotional, int256 fundingIndex)
    {
        Position storage position = positions[accountId][marketId];
        return (position.size, position.openNotional, position.fundingIndex);
    }

    /// @inheritdoc IPerpEngine
    function collateralOf(uint256 accountId) external view returns (int256) {
        return accounts[accountId].collateral;
    }

    /// @inheritdoc IPerpEngine
    function marketMaskOf(uint256 accountId) external view returns (uint256) {
        return accounts[accountId].marketMask;
    }

    /// @inheritdoc IPerpEngine
    function health(uint256 accountId) external view returns (int256, uint256, uint256) {
        return _health(accountId, _emptyPrices());
    }

    /// @inheritdoc IPerpEngine
    function accountCount() external view returns (uint256) {
        return accountIds.length;
    }

    /// @inheritdoc IPerpEngine
    function marketCount() external view returns (uint256) {
        return markets.length;
    }

    /// @inheritdoc IPerpEngine
    function marketParams(uint256 marketId) external view returns (MarketParams memory) {
        return _market(marketId).params;
    }

    /// @inheritdoc IPerpEngine
    function marketName(uint256 marketId) external view returns (bytes32) {
        return _market(marketId).name;
    }

    /// @inheritdoc IPerpEngine
    function tiersOf(uint256 marketId)
        external
        view
        returns (uint256[] memory floors, uint256[] memory mmrs, uint256[] memory deductions)
    {
        _market(marketId);
        Tier[] storage list = tiers[marketId];
        floors = new uint256[](list.length);
        mmrs = new uint256[](list.length);
        deductions = new uint256[](list.length);
        for (uint256 k; k < list.length; ++k) {
            (floors[k], mmrs[k], deductions[k]) = (list[k].floor, list[k].mmr, list[k].deduction);
        }
    }

    /// @inheritdoc IPerpEngine
    function quote(uint256 marketId, int256 sizeDelta) external view returns (uint256 fillPrice) {
        Market storage market = _market(marketId);
        if (sizeDelta == 0) revert ZeroAmount();
        int256 consumed = market.bookBlock == block.number ? market.bookConsumed : int256(0);
        (fillPrice,) = DepthCurve.fill(
            marketId, oracle.price(marketId), sizeDelta, consumed, market.params.depth2pct, market.params.maxImpact
        );
    }

    /// @inheritdoc IPerpEngine
    function isolatedAccountId(address account, uint256 marketId) public pure returns (uint256) {
        return uint256(uint160(account)) | ((marketId + 1) << 160);
    }

    /* INTERNAL: ACCOUNTS AND COLLATERAL */

    function _register(uint256 id) internal {
        Account storage account = accounts[id];
        if (account.registered) return;
        account.registered = true;
        accountIds.push(id);
        emit AccountRegistered(id, accountIds.length - 1);
    }

    function _deposit(address account, uint256 amount) internal {
        if (amount == 0) revert ZeroAmount();
        uint256 id = _crossId(account);
        _pullTokens(amount);
        _credit(id, amount * tokenScale);
        emit Deposit(id, msg.sender, amount);
    }

    /// @dev Registers the account and credits it `wad`; it must then hold at least `minCollateral`.
    function _credit(uint256 id, uint256 wad) internal {
        _register(id);
        int256 collateral = accounts[id].collateral += FixedPointMath.toInt(wad);
        uint256 minimum = minCollateral;
        if (collateral < FixedPointMath.toInt(minimum)) revert CollateralBelowMinimum(id, collateral, minimum);
    }

    /// @dev Takes `wad` of collateral out of an account that must stay at or above its initial margin.
    function _debit(uint256 id, uint256 wad) internal {
        Account storage account = accounts[id];
        if (account.collateral < FixedPointMath.toInt(wad)) revert InsufficientCollateral(id, account.collateral, wad);
        account.collateral -= FixedPointMath.toInt(wad);
        (int256 value,, uint256 im) = _health(id, _emptyPrices());
        if (value < FixedPointMath.toInt(im)) revert InsufficientMargin(id, value, im);
    }

    /// @dev Tokens in before anything is credited: a token that does not move credits nothing.
    function _pullTokens(uint256 amount) internal {
        uint256 balanceBefore = collateralToken.balanceOf(address(this));
        if (!collateralToken.transferFrom(msg.sender, address(this), amount)) {
            revert TransferFailed(msg.sender, address(this), amount);
        }
        if (collateralToken.balanceOf(address(this)) != balanceBefore + amount) {
            revert TransferFailed(msg.sender, address(this), amount);
        }
    }

    function _safeTransfer(address to, uint256 amount) internal {
        if (!collateralToken.transfer(to, amount)) revert TransferFailed(address(this), to, amount);
    }

    /* INTERNAL: TRADING */

    function _takerTrade(uint256 id, uint256 marketId, int256 sizeDelta, uint256 priceLimit) internal {
        Market storage market = _market(marketId);
        if (sizeDelta == 0) revert ZeroAmount();
        address vaultAccount = vault;
        // The vault trades only as the counterparty, from no bucket of its own.
        if (vaultAccount == address(0) || address(uint160(id)) == vaultAccount) revert InvalidCounterparty(vaultAccount);
        uint256[] memory prices = new uint256[](markets.length);
        uint256 price = _priceOf(prices, marketId);
        _accrueFunding(marketId, price);

        uint256 fillPrice = _walkBook(market, marketId, price, sizeDelta);
        if (sizeDelta > 0 ? fillPrice > priceLimit : fillPrice < priceLimit) {
            revert PriceLimitExceeded(marketId, fillPrice, priceLimit);
        }

        (uint256 longBefore, uint256 shortBefore) = (market.longOpenInterest, market.shortOpenInterest);
        _fillAndCheck(id, marketId, sizeDelta, fillPrice, prices);
        _fillVault(_crossId(vaultAccount), marketId, -sizeDelta, fillPrice, prices);
        _checkOpenInterestCap(marketId, longBefore, shortBefore);
    }

    /// @dev Walks the book at the oracle price; consumption accumulates within a block.
    function _walkBook(Market storage market, uint256 marketId, uint256 price, int256 sizeDelta)
        internal
        returns (uint256 fillPrice)
    {
        if (market.bookBlock != block.number) {
            market.bookBlock = block.number;
            market.bookConsumed = 0;
        }
        int256 consumedAfter;
        (fillPrice, consumedAfter) = DepthCurve.fill(
            marketId, price, sizeDelta, market.bookConsumed, market.params.depth2pct, market.params.maxImpact
        );
        market.bookConsumed = consumedAfter;
    }

    /// @dev Fills a trader and enforces the margin rules: an increase (or a flip) needs AV >= IM after
    /// it; a reduction is always allowed unless it worsens an account already below zero value.
    function _fillAndCheck(uint256 id, uint256 marketId, int256 sizeDelta, uint256 fillPrice, uint256[] memory prices)
        internal
    {
        (int256 valueBefore,,) = _health(id, prices);
        int256 oldSize = positions[id][marketId].size;
        int256 newSize = _fill(id, marketId, sizeDelta, fillPrice);
        uint256 notional = FixedPointMath.abs(newSize).wMulDown(prices[marketId]);
        uint256 minimum = _market(marketId).params.minPositionNotional;
        if (newSize != 0 && notional < minimum) revert PositionBelowMinimum(id, marketId, notional, minimum);
        (int256 valueAfter,, uint256 im) = _health(id, prices);
        if (_increases(oldSize, newSize)) {
            if (valueAfter < FixedPointMath.toInt(im)) revert InsufficientMargin(id, valueAfter, im);
        } else if (valueAfter < 0 && valueAfter < valueBefore) {
            revert WorsensBadDebt(id, valueBefore, valueAfter);
        } else if (valueAfter < 0 && accounts[id].marketMask == 0) {
            // Only the liquidation engine closes out an account in deficit: it runs the waterfall.
            revert DeficitCloseOut(id, valueAfter);
        }
    }

    /// @dev The vault's side of a taker fill: it must stay at or above its initial margin when its
    /// exposure grows (its capacity).
    function _fillVault(uint256 vaultId, uint256 marketId, int256 sizeDelta, uint256 fillPrice, uint256[] memory prices)
        internal
    {
        int256 oldSize = positions[vaultId][marketId].size;
        int256 newSize = _fill(vaultId, marketId, sizeDelta, fillPrice);
        if (_increases(oldSize, newSize)) {
            (int256 value,, uint256 im) = _health(vaultId, prices);
            if (value < FixedPointMath.toInt(im)) revert VaultCapacityExceeded(value, im);
        }
    }

    /// @dev Settles the position's funding, applies the fill, realises PnL into collateral.
    function _fill(uint256 id, uint256 marketId, int256 sizeDelta, uint256 fillPrice) internal returns (int256 newSize) {
        // Every account holding a position is in the registry (balanceSheet, healthRange, ADL).
        _register(id);
        _settleFunding(id, marketId);
        _settleSocialLoss(id, marketId);
        Position storage position = positions[id][marketId];
        Account storage account = accounts[id];
        int256 newOpenNotional;
        int256 realizedPnl;
        (newSize, newOpenNotional, realizedPnl) =
            PositionMath.applyFill(position.size, position.openNotional, sizeDelta, fillPrice);
        position.size = newSize;
        position.openNotional = newOpenNotional;
        account.collateral += realizedPnl;
        if (newSize == 0) account.marketMask &= ~(uint256(1) << marketId);
        else account.marketMask |= uint256(1) << marketId;
        // A closed-out account's earmark goes back to the fund, which then pays what is owed.
        if (account.marketMask == 0 && fundReserveOf[id] != 0) _setFundReserve(id, marketId, 0);
        if (id != _crossId(vault)) _updateOpenInterest(marketId, sizeDelta, newSize);
        emit PositionChanged(id, marketId, sizeDelta, fillPrice, newSize, newOpenNotional, realizedPnl);
    }

    /// @dev The account's earmark becomes its deficit, as far as the free fund reaches.
    function _earmarkDeficit(uint256 id, uint256 marketId, uint256 deficit) internal {
        _setFundReserve(id, marketId, FixedPointMath.min(deficit, fundReserveOf[id] + insuranceFund));
    }

    /// @dev Moves the account's earmark to `target`, between the free fund and the reserved part.
    function _setFundReserve(uint256 id, uint256 marketId, uint256 target) internal {
        uint256 reserved = fundReserveOf[id];
        if (target == reserved) return;
        fundReserveOf[id] = target;
        if (target > reserved) {
            insuranceFund -= target - reserved;
            insuranceFundReserved += target - reserved;
            emit InsuranceFundReserved(id, marketId, target - reserved, target);
        } else {
            insuranceFund += reserved - target;
            insuranceFundReserved -= reserved - target;
            emit InsuranceFundReleased(id, marketId, reserved - target, target);
        }
    }

    function _increases(int256 oldSize, int256 newSize) internal pure returns (bool) {
        if (newSize == 0) return false;
        if (oldSize == 0 || (oldSize > 0) != (newSize > 0)) return true;
        return FixedPointMath.abs(newSize) > FixedPointMath.abs(oldSize);
    }

    /// @dev Trader open interest; the vault's inventory is tracked by its position.
    function _updateOpenInterest(uint256 marketId, int256 sizeDelta, int256 newSize) internal {
        Market storage market = markets[marketId];
        int256 oldSize = newSize - sizeDelta;
        if (oldSize > 0) market.longOpenInterest -= uint256(oldSize);
        else market.shortOpenInterest -= uint256(-oldSize);
        if (newSize > 0) market.longOpenInterest += uint256(newSize);
        else market.shortOpenInterest += uint256(-newSize);
    }

    /// @dev A side above the cap may not grow; reductions are always allowed, even over a cap
    /// that was lowered after the positions opened.
    function _checkOpenInterestCap(uint256 marketId, uint256 longBefore, uint256 shortBefore) internal view {
        Market storage market = markets[marketId];
        uint256 cap = market.params.maxOpenInterest;
        if (cap == 0) return;
        if (market.longOpenInterest > cap && market.longOpenInterest > longBefore) {
            revert OpenInterestCapExceeded(marketId, market.longOpenInterest, cap);
        }
        if (market.shortOpenInterest > cap && market.shortOpenInterest > shortBefore) {
            revert OpenInterestCapExceeded(marketId, market.shortOpenInterest, cap);
        }
    }

    /* INTERNAL: FUNDING */

    /// @dev Skew = net taker position = minus the vault's inventory.
    function _fundingRate(uint256 marketId) internal view override returns (int256) {
        MarketParams storage params = markets[marketId].params;
        int256 skew = -positions[_crossId(vault)][marketId].size;
        return FundingMath.rate(skew, params.skewScale, params.maxFundingRate);
    }

    function _currentFundingIndex(uint256 marketId, uint256 price) internal view returns (int256) {
        Market storage market = markets[marketId];
        return FundingMath.accrue(
            market.fundingIndex, _fundingRate(marketId), price, block.timestamp - market.lastFundingTime
        );
    }

    function _accrueFunding(uint256 marketId, uint256 price) internal {
        Market storage market = markets[marketId];
        if (market.lastFundingTime == block.timestamp) return;
        int256 index = _currentFundingIndex(marketId, price);
        market.fundingIndex = index;
        market.lastFundingTime = block.timestamp;
        emit FundingAccrued(marketId, index, _fundingRate(marketId));
    }

    /// @dev Requires the market's index accrued to now.
    function _settleFunding(uint256 id, uint256 marketId) internal {
        Position storage position = positions[id][marketId];
        int256 index = markets[marketId].fundingIndex;
        int256 amount = FundingMath.owed(position.size, index, position.fundingIndex);
        position.fundingIndex = index;
        if (amount == 0) return;
        accounts[id].collateral -= amount;
        emit FundingSettled(id, marketId, amount);
    }

    /* INTERNAL: SOCIALISED LOSS */

    function _pendingSocialLoss(Position storage position, uint256 marketId) internal view override returns (uint256) {
        return LiquidationMath.socialLossOwed(position.size, markets[marketId].socialLossIndex, position.socialLossIndex);
    }

    function _settleSocialLoss(uint256 id, uint256 marketId) internal {
        Position storage position = positions[id][marketId];
        uint256 amount = _pendingSocialLoss(position, marketId);
        position.socialLossIndex = markets[marketId].socialLossIndex;
        if (amount == 0) return;
        accounts[id].collateral -= FixedPointMath.toInt(amount);
        emit SocialLossSettled(id, marketId, amount);
    }

    /* INTERNAL: HEALTH */

    /// @dev AV = collateral + sum(uPnL - funding owed); MM and IM summed over positions. Prices are
    /// read from the oracle once per market per call (cached in `prices`, 0 = not read yet).
    function _health(uint256 id, uint256[] memory prices)
        internal
        view
        override
        returns (int256 value, uint256 mm, uint256 im)
    {
        Account storage account = accounts[id];
        value = account.collateral;
        uint256 mask = account.marketMask;
        for (uint256 m; mask >> m != 0; ++m) {
            if ((mask >> m) & 1 == 0) continue;
            Position storage position = positions[id][m];
            uint256 price = _priceOf(prices, m);
            value += MarginMath.unrealizedPnl(position.size, position.openNotional, price)
                - FundingMath.owed(position.size, _currentFundingIndex(m, price), position.fundingIndex)
                - FixedPointMath.toInt(_pendingSocialLoss(position, m));
            uint256 positionNotional = MarginMath.notional(position.size, price);
            uint256 positionMm = _positionMaintenanceMargin(m, position.size, price);
            mm += positionMm;
            im += MarginMath.initialMargin(positionNotional, markets[m].params.imr, positionMm);
        }
    }

    function _positionMaintenanceMargin(uint256 marketId, int256 size, uint256 price) internal view returns (uint256) {
        return MarginMath.maintenanceMargin(MarginMath.notional(size, price), tiers[marketId]);
    }

    function _isLiquidatable(uint256 id, uint256[] memory prices) internal view returns (bool) {
        if (accounts[id].marketMask == 0) return false;
        (int256 value, uint256 mm,) = _health(id, prices);
        return value < FixedPointMath.toInt(mm);
    }

    function _priceOf(uint256[] memory prices, uint256 marketId) internal view returns (uint256) {
        if (prices[marketId] == 0) prices[marketId] = oracle.price(marketId);
        return prices[marketId];
    }

    /* INTERNAL: MARKETS */

    function _validateParams(MarketParams calldata p) internal pure {
        if (p.imr == 0 || p.imr > WAD) revert InvalidParameter("imr", p.imr);
        if (p.mmr > p.imr) revert InvalidParameter("mmr", p.mmr);
        if (p.liquidationFee >= WAD) revert InvalidParameter("liquidationFee", p.liquidationFee);
        if (p.keeperShare > WAD) revert InvalidParameter("keeperShare", p.keeperShare);
        if (p.maxImpact == 0 || p.maxImpact >= WAD) revert InvalidParameter("maxImpact", p.maxImpact);
        if (p.depth2pct > MAX_DEPTH) revert InvalidParameter("depth2pct", p.depth2pct);
        if (p.matchBand >= WAD) revert InvalidParameter("matchBand", p.matchBand);
        if (p.maxFundingRate > WAD) revert InvalidParameter("maxFundingRate", p.maxFundingRate);
        if (p.maxFundingRate != 0 && p.skewScale == 0) revert InvalidParameter("skewScale", p.skewScale);
    }

    function _setTiers(uint256 marketId, uint256[] memory floors, uint256[] memory mmrs) internal {
        if (floors.length != mmrs.length || floors.length == 0 || floors[0] != 0) {
            revert InvalidTier(0, floors.length == 0 ? 0 : floors[0], mmrs.length == 0 ? 0 : mmrs[0]);
        }
        Tier[] storage list = tiers[marketId];
        delete tiers[marketId];
        list.push(Tier({floor: 0, mmr: mmrs[0], deduction: 0}));
        for (uint256 k = 1; k < floors.length; ++k) {
            Tier storage previous = list[k - 1];
            if (floors[k] <= previous.floor || mmrs[k] <= previous.mmr || mmrs[k] >= WAD) {
                revert InvalidTier(k, floors[k], mmrs[k]);
            }
            uint256 deduction = MarginMath.tierDeduction(previous.deduction, floors[k], mmrs[k], previous.mmr);
            list.push(Tier({floor: floors[k], mmr: mmrs[k], deduction: deduction}));
        }
        emit TiersSet(marketId, floors, mmrs);
    }

    function _tierArrays(uint256 marketId) internal view returns (uint256[] memory floors, uint256[] memory mmrs) {
        Tier[] storage list = tiers[marketId];
        floors = new uint256[](list.length);
        mmrs = new uint256[](list.length);
        for (uint256 k; k < list.length; ++k) {
            (floors[k], mmrs[k]) = (list[k].floor, list[k].mmr);
        }
    }

    function _single(uint256 value) internal pure returns (uint256[] memory array) {
        array = new uint256[](1);
        array[0] = value;
    }
}
