// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "./IERC20.sol";
import {IOracleRouter} from "./IOracleRouter.sol";

/// @notice Per-market parameters. Ratios and rates are WAD fractions; notionals WAD USD; sizes WAD units.
struct MarketParams {
    /// initial margin ratio (0.1e18 = 10x)
    uint256 imr;
    /// maintenance margin ratio of the first tier (default imr / 2 in scenarios, docs/design.md §2.5)
    uint256 mmr;
    /// liquidation penalty as a fraction of closed notional
    uint256 liquidationFee;
    /// share of the penalty paid to the liquidating keeper (rest to the insurance fund)
    uint256 keeperShare;
    /// notional that moves the price 2% (the book's depth)
    uint256 depth2pct;
    /// marginal impact at which the book ends (0.1e18 = 10%)
    uint256 maxImpact;
    /// cap on open interest per side, in units of size (0 = no cap)
    uint256 maxOpenInterest;
    /// funding rate per second at full skew (WAD fraction of notional per second)
    uint256 maxFundingRate;
    /// skew (units of size) at which the funding rate reaches maxFundingRate
    uint256 skewScale;
    /// matched fills must price within this fraction of the oracle price
    uint256 matchBand;
    /// smallest open position a user trade may leave, as notional at the oracle price (0 = none)
    uint256 minPositionNotional;
}

/// @notice Everything about a market that the simulator reads each step, in one call.
struct MarketView {
    uint256 marketId;
    uint256 longOpenInterest;
    uint256 shortOpenInterest;
    int256 vaultSize;
    int256 fundingIndex;
    int256 fundingRate;
    uint256 depth2pct;
    int256 bookConsumed;
    uint256 bookBlock;
    uint256 socialLossIndex;
    uint256 lastFundingTime;
}

/// @title IPerpEngine
/// @notice A perpetual-futures engine with cross and isolated margin against a liquidity vault.
/// Accounts are identified by an id: a cross account's id is its owner's address; an isolated
/// bucket's id also carries `marketId + 1` in bits 160 and up (see `isolatedAccountId`).
/// Units: token amounts (deposits, withdrawals, the insurance deposit) are in the collateral
/// token's units; everything else is WAD (18 decimals): prices in USD per unit of size, sizes in
/// units, notionals, values and margins in USD, ratios and rates as fractions.
interface IPerpEngine {
    /* ERRORS */

    /// @notice `caller` lacks `role`.
    error Unauthorized(address caller, bytes32 role);
    /// @notice `caller` accepted an ownership that was not offered to it (`pendingOwner`, 0: none).
    error NotPendingOwner(address caller, address pendingOwner);
    /// @notice An amount or size of zero where a non-zero one is required.
    error ZeroAmount();
    /// @notice No market has this id.
    error UnknownMarket(uint256 marketId);
    /// @notice A parameter is out of its range.
    error InvalidParameter(bytes32 name, uint256 value);
    /// @notice Tier `index` is not above the previous tier (floors and ratios must increase).
    error InvalidTier(uint256 index, uint256 floor, uint256 mmr);
    /// @notice The account holds less collateral than the amount asked for.
    error InsufficientCollateral(uint256 accountId, int256 collateral, uint256 amount);
    /// @notice After the action the account's value would be below its initial margin.
    error InsufficientMargin(uint256 accountId, int256 accountValue, uint256 initialMargin);
    /// @notice A reduction would leave the account below zero value and worse than before: closing
    /// into bad debt is the liquidation engine's job.
    error WorsensBadDebt(uint256 accountId, int256 valueBefore, int256 valueAfter);
    /// @notice The trade would close the account's last position with its value below zero: an
    /// account in deficit is closed out by the liquidation engine, which settles the deficit.
    error DeficitCloseOut(uint256 accountId, int256 valueAfter);
    /// @notice The fill price is past the trader's limit.
    error PriceLimitExceeded(uint256 marketId, uint256 fillPrice, uint256 priceLimit);
    /// @notice The vault cannot take the other side: its value would be below its initial margin.
    error VaultCapacityExceeded(int256 vaultValue, uint256 vaultInitialMargin);
    /// @notice Open interest on one side would exceed the market's cap.
    error OpenInterestCapExceeded(uint256 marketId, uint256 openInterest, uint256 cap);
    /// @notice A matched fill's price is outside the band around the oracle price.
    error PriceOutsideBand(uint256 marketId, uint256 price, uint256 oraclePrice, uint256 band);
    /// @notice The vault account cannot trade as a taker or a matched party, nor be a party twice.
    error InvalidCounterparty(address account);
    /// @notice No more markets fit (positions are tracked in a 256-bit mask).
    error TooManyMarkets();
    /// @notice The collateral token did not move.
    error TransferFailed(address from, address to, uint256 amount);
    /// @notice Re-entered a guarded function.
    error Reentrancy();
    /// @notice A deposit or margin transfer would leave `accountId` holding less collateral than
    /// the minimum (`minCollateral`), which keeps dust accounts out of the registry.
    error CollateralBelowMinimum(uint256 accountId, int256 collateral, uint256 minimum);
    /// @notice A user trade would leave a position of `notional` (at the oracle price) in
    /// `marketId`, open but below the market's `minPositionNotional`.
    error PositionBelowMinimum(uint256 accountId, uint256 marketId, uint256 notional, uint256 minimum);
    // Also raised, declared by the libraries that raise them: DepthCurve.BookExhausted (a fill would
    // walk the book past its end) and FixedPointMath's IntOverflow.


    /* EVENTS */

    /// @notice A market was created with id `marketId`.
    event MarketCreated(uint256 indexed marketId, bytes32 name, MarketParams params);
    /// @notice A market's parameters were replaced.
    event MarketParamsSet(uint256 indexed marketId, MarketParams params);
    /// @notice A market's maintenance-margin tiers were set (the first tier included).
    event TiersSet(uint256 indexed marketId, uint256[] floors, uint256[] mmrs);
    /// @notice Market maker `by` set the book's depth of `marketId`.
    event DepthSet(uint256 indexed marketId, uint256 depth2pct, address indexed by);
    /// @notice The owner offered ownership to `newOwner`; it moves when `newOwner` accepts.
    event OwnershipTransferStarted(address indexed owner, address indexed newOwner);
    /// @notice `account` was granted (`granted`) or lost `role`; ownership moves emit it for OWNER_ROLE.
    event RoleSet(bytes32 indexed role, address indexed account, bool granted);
    /// @notice The vault account changed.
    event VaultSet(address indexed vault);
    /// @notice The minimum collateral of an account after a deposit or a margin transfer changed.
    event MinCollateralSet(uint256 minCollateral);
    /// @notice An account id entered the registry at position `index`.
    event AccountRegistered(uint256 indexed accountId, uint256 index);
    /// @notice `from` deposited `amount` (token units) into the cross account `accountId`.
    event Deposit(uint256 indexed accountId, address indexed from, uint256 amount);
    /// @notice `amount` (token units) left the cross account `accountId` for `to`.
    event Withdrawal(uint256 indexed accountId, address indexed to, uint256 amount);
    /// @notice `owner` moved `amount` (WAD) into its isolated bucket of `marketId` (positive) or out of it.
    event MarginTransferred(address indexed owner, uint256 indexed marketId, int256 amount);
    /// @notice A fill of `sizeDelta` at `fillPrice`: the position is now `newSize` at `newOpenNotional`,
    /// and `realizedPnl` went into the account's collateral.
    event PositionChanged(
        uint256 indexed accountId,
        uint256 indexed marketId,
        int256 sizeDelta,
        uint256 fillPrice,
        int256 newSize,
        int256 newOpenNotional,
        int256 realizedPnl
    );
    /// @notice The account paid (positive) or received (negative) `amount` of funding.
    event FundingSettled(uint256 indexed accountId, uint256 indexed marketId, int256 amount);
    /// @notice The market's funding index moved to `index`; `rate` is the rate per second from now on.
    event FundingAccrued(uint256 indexed marketId, int256 index, int256 rate);
    /// @notice The account paid `amount` of socialised loss.
    event SocialLossSettled(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);
    /// @notice `amount` in token units, as in Deposit and Withdrawal.
    event InsuranceFundDeposit(address indexed from, uint256 amount);
    /// @notice A liquidation penalty left the account: `toKeeper` to the keeper, `toFund` to the fund.
    event PenaltyCharged(uint256 indexed accountId, address indexed keeper, uint256 toKeeper, uint256 toFund);
    /// @notice The fund paid `amount` of a closed-out account's deficit.
    event InsuranceFundPayment(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);
    /// @notice The fund earmarked `amount` more for the deficit of an account that still holds
    /// positions; `total` is the account's earmark now.
    event InsuranceFundReserved(uint256 indexed accountId, uint256 indexed marketId, uint256 amount, uint256 total);
    /// @notice `amount` of the account's earmark went back to the fund: its deficit shrank, or it
    /// was closed out (then `total` is 0 and the fund pays what is owed from there).
    event InsuranceFundReleased(uint256 indexed accountId, uint256 indexed marketId, uint256 amount, uint256 total);
    /// @notice `amount` of the account's deficit was spread over the market's open positions: the
    /// social-loss index rose by `indexDelta`.
    event LossSocialized(uint256 indexed marketId, uint256 indexed accountId, uint256 amount, uint256 indexDelta);
    /// @notice `amount` of the account's deficit was written off: no one covers it.
    event BadDebtRecorded(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);

    /* ROLES AND CONFIGURATION */

    /// @notice The role that settles matched fills (`settleMatchedFill`).
    function OPERATOR_ROLE() external view returns (bytes32);
    /// @notice The role that sets the book's depth (`setDepth`).
    function MARKET_MAKER_ROLE() external view returns (bytes32);
    /// @notice The role of the liquidation engine: the liquidation hooks.
    function LIQUIDATOR_ROLE() external view returns (bytes32);
    /// @notice The owner's role, held by `owner` alone; it moves only when the owner it was offered
    /// to (`transferOwnership`) accepts it (`acceptOwnership`).
    function OWNER_ROLE() external view returns (bytes32);

    /// @notice The collateral token.
    function collateralToken() external view returns (IERC20);
    /// @notice 10 ** (18 - token decimals): token units to WAD.
    function tokenScale() external view returns (uint256);
    /// @notice The oracle router every price is read from.
    function oracle() external view returns (IOracleRouter);
    /// @notice The owner: creates and configures markets, grants roles, sets the vault.
    function owner() external view returns (address);
    /// @notice The address ownership was offered to and that has not accepted it yet (0: none).
    function pendingOwner() external view returns (address);
    /// @notice The vault: the counterparty of every taker and liquidation fill (0 until set).
    function vault() external view returns (address);
    /// @notice Whether `account` holds `role` (OWNER_ROLE excepted: see `owner`).
    function hasRole(bytes32 role, address account) external view returns (bool);

    /* ADMINISTRATION: owner only, except `setDepth` */

    /// @notice Offers ownership (and OWNER_ROLE) to `newOwner`, which cannot be the zero address; the
    /// owner stays the owner until `newOwner` accepts. A new offer replaces the previous one.
    function transferOwnership(address newOwner) external;
    /// @notice The pending owner takes ownership (and OWNER_ROLE): a mistyped address can never
    /// receive the protocol.
    function acceptOwnership() external;

    /// @notice Grants or revokes `role` for `account`. OWNER_ROLE cannot be set here.
    function setRole(bytes32 role, address account, bool granted) external;

    /// @notice Sets the vault account. It can change only while the current vault holds no position,
    /// and the new vault must hold none either.
    function setVault(address newVault) external;

    /// @notice Sets the least collateral (WAD USD) a deposit or a margin transfer may leave in the
    /// account it credits (0 = none). Owner only. Accounts below it are not touched: the minimum
    /// applies when they are credited.
    function setMinCollateral(uint256 minCollateral) external;

    /// @notice The least collateral (WAD USD) a deposit or a margin transfer may leave in the
    /// account it credits.
    function minCollateral() external view returns (uint256);

    /// @notice Creates a market with a single maintenance-margin tier at `params.mmr`; its funding
    /// starts accruing now.
    /// @return marketId the new market's id, the number of markets before (at most 256 markets)
    function createMarket(bytes32 name, MarketParams calldata params) external returns (uint256 marketId);

    /// @notice Replaces a market's parameters, after accruing its funding at the old ones. The first
    /// tier's ratio follows `params.mmr`.
    function setMarketParams(uint256 marketId, MarketParams calldata params) external;

    /// @notice Sets notional tiers: `floors[0]` must be 0 and `mmrs[0]` the market's mmr; floors and
    /// ratios strictly increase. Deductions are derived so MM is continuous.
    /// @param floors notional (WAD USD) from which each tier applies
    /// @param mmrs maintenance margin ratio of each tier (WAD fraction, below 1)
    function setTiers(uint256 marketId, uint256[] calldata floors, uint256[] calldata mmrs) external;

    /// @notice Market makers set the book's depth as they withdraw or return (0 = no book).
    /// @dev A requote within a block scales the block's consumption with the depth, so the walked
    /// price move is kept.
    /// @param depth2pct notional (WAD USD) that moves the price 2%
    function setDepth(uint256 marketId, uint256 depth2pct) external;

    /* COLLATERAL */

    /// @notice Deposits `amount` of the collateral token (token units) into the caller's cross
    /// account. Scaled up exactly to WAD.
    function deposit(uint256 amount) external;

    /// @notice Deposits into `account`'s cross account on its behalf (e.g. the vault's funding).
    function depositFor(address account, uint256 amount) external;

    /// @notice Withdraws `amount` (token units) from the caller's cross account. Requires
    /// `AV - amount >= IM` and at most the account's collateral.
    function withdraw(uint256 amount) external;

    /// @notice Moves `amount` (WAD, signed) from the caller's cross account into its isolated bucket
    /// of `marketId` (positive) or back (negative). The side that loses margin must stay >= IM.
    function transferMargin(uint256 marketId, int256 amount) external;

    /* TRADING */

    /// @notice Trades `sizeDelta` (signed WAD) against the vault at the depth-curve price, for the
    /// caller's cross account. Reverts if the average fill price is past `priceLimit` (buys: above,
    /// sells: below), or if an increase leaves `AV < IM`.
    function openPosition(uint256 marketId, int256 sizeDelta, uint256 priceLimit) external;

    /// @notice As `openPosition`, for the caller's isolated bucket of `marketId`.
    function openIsolatedPosition(uint256 marketId, int256 sizeDelta, uint256 priceLimit) external;

    /// @notice Operator-settled fill between two traders' cross accounts at `price`, which must lie
    /// within the market's band around the oracle price. `buyer` goes long `size`, `seller` short.
    function settleMatchedFill(address buyer, address seller, uint256 marketId, uint256 size, uint256 price) external;

    /// @notice Accrues funding of `marketId` up to now (anyone; trades do it too).
    function accrueFunding(uint256 marketId) external;

    /// @notice Accrues the market and settles the funding `accountId` owes or is owed into its
    /// collateral (anyone; trades and liquidations do it too).
    function settleFunding(uint256 accountId, uint256 marketId) external;

    /* INSURANCE FUND */

    /// @notice Adds `amount` (token units) to the insurance fund.
    function depositInsurance(uint256 amount) external;

    /// @notice Insurance fund balance free to pay new losses (WAD USD). Funded by deposits and
    /// liquidation penalties.
    function insuranceFund() external view returns (uint256);
    /// @notice Part of the fund earmarked for deficits of accounts still holding positions (WAD
    /// USD): paid out or released when each account is closed out. Not in `insuranceFund`.
    function insuranceFundReserved() external view returns (uint256);
    /// @notice The earmark of one account (WAD USD).
    function fundReserveOf(uint256 accountId) external view returns (uint256);
    /// @notice Losses no one has covered (WAD USD): claims exceed the tokens by this much.
    function badDebt() external view returns (uint256);

    /* LIQUIDATION HOOKS: LIQUIDATOR_ROLE only (the liquidation engine, which holds the rules) */

    /// @notice Closes `sizeDelta` of an account's position against the vault at the depth-curve
    /// price. No margin checks and no vault capacity check: the vault is the backstop for
    /// liquidation flow; only the book's end (`maxImpact`, depth 0) stops a fill.
    /// @return fillPrice the average fill price (WAD)
    function liquidationFill(uint256 accountId, uint256 marketId, int256 sizeDelta) external returns (uint256 fillPrice);

    /// @notice ADL fill: `accountId` trades `sizeDelta` with `counterpartyId` at `price` (the
    /// bankruptcy price), outside the book.
    function adlFill(uint256 accountId, uint256 counterpartyId, uint256 marketId, int256 sizeDelta, uint256 price)
        external;

    /// @notice Moves a liquidation penalty out of the account: `toKeeper` to the keeper's cross
    /// account, `toFund` to the insurance fund (WAD).
    function chargePenalty(uint256 accountId, address keeper, uint256 toKeeper, uint256 toFund) external;

    /// @notice The loss waterfall. For an account that still holds a position the fund only
    /// earmarks what it can of the account's deficit now (`fundReserveOf`, raised or lowered to
    /// it), so later losses elsewhere cannot spend money already promised to this one; nothing is
    /// paid to the account yet, which would hand its owner any recovery of the open positions.
    /// Once the account is closed out (its earmark went back to the fund with its last position)
    /// the deficit is settled: the fund pays what it can (it never goes negative); the rest is
    /// spread over the other open positions of `marketId` pro rata to size when `socialize` is set
    /// and there are any, else recorded as bad debt, by which the protocol's claims then exceed
    /// its tokens. The account ends at zero value.
    /// @dev The social-loss index rises by the spread amount over the open |size|, rounded up.
    /// @return fromFund paid by the insurance fund (WAD USD)
    /// @return socialized spread over the market's other positions (WAD USD)
    /// @return writtenOff recorded as bad debt (WAD USD)
    function settleDeficit(uint256 accountId, uint256 marketId, bool socialize)
        external
        returns (uint256 fromFund, uint256 socialized, uint256 writtenOff);

    /* VIEWS: ONE ACCOUNT */

    /// @notice Value of `account`'s cross account at the oracle prices: collateral plus uPnL minus
    /// pending funding and socialised loss (WAD USD).
    function accountValue(address account) external view returns (int256 value);
    /// @notice Maintenance margin of `account`'s cross account (WAD USD, tiers applied, rounded up).
    function maintenanceMargin(address account) external view returns (uint256 mm);
    /// @notice Initial margin of `account`'s cross account (WAD USD, rounded up; at least its MM).
    function initialMargin(address account) external view returns (uint256 im);
    /// @notice Whether `account`'s cross account holds a position and its value is below its
    /// maintenance margin.
    function isLiquidatable(address account) external view returns (bool);
    /// @notice Whether any account id (cross or isolated) can be liquidated: it holds a position
    /// and its value is below its maintenance margin.
    function isAccountLiquidatable(uint256 accountId) external view returns (bool);
    /// @notice (AV, MM, IM) of any account id, cross or isolated (WAD USD).
    function health(uint256 accountId) external view returns (int256 value, uint256 mm, uint256 im);

    /// @notice The position of `account`'s cross account in `marketId`.
    /// @return size signed WAD units (long positive)
    /// @return openNotional signed WAD USD: size times the average entry price
    function getPosition(address account, uint256 marketId) external view returns (int256 size, int256 openNotional);
    /// @notice A position of any account id, with the funding index it was last settled at.
    function positionOf(uint256 accountId, uint256 marketId)
        external
        view
        returns (int256 size, int256 openNotional, int256 fundingIndex);
    /// @notice An account's collateral (WAD USD): deposits plus realised PnL, funding and penalties.
    function collateralOf(uint256 accountId) external view returns (int256);
    /// @notice An account's open markets: bit m set when it holds a position in market m.
    function marketMaskOf(uint256 accountId) external view returns (uint256);

    /// @notice The id of `account`'s isolated bucket of `marketId`.
    /// @dev `account | (marketId + 1) << 160`.
    function isolatedAccountId(address account, uint256 marketId) external pure returns (uint256);

    /// @notice `bankruptcyPriceOf` for `account`'s cross account.
    function bankruptcyPrice(address account, uint256 marketId) external view returns (uint256);
    /// @notice P - (AV + fund earmark) / size for the account's position in `marketId`, other
    /// prices fixed: the part of the deficit the fund has already promised is not the ADL
    /// counterparties' to cover.
    /// @dev One wei of value is held back and the division rounds toward the account, so closing
    /// there never leaves it below zero. At least 1. Reverts ZeroAmount without a position.
    function bankruptcyPriceOf(uint256 accountId, uint256 marketId) external view returns (uint256);

    /// @notice What `liquidationFill` would do now: its fill price and the account's value and
    /// maintenance margin after it. Exact: the same book walk, position math, funding and
    /// socialised-loss settlement as the fill itself.
    function previewLiquidationFill(uint256 accountId, uint256 marketId, int256 sizeDelta)
        external
        view
        returns (uint256 fillPrice, int256 valueAfter, uint256 mmAfter);

    /* VIEWS: MARKETS */

    /// @notice Number of registered account ids (ids that ever held collateral or a position).
    function accountCount() external view returns (uint256);
    /// @notice The registered account id at `index`, in registration order.
    function accountIds(uint256 index) external view returns (uint256);
    /// @notice Number of markets; their ids are `0 .. marketCount() - 1`.
    function marketCount() external view returns (uint256);
    /// @notice A market's parameters.
    function marketParams(uint256 marketId) external view returns (MarketParams memory);
    /// @notice A market's name.
    function marketName(uint256 marketId) external view returns (bytes32);
    /// @notice A market's maintenance-margin tiers, lowest first.
    /// @return floors notional (WAD USD) from which each tier applies
    /// @return mmrs each tier's ratio (WAD fraction)
    /// @return deductions each tier's deduction (WAD USD): MM = notional * mmr - deduction
    function tiersOf(uint256 marketId)
        external
        view
        returns (uint256[] memory floors, uint256[] memory mmrs, uint256[] memory deductions);

    /// @notice The average price a fill of `sizeDelta` would get now (no state change).
    /// @dev Buys round the price up, sells down.
    function quote(uint256 marketId, int256 sizeDelta) external view returns (uint256 fillPrice);
    /// @notice Notional (WAD USD) the book can still take this block in one direction before it ends.
    function bookCapacity(uint256 marketId, bool isBuy) external view returns (uint256);

    /* BATCH VIEWS: many accounts or markets in one call (PerpEngineViews) */

    /// @notice Health (AV, MM, IM) of many accounts in one call, prices read once per market.
    function healthOf(uint256[] calldata ids)
        external
        view
        returns (int256[] memory values, uint256[] memory mms, uint256[] memory ims);
    /// @notice Health of the registered accounts `[start, start + count)` in one call (fewer past
    /// the end of the registry).
    function healthRange(uint256 start, uint256 count)
        external
        view
        returns (uint256[] memory ids, int256[] memory values, uint256[] memory mms);
    /// @notice The registered account ids `[start, start + count)`, in registration order.
    function accountIdsFrom(uint256 start, uint256 count) external view returns (uint256[] memory ids);
    /// @notice What an off-chain position index keeps of each account, in one call: collateral,
    /// the fund's earmark, and per market m (row-major, `i * marketCount() + m`) the position's
    /// size, open notional, and the funding and social-loss indices it was last settled at; zeros
    /// where no position is open.
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
        );

    /// @notice Everything about a market that the simulator reads each step, in one call.
    /// @dev `bookConsumed` is the consumption of the current block only (0 once a block has passed).
    function marketView(uint256 marketId) external view returns (MarketView memory view_);
    /// @notice `marketView` of every market, by id.
    function marketViews() external view returns (MarketView[] memory views);

    /// @notice The protocol's balance sheet (WAD): what it holds in tokens, and what it owes.
    /// `claims` is the sum over accounts of collateral - open notional - pending funding, which
    /// equals the sum of account values at any common price (sizes sum to zero). Conservation:
    /// tokens = claims + fund + dust, with dust >= 0 (`fund` includes the earmarked part); under
    /// the NONE policy claims exceed tokens by the bad debt.
    /// @dev Pending funding at each market's stored index; pending socialised loss counts too.
    function balanceSheet() external view returns (uint256 tokens, int256 claims, uint256 fund);
}
