"""Mirror of contracts/engine/PerpEngine.sol: cross and isolated margin against a liquidity vault.

Same sections, same function names in snake_case, same order of checks (so the same revert wins).
Storage differs in form only:

- accounts and positions live in numpy object-dtype arrays with storage references over them
  (simulator/model/storage.py: `_account(id)`, `_position(id, market)`), so the code reads like the
  Solidity (``position.size = new_size``) and health can be computed for every account at once.
- ``Account.marketMask`` is not stored: bit m is set exactly when the size in market m is non-zero
  (`_fill` is the only writer of both), so the model derives it.
- Roles, the reentrancy lock and the token contract are not modelled: the caller is passed
  explicitly where the contract uses ``msg.sender``, and the engine's token balance is a counter.

PerpEngine.sol's two bases are mirrored in this class: the constants and storage of
PerpEngineStorage.sol, and the batch views of PerpEngineViews.sol (healthOf, healthRange,
accountIdsFrom, accountStates, marketView(s), balanceSheet) in its VIEWS section.

Addresses and account ids are ints: a cross account's id is its address, an isolated bucket's id is
``address | (marketId + 1) << 160``. Amounts follow the contract: deposits and withdrawals in token
units, everything else WAD.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence


from simulator.model import depth as DepthCurve
from simulator.model import fixed_point as fp
from simulator.model import funding as FundingMath
from simulator.model import liquidation as LiquidationMath
from simulator.model import margin as MarginMath
from simulator.model import position as PositionMath
from simulator.model.errors import (
    CollateralBelowMinimum,
    PositionBelowMinimum,
    DeficitCloseOut,
    InsufficientCollateral,
    InsufficientMargin,
    InvalidCounterparty,
    InvalidParameter,
    InvalidTier,
    OpenInterestCapExceeded,
    PriceLimitExceeded,
    PriceOutsideBand,
    TooManyMarkets,
    UnknownMarket,
    VaultCapacityExceeded,
    WorsensBadDebt,
    ZeroAmount,
)
from simulator.model.margin import Tier
from simulator.model.state import transaction
from simulator.model.perp_engine_views import MarketView, PerpEngineViews
from simulator.model.storage import AccountRef, PositionRef
from simulator.units import WAD

ADDRESS_BITS = 160
ADDRESS_MASK = (1 << ADDRESS_BITS) - 1


@dataclass(frozen=True)
class MarketParams:
    """struct MarketParams (IPerpEngine.sol), same fields in the same order, WAD integers."""

    imr: int
    mmr: int
    liquidation_fee: int
    keeper_share: int
    depth2pct: int
    max_impact: int
    max_open_interest: int
    max_funding_rate: int
    skew_scale: int
    match_band: int
    min_position_notional: int = 0

    @classmethod
    def from_spec(cls, spec) -> "MarketParams":
        """From a `simulator.chain.deploy.MarketSpec` (the tuple its `params()` sends to the chain)."""
        return cls(*spec.params())


@dataclass
class Market:
    """struct Market (PerpEngineStorage.sol)."""

    name: str
    params: MarketParams
    funding_index: int = 0
    last_funding_time: int = 0
    # Open interest of traders (the vault excluded): longs - shorts + vault size = 0.
    long_open_interest: int = 0
    short_open_interest: int = 0
    book_block: int = 0
    book_consumed: int = 0
    # Socialised loss per unit of |size| (SOCIALIZE policy), settled lazily like funding.
    social_loss_index: int = 0


class PerpEngine(PerpEngineViews):
    """The engine's storage and functions. NatSpec lives in contracts/interfaces/IPerpEngine.sol."""

    MAX_MARKETS = 256
    # Depth bound that keeps the curve's arithmetic far from overflow ($1e18 of book).
    MAX_DEPTH = 10**36

    def __init__(self, token_decimals: int = 6, deployer: int = 0, **chain):
        super().__init__(**chain)
        if token_decimals > 18:
            raise InvalidParameter("tokenDecimals", token_decimals)
        # 10 ** (18 - token decimals): token units to WAD.
        self.token_scale = 10 ** (18 - token_decimals)
        self.owner = deployer
        # collateralToken.balanceOf(engine), token units: the model's token contract.
        self.token_balance = 0

        # STORAGE
        self.vault = 0
        self.markets: list[Market] = []
        self.tiers: list[tuple[Tier, ...]] = []
        self.account_ids: list[int] = []  # accountIds: registered ids in registration order
        self.insurance_fund = 0
        self.insurance_fund_reserved = 0
        self.fund_reserve: dict[int, int] = {}  # fundReserveOf: the fund's earmark per account id
        self.bad_debt = 0
        self.min_collateral = 0

        self._registered_rows: list[int] = []  # rows of account_ids (storage.py), same order

    def _snapshot(self) -> dict:
        snapshot = super()._snapshot()
        snapshot.update(
            engine_scalars=(self.vault, self.insurance_fund, self.insurance_fund_reserved, self.bad_debt,
                            self.token_balance, self.owner, self.min_collateral),
            fund_reserve=dict(self.fund_reserve),
            markets=[_copy(market) for market in self.markets],
            tiers=list(self.tiers),
            registered=len(self.account_ids),
        )
        return snapshot

    def _restore(self, snapshot: dict) -> None:
        (self.vault, self.insurance_fund, self.insurance_fund_reserved, self.bad_debt, self.token_balance,
         self.owner, self.min_collateral) = snapshot["engine_scalars"]
        self.fund_reserve = snapshot["fund_reserve"]
        saved_markets = snapshot["markets"]
        for live, saved in zip(self.markets, saved_markets):
            live.__dict__.update(saved.__dict__)
        del self.markets[len(saved_markets):]
        self.tiers[:] = snapshot["tiers"]
        del self.account_ids[snapshot["registered"]:]
        del self._registered_rows[snapshot["registered"]:]
        super()._restore(snapshot)  # the account rows, once the market count is restored

    def _market_count(self) -> int:
        return len(self.markets)

    # ==========================================================================================
    # ADMINISTRATION
    # ==========================================================================================

    @transaction
    def set_vault(self, new_vault: int) -> None:
        """setVault: the vault can change only while the current vault holds no position."""
        if new_vault == 0:
            raise InvalidCounterparty(new_vault)
        # Neither the old nor the new vault may hold a position: open interest excludes the vault,
        # so a switch with positions would corrupt it.
        if self.vault != 0 and self._account(self._cross_id(self.vault)).market_mask != 0:
            raise InvalidCounterparty(self.vault)
        if self._account(self._cross_id(new_vault)).market_mask != 0:
            raise InvalidCounterparty(new_vault)
        self.vault = new_vault
        self._emit("VaultSet", new_vault)

    @transaction
    def set_min_collateral(self, minimum: int) -> None:
        """setMinCollateral: the least collateral a deposit or a margin transfer may leave."""
        self.min_collateral = minimum
        self._emit("MinCollateralSet", minimum)

    @transaction
    def create_market(self, name: str, params: MarketParams) -> int:
        """createMarket: a new market with a single tier at `params.mmr`. Its price starts unset."""
        market_id = len(self.markets)
        if market_id == self.MAX_MARKETS:
            raise TooManyMarkets()
        self._validate_params(params)
        self.markets.append(Market(name=name, params=params, last_funding_time=self.timestamp))
        self.tiers.append(())
        self.prices.append(0)
        self._add_market_column()
        self._set_tiers(market_id, [0], [params.mmr])
        self._emit("MarketCreated", market_id, name, params)
        return market_id

    @transaction
    def set_market_params(self, market_id: int, params: MarketParams) -> None:
        """setMarketParams: replaces the parameters; the first tier's ratio follows `params.mmr`."""
        market = self._market(market_id)
        self._validate_params(params)
        price = self._price_of(market_id)
        self._accrue_funding(market_id, price)
        market.params = params
        floors, mmrs = self._tier_arrays(market_id)
        mmrs[0] = params.mmr
        self._set_tiers(market_id, floors, mmrs)
        self._emit("MarketParamsSet", market_id, params)

    @transaction
    def set_tiers(self, market_id: int, floors: Sequence[int], mmrs: Sequence[int]) -> None:
        """setTiers: floors[0] == 0 and mmrs[0] == the market's mmr; both strictly increase."""
        market = self._market(market_id)
        if len(mmrs) == 0 or mmrs[0] != market.params.mmr:
            raise InvalidTier(0, 0 if len(floors) == 0 else floors[0], 0 if len(mmrs) == 0 else mmrs[0])
        self._set_tiers(market_id, floors, mmrs)

    @transaction
    def set_depth(self, market_id: int, depth2pct: int, sender: int | None = None) -> None:
        """setDepth: market makers set the book's depth (0 = no book)."""
        market = self._market(market_id)
        if depth2pct > self.MAX_DEPTH:
            raise InvalidParameter("depth2pct", depth2pct)
        if market.book_block == self.block_number and market.book_consumed != 0:
            # Requoting within a block keeps the walked price move: consumption scales with the
            # book, so the marginal impact is unchanged and stays inside the new book's end.
            old = market.params.depth2pct
            market.book_consumed = 0 if old == 0 else fp.s_mul_div_down(market.book_consumed, depth2pct, old)
        market.params = replace(market.params, depth2pct=depth2pct)
        self._emit("DepthSet", market_id, depth2pct, self.owner if sender is None else sender)

    # ==========================================================================================
    # COLLATERAL
    # ==========================================================================================

    @transaction
    def deposit(self, account: int, amount: int) -> None:
        """deposit: `account` deposits `amount` token units into its cross account."""
        self._deposit(account, amount, account)

    @transaction
    def deposit_for(self, account: int, amount: int, sender: int) -> None:
        """depositFor: `sender` deposits into `account`'s cross account."""
        if account == 0:
            raise InvalidCounterparty(account)
        self._deposit(account, amount, sender)

    @transaction
    def withdraw(self, account: int, amount: int) -> None:
        """withdraw: `amount` token units out of `account`'s cross account (AV - amount >= IM)."""
        if amount == 0:
            raise ZeroAmount()
        account_id = self._cross_id(account)
        wad = amount * self.token_scale
        self._debit(account_id, wad)
        self.token_balance -= amount  # _safeTransfer(msg.sender, amount)
        self._emit("Withdrawal", account_id, account, amount)

    @transaction
    def transfer_margin(self, owner: int, market_id: int, amount: int) -> None:
        """transferMargin: WAD from the cross account into the isolated bucket (> 0) or back (< 0)."""
        self._market(market_id)
        if amount == 0:
            raise ZeroAmount()
        cross_id = self._cross_id(owner)
        isolated_id = self.isolated_account_id(owner, market_id)
        source, target = (cross_id, isolated_id) if amount > 0 else (isolated_id, cross_id)
        wad = fp.abs(amount)
        self._debit(source, wad)
        self._credit(target, wad)
        self._emit("MarginTransferred", owner, market_id, amount)

    # ==========================================================================================
    # TRADING
    # ==========================================================================================

    @transaction
    def open_position(self, account: int, market_id: int, size_delta: int, price_limit: int | None = None) -> None:
        """openPosition: taker trade of `account`'s cross account against the vault.

        `price_limit` None: no limit (type(uint256).max for buys, 0 for sells)."""
        self._taker_trade(self._cross_id(account), market_id, size_delta, _no_limit(size_delta, price_limit))

    @transaction
    def open_isolated_position(
        self, account: int, market_id: int, size_delta: int, price_limit: int | None = None
    ) -> None:
        """openIsolatedPosition: as `open_position`, for `account`'s isolated bucket of `market_id`."""
        self._taker_trade(
            self.isolated_account_id(account, market_id), market_id, size_delta, _no_limit(size_delta, price_limit)
        )

    @transaction
    def settle_matched_fill(self, buyer: int, seller: int, market_id: int, size: int, price: int) -> None:
        """settleMatchedFill: operator-settled fill between two traders' cross accounts at `price`."""
        market = self._market(market_id)
        if size == 0:
            raise ZeroAmount()
        if buyer == self.vault or buyer == 0:
            raise InvalidCounterparty(buyer)
        if seller == self.vault or seller == buyer or seller == 0:
            raise InvalidCounterparty(seller)
        oracle_price = self._price_of(market_id)
        distance = price - oracle_price if price > oracle_price else oracle_price - price
        if fp.w_div_up(distance, oracle_price) > market.params.match_band:
            raise PriceOutsideBand(market_id, price, oracle_price, market.params.match_band)
        self._accrue_funding(market_id, oracle_price)
        signed_size = fp.to_int(size)
        long_before, short_before = market.long_open_interest, market.short_open_interest
        self._fill_and_check(self._cross_id(buyer), market_id, signed_size, price)
        self._fill_and_check(self._cross_id(seller), market_id, -signed_size, price)
        self._check_open_interest_cap(market_id, long_before, short_before)

    @transaction
    def accrue_funding(self, market_id: int) -> None:
        """accrueFunding: accrues the market's funding index up to now."""
        self._market(market_id)
        self._accrue_funding(market_id, self._price_of(market_id))

    @transaction
    def settle_funding(self, account_id: int, market_id: int) -> None:
        """settleFunding: accrues the market and settles what `account_id` owes or is owed."""
        self._market(market_id)
        self._accrue_funding(market_id, self._price_of(market_id))
        self._settle_funding(account_id, market_id)

    # ==========================================================================================
    # INSURANCE FUND
    # ==========================================================================================

    @transaction
    def deposit_insurance(self, amount: int, sender: int | None = None) -> None:
        """depositInsurance: adds `amount` token units to the insurance fund."""
        if amount == 0:
            raise ZeroAmount()
        self._pull_tokens(amount)
        self.insurance_fund += amount * self.token_scale
        self._emit("InsuranceFundDeposit", self.owner if sender is None else sender, amount)

    # ==========================================================================================
    # LIQUIDATION HOOKS: called by the liquidation engine, which holds the liquidation rules
    # ==========================================================================================

    @transaction
    def liquidation_fill(self, account_id: int, market_id: int, size_delta: int) -> int:
        """liquidationFill: closes `size_delta` against the vault at the depth-curve price, no margin
        or vault-capacity checks (only the book's end stops it). Returns the fill price."""
        market = self._market(market_id)
        if size_delta == 0:
            raise ZeroAmount()
        price = self._price_of(market_id)
        self._accrue_funding(market_id, price)
        fill_price = self._walk_book(market, market_id, price, size_delta)
        self._fill(account_id, market_id, size_delta, fill_price)
        self._fill(self._cross_id(self.vault), market_id, -size_delta, fill_price)
        return fill_price

    @transaction
    def adl_fill(self, account_id: int, counterparty_id: int, market_id: int, size_delta: int, price: int) -> None:
        """adlFill: `account_id` trades `size_delta` with `counterparty_id` at `price`, outside the book."""
        self._market(market_id)
        if size_delta == 0:
            raise ZeroAmount()
        self._accrue_funding(market_id, self._price_of(market_id))
        self._fill(account_id, market_id, size_delta, price)
        self._fill(counterparty_id, market_id, -size_delta, price)

    @transaction
    def charge_penalty(self, account_id: int, keeper: int, to_keeper: int, to_fund: int) -> None:
        """chargePenalty: `to_keeper` to the keeper's cross account, `to_fund` to the insurance fund."""
        self._account(account_id).collateral -= fp.to_int(to_keeper + to_fund)
        if to_keeper != 0:
            keeper_id = self._cross_id(keeper)
            self._register(keeper_id)
            self._account(keeper_id).collateral += fp.to_int(to_keeper)
        self.insurance_fund += to_fund
        self._emit("PenaltyCharged", account_id, keeper, to_keeper, to_fund)

    @transaction
    def settle_deficit(self, account_id: int, market_id: int, socialize: bool) -> tuple[int, int, int]:
        """settleDeficit: the loss waterfall. For an account that still holds a position the fund
        only earmarks what it can of the deficit now (fund_reserve, raised or lowered to it) and
        (0, 0, 0) is returned. Once the account is closed out (its earmark went back to the fund
        with its last position) the fund pays what it can; the rest is spread over the open
        positions of `market_id` (all someone else's) when `socialize` (and there are any), else
        recorded as bad debt. The account ends at zero value. Returns (fromFund, socialized,
        writtenOff)."""
        market = self._market(market_id)
        value, _, _ = self._health(account_id)
        deficit = -value if value < 0 else 0
        if self.market_mask_of(account_id) != 0:
            self._earmark_deficit(account_id, market_id, deficit)
            return 0, 0, 0
        # The close-out fill (_fill) has already released the account's earmark to the fund.
        if deficit == 0:
            return 0, 0, 0
        from_fund = fp.min(deficit, self.insurance_fund)
        self.insurance_fund -= from_fund
        rest = deficit - from_fund
        socialized = 0
        if rest != 0 and socialize:
            # The account is closed out, so every open position of the market is someone else's.
            others = (
                market.long_open_interest
                + market.short_open_interest
                + fp.abs(self._position(self._cross_id(self.vault), market_id).size)
            )
            if others != 0:
                delta = LiquidationMath.social_loss_index_delta(rest, others)
                market.social_loss_index += delta
                socialized = rest
                rest = 0
                self._emit("LossSocialized", market_id, account_id, socialized, delta)
        written_off = rest
        self.bad_debt += written_off
        self._account(account_id).collateral += fp.to_int(deficit)
        if from_fund != 0:
            self._emit("InsuranceFundPayment", account_id, market_id, from_fund)
        if written_off != 0:
            self._emit("BadDebtRecorded", account_id, market_id, written_off)
        return from_fund, socialized, written_off

    # ==========================================================================================
    # VIEWS
    # ==========================================================================================

    def bankruptcy_price(self, account: int, market_id: int) -> int:
        """bankruptcyPrice(address): of the cross account."""
        return self.bankruptcy_price_of(self._cross_id(account), market_id)

    def bankruptcy_price_of(self, account_id: int, market_id: int) -> int:
        """bankruptcyPriceOf: P - (AV + fund earmark) / size for the account's position in `market_id`."""
        self._market(market_id)
        size = self._position(account_id, market_id).size
        if size == 0:
            raise ZeroAmount()
        value, _, _ = self._health(account_id)
        value += fp.to_int(self.fund_reserve_of(account_id))
        return LiquidationMath.bankruptcy_price(self._price_of(market_id), value, size)

    def book_capacity(self, market_id: int, is_buy: bool) -> int:
        """bookCapacity: notional the book can still take this block in one direction."""
        market = self._market(market_id)
        consumed = market.book_consumed if market.book_block == self.block_number else 0
        return DepthCurve.capacity(consumed, market.params.depth2pct, market.params.max_impact, is_buy)

    def preview_liquidation_fill(self, account_id: int, market_id: int, size_delta: int) -> tuple[int, int, int]:
        """previewLiquidationFill: (fillPrice, valueAfter, mmAfter) that `liquidation_fill` would give now."""
        market = self._market(market_id)
        price = self._price_of(market_id)
        consumed = market.book_consumed if market.book_block == self.block_number else 0
        fill_price, _ = DepthCurve.fill(
            market_id, price, size_delta, consumed, market.params.depth2pct, market.params.max_impact
        )
        value_after, mm_after, _ = self._health(account_id)
        position = self._position(account_id, market_id)
        size, open_notional = position.size, position.open_notional
        new_size, new_open_notional, realized_pnl = PositionMath.apply_fill(size, open_notional, size_delta, fill_price)
        value_after += (
            realized_pnl
            - MarginMath.unrealized_pnl(size, open_notional, price)
            + MarginMath.unrealized_pnl(new_size, new_open_notional, price)
        )
        mm_after = (
            mm_after
            - self._position_maintenance_margin(market_id, size, price)
            + self._position_maintenance_margin(market_id, new_size, price)
        )
        return fill_price, value_after, mm_after

    def account_value(self, account: int) -> int:
        """accountValue: AV of the cross account."""
        return self._health(self._cross_id(account))[0]

    def maintenance_margin(self, account: int) -> int:
        """maintenanceMargin: MM of the cross account."""
        return self._health(self._cross_id(account))[1]

    def initial_margin(self, account: int) -> int:
        """initialMargin: IM of the cross account."""
        return self._health(self._cross_id(account))[2]

    def is_liquidatable(self, account: int) -> bool:
        """isLiquidatable: the cross account holds a position and AV < MM."""
        return self._is_liquidatable(self._cross_id(account))

    def is_account_liquidatable(self, account_id: int) -> bool:
        """isAccountLiquidatable: any account id (cross or isolated)."""
        return self._is_liquidatable(account_id)

    def get_position(self, account: int, market_id: int) -> tuple[int, int]:
        """getPosition: (size, openNotional) of the cross account."""
        position = self._position(self._cross_id(account), market_id)
        return position.size, position.open_notional

    def position_of(self, account_id: int, market_id: int) -> tuple[int, int, int]:
        """positionOf: (size, openNotional, fundingIndex) of any account id."""
        position = self._position(account_id, market_id)
        return position.size, position.open_notional, position.funding_index

    def fund_reserve_of(self, account_id: int) -> int:
        """fundReserveOf: the fund's earmark for the account's deficit."""
        return self.fund_reserve.get(account_id, 0)

    def collateral_of(self, account_id: int) -> int:
        """collateralOf."""
        return self._account(account_id).collateral

    def market_mask_of(self, account_id: int) -> int:
        """marketMaskOf: bit m set when the account has an open position in market m."""
        row = self._rows.get(account_id)
        if row is None:
            return 0
        return sum(1 << m for m in self._open_markets(row))

    def health(self, account_id: int) -> tuple[int, int, int]:
        """health: (AV, MM, IM) of any account id."""
        return self._health(account_id)

    def account_count(self) -> int:
        """accountCount."""
        return len(self.account_ids)

    def market_count(self) -> int:
        """marketCount."""
        return len(self.markets)

    def market_params(self, market_id: int) -> MarketParams:
        """marketParams."""
        return self._market(market_id).params

    def market_name(self, market_id: int) -> str:
        """marketName."""
        return self._market(market_id).name

    def tiers_of(self, market_id: int) -> tuple[list[int], list[int], list[int]]:
        """tiersOf: (floors, mmrs, deductions)."""
        self._market(market_id)
        tiers = self.tiers[market_id]
        return [t.floor for t in tiers], [t.mmr for t in tiers], [t.deduction for t in tiers]

    def quote(self, market_id: int, size_delta: int) -> int:
        """quote: the average price a fill of `size_delta` would get now."""
        market = self._market(market_id)
        if size_delta == 0:
            raise ZeroAmount()
        consumed = market.book_consumed if market.book_block == self.block_number else 0
        fill_price, _ = DepthCurve.fill(
            market_id,
            self._price_of(market_id),
            size_delta,
            consumed,
            market.params.depth2pct,
            market.params.max_impact,
        )
        return fill_price

    def isolated_account_id(self, account: int, market_id: int) -> int:
        """isolatedAccountId: address | (marketId + 1) << 160."""
        return account | ((market_id + 1) << ADDRESS_BITS)

    # ==========================================================================================
    # INTERNAL: ACCOUNTS AND COLLATERAL
    # ==========================================================================================

    def _cross_id(self, account: int) -> int:
        return account

    def _register(self, account_id: int) -> None:
        account = self._account(account_id)
        if account.registered:
            return
        row = self._writable_row(account_id)
        self._registered[row] = True
        self.account_ids.append(account_id)
        self._registered_rows.append(row)
        self._emit("AccountRegistered", account_id, len(self.account_ids) - 1)

    def _deposit(self, account: int, amount: int, sender: int) -> None:
        if amount == 0:
            raise ZeroAmount()
        account_id = self._cross_id(account)
        self._pull_tokens(amount)
        self._credit(account_id, amount * self.token_scale)
        self._emit("Deposit", account_id, sender, amount)

    def _credit(self, account_id: int, wad: int) -> None:
        """Registers the account and credits it `wad`; it must then hold at least `min_collateral`."""
        self._register(account_id)
        account = self._account(account_id)
        account.collateral += fp.to_int(wad)
        collateral = account.collateral
        minimum = self.min_collateral
        if collateral < fp.to_int(minimum):
            raise CollateralBelowMinimum(account_id, collateral, minimum)

    def _debit(self, account_id: int, wad: int) -> None:
        """Takes `wad` out of an account that must stay at or above its initial margin."""
        account = self._account(account_id)
        if account.collateral < fp.to_int(wad):
            raise InsufficientCollateral(account_id, account.collateral, wad)
        account.collateral -= fp.to_int(wad)
        value, _, im = self._health(account_id)
        if value < fp.to_int(im):
            raise InsufficientMargin(account_id, value, im)

    def _pull_tokens(self, amount: int) -> None:
        self.token_balance += amount

    # ==========================================================================================
    # INTERNAL: TRADING
    # ==========================================================================================

    def _taker_trade(self, account_id: int, market_id: int, size_delta: int, price_limit: int) -> None:
        market = self._market(market_id)
        if size_delta == 0:
            raise ZeroAmount()
        vault_account = self.vault
        # The vault trades only as the counterparty, from no bucket of its own.
        if vault_account == 0 or (account_id & ADDRESS_MASK) == vault_account:
            raise InvalidCounterparty(vault_account)
        price = self._price_of(market_id)
        self._accrue_funding(market_id, price)

        fill_price = self._walk_book(market, market_id, price, size_delta)
        if (fill_price > price_limit) if size_delta > 0 else (fill_price < price_limit):
            raise PriceLimitExceeded(market_id, fill_price, price_limit)

        long_before, short_before = market.long_open_interest, market.short_open_interest
        self._fill_and_check(account_id, market_id, size_delta, fill_price)
        self._fill_vault(self._cross_id(vault_account), market_id, -size_delta, fill_price)
        self._check_open_interest_cap(market_id, long_before, short_before)

    def _walk_book(self, market: Market, market_id: int, price: int, size_delta: int) -> int:
        """Walks the book at the oracle price; consumption accumulates within a block."""
        if market.book_block != self.block_number:
            market.book_block = self.block_number
            market.book_consumed = 0
        fill_price, consumed_after = DepthCurve.fill(
            market_id, price, size_delta, market.book_consumed, market.params.depth2pct, market.params.max_impact
        )
        market.book_consumed = consumed_after
        return fill_price

    def _fill_and_check(self, account_id: int, market_id: int, size_delta: int, fill_price: int) -> None:
        """An increase (or a flip) needs AV >= IM after it; a reduction may not worsen AV < 0."""
        value_before, _, _ = self._health(account_id)
        old_size = self._position(account_id, market_id).size
        new_size = self._fill(account_id, market_id, size_delta, fill_price)
        notional = fp.w_mul_down(fp.abs(new_size), self._price_of(market_id))
        minimum = self._market(market_id).params.min_position_notional
        if new_size != 0 and notional < minimum:
            raise PositionBelowMinimum(account_id, market_id, notional, minimum)
        value_after, _, im = self._health(account_id)
        if self._increases(old_size, new_size):
            if value_after < fp.to_int(im):
                raise InsufficientMargin(account_id, value_after, im)
        elif value_after < 0 and value_after < value_before:
            raise WorsensBadDebt(account_id, value_before, value_after)
        elif value_after < 0 and self.market_mask_of(account_id) == 0:
            # Only the liquidation engine closes out an account in deficit: it runs the waterfall.
            raise DeficitCloseOut(account_id, value_after)

    def _fill_vault(self, vault_id: int, market_id: int, size_delta: int, fill_price: int) -> None:
        """The vault's side of a taker fill: it must stay >= its IM when its exposure grows."""
        old_size = self._position(vault_id, market_id).size
        new_size = self._fill(vault_id, market_id, size_delta, fill_price)
        if self._increases(old_size, new_size):
            value, _, im = self._health(vault_id)
            if value < fp.to_int(im):
                raise VaultCapacityExceeded(value, im)

    def _fill(self, account_id: int, market_id: int, size_delta: int, fill_price: int) -> int:
        """Settles the position's funding and social loss, applies the fill, realises PnL."""
        # Every account holding a position is in the registry (balanceSheet, healthRange, ADL).
        self._register(account_id)
        self._settle_funding(account_id, market_id)
        self._settle_social_loss(account_id, market_id)
        position = self._position(account_id, market_id)
        account = self._account(account_id)
        new_size, new_open_notional, realized_pnl = PositionMath.apply_fill(
            position.size, position.open_notional, size_delta, fill_price
        )
        position.size = new_size
        position.open_notional = new_open_notional
        account.collateral += realized_pnl
        # marketMask: derived from the size (see the module docstring).
        # A closed-out account's earmark goes back to the fund, which then pays what is owed.
        if self.fund_reserve_of(account_id) != 0 and self.market_mask_of(account_id) == 0:
            self._set_fund_reserve(account_id, market_id, 0)
        if account_id != self._cross_id(self.vault):
            self._update_open_interest(market_id, size_delta, new_size)
        self._emit(
            "PositionChanged", account_id, market_id, size_delta, fill_price, new_size, new_open_notional, realized_pnl
        )
        return new_size

    def _earmark_deficit(self, account_id: int, market_id: int, deficit: int) -> None:
        """The account's earmark becomes its deficit, as far as the free fund reaches."""
        self._set_fund_reserve(account_id, market_id, fp.min(deficit, self.fund_reserve_of(account_id) + self.insurance_fund))

    def _set_fund_reserve(self, account_id: int, market_id: int, target: int) -> None:
        """Moves the account's earmark to `target`, between the free fund and the reserved part."""
        reserved = self.fund_reserve_of(account_id)
        if target == reserved:
            return
        if target:
            self.fund_reserve[account_id] = target
        else:
            del self.fund_reserve[account_id]
        if target > reserved:
            self.insurance_fund -= target - reserved
            self.insurance_fund_reserved += target - reserved
            self._emit("InsuranceFundReserved", account_id, market_id, target - reserved, target)
        else:
            self.insurance_fund += reserved - target
            self.insurance_fund_reserved -= reserved - target
            self._emit("InsuranceFundReleased", account_id, market_id, reserved - target, target)

    @staticmethod
    def _increases(old_size: int, new_size: int) -> bool:
        if new_size == 0:
            return False
        if old_size == 0 or (old_size > 0) != (new_size > 0):
            return True
        return fp.abs(new_size) > fp.abs(old_size)

    def _update_open_interest(self, market_id: int, size_delta: int, new_size: int) -> None:
        """Trader open interest; the vault's inventory is tracked by its position."""
        market = self.markets[market_id]
        old_size = new_size - size_delta
        if old_size > 0:
            market.long_open_interest -= old_size
        else:
            market.short_open_interest -= -old_size
        if new_size > 0:
            market.long_open_interest += new_size
        else:
            market.short_open_interest += -new_size

    def _check_open_interest_cap(self, market_id: int, long_before: int, short_before: int) -> None:
        """A side above the cap may not grow; reductions are always allowed, even over a cap that
        was lowered after the positions opened."""
        market = self.markets[market_id]
        cap = market.params.max_open_interest
        if cap == 0:
            return
        if market.long_open_interest > cap and market.long_open_interest > long_before:
            raise OpenInterestCapExceeded(market_id, market.long_open_interest, cap)
        if market.short_open_interest > cap and market.short_open_interest > short_before:
            raise OpenInterestCapExceeded(market_id, market.short_open_interest, cap)

    # ==========================================================================================
    # INTERNAL: FUNDING
    # ==========================================================================================

    def _funding_rate(self, market_id: int) -> int:
        """Skew = net taker position = minus the vault's inventory."""
        params = self.markets[market_id].params
        skew = -self._position(self._cross_id(self.vault), market_id).size
        return FundingMath.rate(skew, params.skew_scale, params.max_funding_rate)

    def _current_funding_index(self, market_id: int, price: int) -> int:
        market = self.markets[market_id]
        return FundingMath.accrue(
            market.funding_index, self._funding_rate(market_id), price, self.timestamp - market.last_funding_time
        )

    def _accrue_funding(self, market_id: int, price: int) -> None:
        market = self.markets[market_id]
        if market.last_funding_time == self.timestamp:
            return
        index = self._current_funding_index(market_id, price)
        market.funding_index = index
        market.last_funding_time = self.timestamp
        self._emit("FundingAccrued", market_id, index, self._funding_rate(market_id))

    def _settle_funding(self, account_id: int, market_id: int) -> None:
        """Requires the market's index accrued to now."""
        position = self._position(account_id, market_id)
        index = self.markets[market_id].funding_index
        amount = FundingMath.owed(position.size, index, position.funding_index)
        position.funding_index = index
        if amount == 0:
            return
        self._account(account_id).collateral -= amount
        self._emit("FundingSettled", account_id, market_id, amount)

    # ==========================================================================================
    # INTERNAL: SOCIALISED LOSS
    # ==========================================================================================

    def _pending_social_loss(self, position: PositionRef, market_id: int) -> int:
        return LiquidationMath.social_loss_owed(
            position.size, self.markets[market_id].social_loss_index, position.social_loss_index
        )

    def _settle_social_loss(self, account_id: int, market_id: int) -> None:
        position = self._position(account_id, market_id)
        amount = self._pending_social_loss(position, market_id)
        position.social_loss_index = self.markets[market_id].social_loss_index
        if amount == 0:
            return
        self._account(account_id).collateral -= fp.to_int(amount)
        self._emit("SocialLossSettled", account_id, market_id, amount)

    # ==========================================================================================
    # INTERNAL: HEALTH
    # ==========================================================================================

    def _health(self, account_id: int) -> tuple[int, int, int]:
        """AV = collateral + sum(uPnL - funding owed - pending social loss); MM and IM summed."""
        value = self._account(account_id).collateral
        mm = im = 0
        row = self._rows.get(account_id)
        if row is None:
            return value, mm, im
        for m in self._open_markets(row):  # the market mask's bits
            position = self._position(account_id, m)
            price = self._price_of(m)
            value += (
                MarginMath.unrealized_pnl(position.size, position.open_notional, price)
                - FundingMath.owed(position.size, self._current_funding_index(m, price), position.funding_index)
                - fp.to_int(self._pending_social_loss(position, m))
            )
            position_notional = MarginMath.notional(position.size, price)
            position_mm = self._position_maintenance_margin(m, position.size, price)
            mm += position_mm
            im += MarginMath.initial_margin(position_notional, self.markets[m].params.imr, position_mm)
        return value, mm, im

    def _position_maintenance_margin(self, market_id: int, size: int, price: int) -> int:
        return MarginMath.maintenance_margin(MarginMath.notional(size, price), self.tiers[market_id])

    def _is_liquidatable(self, account_id: int) -> bool:
        if self.market_mask_of(account_id) == 0:
            return False
        value, mm, _ = self._health(account_id)
        return value < fp.to_int(mm)

    # ==========================================================================================
    # INTERNAL: MARKETS
    # ==========================================================================================

    def _market(self, market_id: int) -> Market:
        if not 0 <= market_id < len(self.markets):
            raise UnknownMarket(market_id)
        return self.markets[market_id]

    @staticmethod
    def _validate_params(p: MarketParams) -> None:
        if p.imr == 0 or p.imr > WAD:
            raise InvalidParameter("imr", p.imr)
        if p.mmr > p.imr:
            raise InvalidParameter("mmr", p.mmr)
        if p.liquidation_fee >= WAD:
            raise InvalidParameter("liquidationFee", p.liquidation_fee)
        if p.keeper_share > WAD:
            raise InvalidParameter("keeperShare", p.keeper_share)
        if p.max_impact == 0 or p.max_impact >= WAD:
            raise InvalidParameter("maxImpact", p.max_impact)
        if p.depth2pct > PerpEngine.MAX_DEPTH:
            raise InvalidParameter("depth2pct", p.depth2pct)
        if p.match_band >= WAD:
            raise InvalidParameter("matchBand", p.match_band)
        if p.max_funding_rate > WAD:
            raise InvalidParameter("maxFundingRate", p.max_funding_rate)
        if p.max_funding_rate != 0 and p.skew_scale == 0:
            raise InvalidParameter("skewScale", p.skew_scale)

    def _set_tiers(self, market_id: int, floors: Sequence[int], mmrs: Sequence[int]) -> None:
        if len(floors) != len(mmrs) or len(floors) == 0 or floors[0] != 0:
            raise InvalidTier(0, 0 if len(floors) == 0 else floors[0], 0 if len(mmrs) == 0 else mmrs[0])
        tiers = [Tier(floor=0, mmr=mmrs[0], deduction=0)]
        for k in range(1, len(floors)):
            previous = tiers[k - 1]
            if floors[k] <= previous.floor or mmrs[k] <= previous.mmr or mmrs[k] >= WAD:
                raise InvalidTier(k, floors[k], mmrs[k])
            deduction = MarginMath.tier_deduction(previous.deduction, floors[k], mmrs[k], previous.mmr)
            tiers.append(Tier(floor=floors[k], mmr=mmrs[k], deduction=deduction))
        self.tiers[market_id] = tuple(tiers)
        self._emit("TiersSet", market_id, list(floors), list(mmrs))

    def _tier_arrays(self, market_id: int) -> tuple[list[int], list[int]]:
        tiers = self.tiers[market_id]
        return [t.floor for t in tiers], [t.mmr for t in tiers]


def _copy(market: Market) -> Market:
    """A shallow copy of a market for a transaction's snapshot (`dataclasses.replace` runs the
    constructor: a tenth of a model run's time in the hot loop)."""
    saved = object.__new__(Market)
    saved.__dict__.update(market.__dict__)
    return saved


def _no_limit(size_delta: int, price_limit: int | None) -> int:
    if price_limit is not None:
        return price_limit
    return fp.MAX_UINT256 if size_delta > 0 else 0
