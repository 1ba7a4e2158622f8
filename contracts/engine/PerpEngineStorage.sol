// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IPerpEngine, MarketParams} from "../interfaces/IPerpEngine.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {IERC20} from "../interfaces/IERC20.sol";
import {Tier} from "../libraries/MarginMath.sol";

/// @title PerpEngineStorage
/// @notice The engine's constants and storage, shared by the mechanism (PerpEngine) and its batch
/// views (PerpEngineViews), with the accessors both use. The layout is PerpEngine's: every state
/// variable lives here, in this order.
abstract contract PerpEngineStorage is IPerpEngine {
    /* ROLES */

    /// @inheritdoc IPerpEngine
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR");
    /// @inheritdoc IPerpEngine
    bytes32 public constant MARKET_MAKER_ROLE = keccak256("MARKET_MAKER");
    /// @inheritdoc IPerpEngine
    bytes32 public constant LIQUIDATOR_ROLE = keccak256("LIQUIDATOR");
    /// @inheritdoc IPerpEngine
    bytes32 public constant OWNER_ROLE = keccak256("OWNER");

    uint256 internal constant MAX_MARKETS = 256;
    /// @dev Depth bound that keeps the curve's arithmetic far from overflow ($1e18 of book).
    uint256 internal constant MAX_DEPTH = 1e36;

    /* STORAGE */

    struct Market {
        bytes32 name;
        MarketParams params;
        int256 fundingIndex;
        uint256 lastFundingTime;
        // Open interest of traders (the vault excluded): longs - shorts + vault size = 0.
        uint256 longOpenInterest;
        uint256 shortOpenInterest;
        uint256 bookBlock;
        int256 bookConsumed;
        // Socialised loss per unit of |size| (SOCIALIZE policy), settled lazily like funding.
        uint256 socialLossIndex;
    }

    struct Position {
        int256 size;
        int256 openNotional;
        int256 fundingIndex;
        uint256 socialLossIndex;
    }

    struct Account {
        int256 collateral;
        // Bit m set: the account has an open position in market m.
        uint256 marketMask;
        bool registered;
    }

    /// @inheritdoc IPerpEngine
    IERC20 public immutable collateralToken;
    /// @inheritdoc IPerpEngine
    uint256 public immutable tokenScale;
    /// @inheritdoc IPerpEngine
    IOracleRouter public immutable oracle;

    /// @inheritdoc IPerpEngine
    address public owner;
    /// @inheritdoc IPerpEngine
    address public vault;
    /// @inheritdoc IPerpEngine
    mapping(bytes32 role => mapping(address account => bool)) public hasRole;

    Market[] internal markets;
    mapping(uint256 marketId => Tier[]) internal tiers;

    mapping(uint256 accountId => Account) internal accounts;
    mapping(uint256 accountId => mapping(uint256 marketId => Position)) internal positions;
    /// @inheritdoc IPerpEngine
    uint256[] public accountIds;

    /// @inheritdoc IPerpEngine
    uint256 public insuranceFund;
    /// @inheritdoc IPerpEngine
    uint256 public insuranceFundReserved;
    /// @inheritdoc IPerpEngine
    mapping(uint256 accountId => uint256) public fundReserveOf;
    /// @inheritdoc IPerpEngine
    uint256 public badDebt;
    /// @inheritdoc IPerpEngine
    uint256 public minCollateral;
    /// @inheritdoc IPerpEngine
    address public pendingOwner;

    bool internal transient locked;

    constructor(IERC20 token, IOracleRouter oracleRouter) {
        uint8 decimals = token.decimals();
        if (decimals > 18) revert InvalidParameter("tokenDecimals", decimals);
        collateralToken = token;
        tokenScale = 10 ** (18 - decimals);
        oracle = oracleRouter;
    }

    /* ACCESSORS */

    function _crossId(address account) internal pure returns (uint256) {
        return uint256(uint160(account));
    }

    function _market(uint256 marketId) internal view returns (Market storage) {
        if (marketId >= markets.length) revert UnknownMarket(marketId);
        return markets[marketId];
    }

    /// @dev A price cache for `_health`: one slot per market, 0 = not read yet.
    function _emptyPrices() internal view returns (uint256[] memory) {
        return new uint256[](markets.length);
    }
}
