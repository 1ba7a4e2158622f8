// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

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
interface IPerpEngine {
    /* ERRORS */

    /// @notice `caller` lacks `role`.
    error Unauthorized(address caller, bytes32 role);
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

    /* EVENTS */

    event MarketCreated(uint256 indexed marketId, bytes32 name, MarketParams params);
    event MarketParamsSet(uint256 indexed marketId, MarketParams params);
    event TiersSet(uint256 indexed marketId, uint256[] floors, uint256[] mmrs);
    event DepthSet(uint256 indexed marketId, uint256 depth2pct, address indexed by);
    event RoleSet(bytes32 indexed role, address indexed account, bool granted);
    event VaultSet(address indexed vault);
    event AccountRegistered(uint256 indexed accountId, uint256 index);
    event Deposit(uint256 indexed accountId, address indexed from, uint256 amount);
    event Withdrawal(uint256 indexed accountId, address indexed to, uint256 amount);
    event MarginTransferred(address indexed owner, uint256 indexed marketId, int256 amount);
    event PositionChanged(
        uint256 indexed accountId,
        uint256 indexed marketId,
        int256 sizeDelta,
        uint256 fillPrice,
        int256 newSize,
        int256 newOpenNotional,
        int256 realizedPnl
    );
    event FundingSettled(uint256 indexed accountId, uint256 indexed marketId, int256 amount);
    event FundingAccrued(uint256 indexed marketId, int256 index, int256 rate);
    event SocialLossSettled(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);
    /// @notice `amount` in token units, as in Deposit and Withdrawal.
    event InsuranceFundDeposit(address indexed from, uint256 amount);
    event PenaltyCharged(uint256 indexed accountId, address indexed keeper, uint256 toKeeper, uint256 toFund);
    event InsuranceFundPayment(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);
    /// @notice The fund earmarked `amount` more for the deficit of an account that still holds
    /// positions; `total` is the account's earmark now.
    event InsuranceFundReserved(uint256 indexed accountId, uint256 indexed marketId, uint256 amount, uint256 total);
    /// @notice `amount` of the account's earmark went back to the fund: its deficit shrank, or it
    /// was closed out (then `total` is 0 and the fund pays what is owed from there).
    event InsuranceFundReleased(uint256 indexed accountId, uint256 indexed marketId, uint256 amount, uint256 total);
    event LossSocialized(uint256 indexed marketId, uint256 indexed accountId, uint256 amount, uint256 indexDelta);
    event BadDebtRecorded(uint256 indexed accountId, uint256 indexed marketId, uint256 amount);

    /* COLLATERAL */

    /// @notice Deposits `amount` of the collateral token (token units, 6 decimals) into the caller's
    /// cross account. Scaled up exactly to WAD.
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

    /* VIEWS */

    function accountValue(address account) external view returns (int256);
    function maintenanceMargin(address account) external view returns (uint256);
    function initialMargin(address account) external view returns (uint256);
    function isLiquidatable(address account) external view returns (bool);
    function getPosition(address account, uint256 marketId) external view returns (int256 size, int256 openNotional);

    /// @notice (AV, MM, IM) of any account id, cross or isolated.
    function health(uint256 accountId) external view returns (int256 value, uint256 mm, uint256 im);
    /// @notice Health of many accounts in one call.
    function healthOf(uint256[] calldata accountIds)
        external
        view
        returns (int256[] memory values, uint256[] memory mms, uint256[] memory ims);
    /// @notice Health of the registered accounts `[start, start + count)` in one call.
    function healthRange(uint256 start, uint256 count)
        external
        view
        returns (uint256[] memory accountIds, int256[] memory values, uint256[] memory mms);

    /// @notice The registered account ids `[start, start + count)`, in registration order.
    function accountIdsFrom(uint256 start, uint256 count) external view returns (uint256[] memory accountIds);
    /// @notice What an off-chain position index keeps of each account, in one call: collateral,
    /// the fund's earmark, and per market m (row-major, `i * marketCount() + m`) the position's
    /// size, open notional, and the funding and social-loss indices it was last settled at.
    function accountStates(uint256[] calldata accountIds)
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

    function marketView(uint256 marketId) external view returns (MarketView memory);
    function marketViews() external view returns (MarketView[] memory);

    /// @notice The average price a fill of `sizeDelta` would get now (no state change).
    function quote(uint256 marketId, int256 sizeDelta) external view returns (uint256 fillPrice);

    function isolatedAccountId(address owner, uint256 marketId) external pure returns (uint256);

    function insuranceFund() external view returns (uint256);
    function insuranceFundReserved() external view returns (uint256);
    function fundReserveOf(uint256 accountId) external view returns (uint256);
    function badDebt() external view returns (uint256);
    function bankruptcyPrice(address account, uint256 marketId) external view returns (uint256);
}
