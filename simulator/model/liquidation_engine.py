"""Mirror of contracts/liquidation/LiquidationEngine.sol: permissionless liquidation, the loss
waterfall and ADL over the engine.

A separate contract, as on chain: it holds the engine it serves (`engine`, IPerpEngine) and reads
prices from the engine's oracle (`oracle`); where the contract calls ``engine.health(...)``,
``engine.liquidationFill(...)`` ... the model calls ``self.engine.health(...)``,
``self.engine.liquidation_fill(...)`` ..., the engine's public, same-named functions, and nothing
else of it (public storage such as ``engine.vault()`` is read as the attribute ``engine.vault``).
Its own storage (liquidation params, rate windows, owner) lives here. It runs on the engine's
chain (`chain`, state.ChainState): block time, the event log (``chain._emit``, the contract's
``emit``), and transactions that revert its storage and the engine's together. The caller
(``msg.sender``) is the `keeper` argument. Sections and function names follow the contract.

The model's fast, vectorised views of it (many accounts at once) live beside it, in
liquidation_views.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

from simulator.market_spec import AdlRanking, BadDebtPolicy
from simulator.model import fixed_point as fp
from simulator.model import liquidation as LiquidationMath
from simulator.model import margin as MarginMath
from simulator.model.errors import (
    AdlIneligible,
    AdlInsufficient,
    AdlNotAboveLevel,
    AdlNotRequired,
    AdlNotSortedById,
    AdlOutOfOrder,
    AdlUnusedCounterparties,
    InvalidParameter,
    LengthMismatch,
    LiquidationWorsensHealth,
    LiquidityVoid,
    NoPosition,
    NotLiquidatable,
    RateLimited,
    UnknownMarket,
    UseDeleverage,
    VaultAccount,
    ZeroAmount,
)
from simulator.model.perp_engine import PerpEngine
from simulator.model.state import ChainState, transaction
from simulator.units import WAD


@dataclass(frozen=True)
class LiquidationParams:
    """struct LiquidationParams (ILiquidationEngine.sol), same fields in the same order."""

    slice_threshold: int
    slice_fraction: int
    rate_limit_notional: int
    rate_limit_window: int
    policy: BadDebtPolicy = BadDebtPolicy.ADL
    ranking: AdlRanking = AdlRanking.PNL_LEVERAGE

    @classmethod
    def from_spec(cls, spec) -> "LiquidationParams":
        """From a `simulator.chain.deploy.MarketSpec` (the tuple its `liquidation_params()` sends)."""
        threshold, fraction, notional, window, policy, ranking = spec.liquidation_params()
        return cls(threshold, fraction, notional, window, BadDebtPolicy(policy), AdlRanking(ranking))


class Action(IntEnum):
    """What a liquidation call would do now (LiquidationEngine.Action)."""

    FILL = 0
    USE_ADL = 1
    LIQUIDITY_VOID = 2
    RATE_LIMITED = 3
    WORSENS_HEALTH = 4


@dataclass
class Plan:
    """struct Plan."""

    action: Action = Action.FILL
    position_size: int = 0
    size: int = 0
    size_delta: int = 0
    price: int = 0
    value: int = 0
    mm: int = 0
    value_after: int = 0
    mm_after: int = 0
    window_end: int = 0


@dataclass
class RateWindow:
    """struct RateWindow."""

    start: int = 0
    used: int = 0


class LiquidationEngine:
    """The liquidation engine's storage and functions, over the engine it holds (`engine`)."""

    def __init__(self, engine: PerpEngine, owner: int):
        """constructor(perpEngine): deployed by `owner` (msg.sender), on the engine's chain."""
        # STORAGE
        self.engine = engine
        # The chain the engine runs on (the model's engine carries it: see state.py). The
        # contract's `oracle` is the engine's: see the property below.
        self.chain: ChainState = engine.chain
        # Ownership transfers and onlyOwner are not modelled (callers are passed explicitly, as
        # in the model's engine); `liquidate_account`'s keeper defaults to the owner.
        self.owner = owner
        self.pending_owner = 0
        self._liquidation_params: dict[int, LiquidationParams] = {}  # params
        self.configured: dict[int, bool] = {}
        self.rate_windows: dict[int, RateWindow] = {}
        self.chain.add_contract(self)

    @property
    def oracle(self):
        """oracle: the engine's (`engine.oracle()`, immutable on chain): the router's mirror, or on a
        chain without one the unguarded prices of `set_price` (state.UnguardedOracle)."""
        return self.engine.oracle

    def _snapshot(self) -> dict:
        """This contract's storage, saved when a transaction begins (state.ChainState)."""
        return {
            "owners": (self.owner, self.pending_owner),
            "liquidation_params": dict(self._liquidation_params),
            "configured": dict(self.configured),
            "rate_windows": {m: RateWindow(w.start, w.used) for m, w in self.rate_windows.items()},
        }

    def _restore(self, snapshot: dict) -> None:
        self.owner, self.pending_owner = snapshot["owners"]
        self._liquidation_params = snapshot["liquidation_params"]
        self.configured = snapshot["configured"]
        self.rate_windows = snapshot["rate_windows"]

    # ==========================================================================================
    # ADMINISTRATION
    # ==========================================================================================

    @transaction
    def set_liquidation_params(self, market_id: int, p: LiquidationParams) -> None:
        """setLiquidationParams: the market's rules; resets its rate window."""
        self._check_market(market_id)
        if p.slice_fraction == 0 or p.slice_fraction > WAD:
            raise InvalidParameter("sliceFraction", p.slice_fraction)
        if p.rate_limit_notional != 0 and p.rate_limit_window == 0:
            raise InvalidParameter("rateLimitWindow", p.rate_limit_window)
        self._liquidation_params[market_id] = p
        self.configured[market_id] = True
        self.rate_windows.pop(market_id, None)
        self.chain._emit("LiquidationParamsSet", market_id, p)

    def liquidation_params(self, market_id: int) -> LiquidationParams:
        """liquidationParams: an unconfigured market closes whole positions under ADL / PNL_LEVERAGE."""
        self._check_market(market_id)
        if self.configured.get(market_id, False):
            return self._liquidation_params[market_id]
        return LiquidationParams(slice_threshold=fp.MAX_UINT256, slice_fraction=WAD, rate_limit_notional=0,
                                 rate_limit_window=0)

    # ==========================================================================================
    # LIQUIDATION
    # ==========================================================================================

    def liquidate(self, account: int, market_id: int, max_size: int = fp.MAX_UINT256, keeper: int | None = None) -> int:
        """liquidate: a slice of `account`'s cross position."""
        return self.liquidate_account(account, market_id, max_size, keeper)

    def liquidate_isolated(
        self, account: int, market_id: int, max_size: int = fp.MAX_UINT256, keeper: int | None = None
    ) -> int:
        """liquidateIsolated: an isolated bucket, judged on its own margin."""
        return self.liquidate_account(self.engine.isolated_account_id(account, market_id), market_id, max_size, keeper)

    @transaction
    def liquidate_account(
        self, account_id: int, market_id: int, max_size: int = fp.MAX_UINT256, keeper: int | None = None
    ) -> int:
        """liquidateAccount: closes a slice (at most `max_size`) of any account id against the vault;
        `keeper` is msg.sender (default: the deployer). Returns the size closed."""
        keeper = self.owner if keeper is None else keeper
        if max_size == 0:
            raise ZeroAmount()
        lp = self.liquidation_params(market_id)
        plan = self._plan(account_id, market_id, max_size, lp)
        if plan.action == Action.USE_ADL:
            shortfall = fp.MAX_UINT256 if plan.size == 0 or plan.value_after >= 0 else -plan.value_after
            raise UseDeleverage(account_id, market_id, shortfall, self._fund_for(account_id))
        if plan.action == Action.LIQUIDITY_VOID:
            raise LiquidityVoid(market_id, plan.size)
        if plan.action == Action.RATE_LIMITED:
            raise RateLimited(market_id, plan.window_end)
        if plan.action == Action.WORSENS_HEALTH:
            raise LiquidationWorsensHealth(account_id, plan.value - plan.mm, plan.value_after - plan.mm_after)

        engine = self.engine
        fill_price = engine.liquidation_fill(account_id, market_id, plan.size_delta)
        closed_notional = fp.w_mul_down(plan.size, plan.price)
        penalty = self._penalty(plan, closed_notional, engine.market_params(market_id).liquidation_fee)
        keeper_reward = 0
        if penalty != 0:
            keeper_reward = fp.w_mul_down(penalty, engine.market_params(market_id).keeper_share)
            engine.charge_penalty(account_id, keeper, keeper_reward, penalty - keeper_reward)
        fund_paid, socialized, bad_debt = engine.settle_deficit(
            account_id, market_id, lp.policy == BadDebtPolicy.SOCIALIZE
        )
        if lp.rate_limit_notional != 0:
            self._use_rate_limit(market_id, lp.rate_limit_window, closed_notional)
        self.chain._emit(
            "Liquidation",
            account_id,
            market_id,
            keeper,
            plan.size_delta,
            fill_price,
            plan.price,
            penalty,
            keeper_reward,
            fund_paid,
            socialized,
            bad_debt,
        )
        return plan.size

    # ==========================================================================================
    # ADL
    # ==========================================================================================

    def deleverage(self, account: int, market_id: int, counterparties: Sequence[int]) -> None:
        """deleverage: ADL of `account`'s cross position."""
        self.deleverage_account(account, market_id, counterparties)

    @transaction
    def deleverage_account(self, account_id: int, market_id: int, counterparties: Sequence[int]) -> None:
        """deleverageAccount: closes the whole position against `counterparties` (in ranking order)
        at the bankruptcy price; under the rankings by score (not LEVERAGE_DRAIN) a list whose
        winners hold less closes what they hold (a partial ADL)."""
        counterparties = list(counterparties)
        lp = self.liquidation_params(market_id)
        if lp.policy != BadDebtPolicy.ADL:
            raise AdlNotRequired(account_id, market_id)
        plan = self._plan(account_id, market_id, fp.MAX_UINT256, lp)
        if plan.action != Action.USE_ADL:
            raise AdlNotRequired(account_id, market_id)
        engine = self.engine
        bankruptcy_price = engine.bankruptcy_price_of(account_id, market_id)
        total = fp.abs(plan.position_size)
        if lp.ranking == AdlRanking.LEVERAGE_DRAIN:
            takes = self._drain_takes(account_id, market_id, plan, counterparties, total)
        elif self._by_score(lp.ranking):
            takes = self._ranked_takes(account_id, market_id, plan, counterparties, total, lp.ranking)
        else:
            takes = self._pro_rata_takes(account_id, market_id, plan, counterparties, total, lp.ranking)
        if lp.ranking == AdlRanking.CAPPED_PRO_RATA:
            prices = self._haircut_prices(market_id, plan, counterparties, takes, bankruptcy_price)
        else:
            prices = self._same_price(len(counterparties), bankruptcy_price)
        closed = 0
        for i, counterparty in enumerate(counterparties):
            # A dust winner's pro-rata share can round to nothing: it gives up nothing, and the
            # others' fills close the position (a fill of 0 would revert and stall the ADL).
            if takes[i] == 0:
                continue
            # The bankrupt side closes: a long sells (negative delta), a short buys.
            delta = -takes[i] if plan.position_size > 0 else takes[i]
            engine.adl_fill(account_id, counterparty, market_id, delta, prices[i])
            self.chain._emit("AdlFill", account_id, counterparty, market_id, delta, prices[i], plan.price)
            closed += takes[i]
        if lp.ranking == AdlRanking.QUEUE:
            self._close_queue_rest(market_id, plan, counterparties, bankruptcy_price)
        # Closing the whole position at the bankruptcy price leaves the account at or above zero
        # value, and this only settles rounding dust if anything else moved it; after a partial
        # ADL it earmarks the deficit the open rest carries.
        engine.settle_deficit(account_id, market_id, False)
        self.chain._emit(
            "Deleveraged",
            account_id,
            market_id,
            closed if plan.position_size > 0 else -closed,
            bankruptcy_price,
            plan.price,
            plan.value,
            len(counterparties),
        )

    # ==========================================================================================
    # VIEWS
    # ==========================================================================================

    def adl_required(self, account_id: int, market_id: int) -> bool:
        """adlRequired: policy ADL, liquidatable, and the book or the fund cannot absorb the loss (never
        the vault: false, not a VaultAccount revert)."""
        lp = self.liquidation_params(market_id)
        engine = self.engine
        if account_id == engine.vault:
            return False
        if lp.policy != BadDebtPolicy.ADL or not engine.is_account_liquidatable(account_id):
            return False
        size, _, _ = engine.position_of(account_id, market_id)
        if size == 0:
            return False
        return self._plan(account_id, market_id, fp.MAX_UINT256, lp).action == Action.USE_ADL

    def adl_ranking(self, market_id: int, bankrupt_side: int) -> tuple[list[int], list[int]]:
        """adlRanking: eligible winners against a position of sign `bankrupt_side`, with their scores,
        in the order `deleverage` expects (score desc then id asc; or id asc under PRO_RATA).

        One account at a time, as the contract; liquidation_views.adl_ranking gives the same answer
        vectorised over the registered accounts."""
        self._check_market(market_id)
        price = self.oracle.price(market_id)
        engine = self.engine
        n = engine.account_count()
        ids: list[int] = []
        scores: list[int] = []
        ranking = self.liquidation_params(market_id).ranking
        for i in range(n):
            account_id = engine.account_ids[i]
            eligible, _, _, score = self._candidate(account_id, market_id, bankrupt_side, price, ranking)
            if not eligible:
                continue
            ids.append(account_id)
            scores.append(score)
        return self._sort(ids, scores, self._by_score(ranking))

    # ==========================================================================================
    # KEEPER VIEWS: many accounts in one call
    # ==========================================================================================

    def adl_required_many(self, account_ids: Sequence[int], market_ids: Sequence[int]) -> list[bool]:
        """adlRequiredMany (liquidation_views.adl_required_many: the same answers, faster)."""
        self._check_pairs(account_ids, market_ids)
        return [self.adl_required(a, m) for a, m in zip(account_ids, market_ids)]

    def position_sizes(self, account_ids: Sequence[int], market_id: int) -> list[int]:
        """positionSizes."""
        self._check_market(market_id)
        engine = self.engine
        return [engine.position_of(a, market_id)[0] for a in account_ids]

    def market_masks_and_reserves(self, account_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """marketMasksAndReserves."""
        engine = self.engine
        return [engine.market_mask_of(a) for a in account_ids], [engine.fund_reserve_of(a) for a in account_ids]

    def unrealized_pnls(self, account_ids: Sequence[int], market_ids: Sequence[int]) -> list[int]:
        """unrealizedPnls: each (account, market) position's uPnL at the oracle price (0 without one)."""
        self._check_pairs(account_ids, market_ids)
        engine = self.engine
        pnls = []
        for account_id, market_id in zip(account_ids, market_ids):
            self._check_market(market_id)
            size, open_notional, _ = engine.position_of(account_id, market_id)
            pnls.append(
                0 if size == 0 else int(MarginMath.unrealized_pnl(size, open_notional, self.oracle.price(market_id)))
            )
        return pnls

    # ==========================================================================================
    # INTERNAL: PLANNING
    # ==========================================================================================

    def _plan(self, account_id: int, market_id: int, max_size: int, lp: LiquidationParams) -> Plan:
        plan = Plan()
        engine = self.engine
        if account_id == engine.vault:
            raise VaultAccount(account_id)
        plan.position_size, _, _ = engine.position_of(account_id, market_id)
        if plan.position_size == 0:
            raise NoPosition(account_id, market_id)
        plan.value, plan.mm, _ = engine.health(account_id)
        if plan.value >= plan.mm:
            raise NotLiquidatable(account_id, plan.value, plan.mm)
        plan.price = self.oracle.price(market_id)

        abs_size = fp.abs(plan.position_size)
        rate_room, plan.window_end = self._rate_room(market_id, lp, plan.price)
        book_room = fp.w_div_down(engine.book_capacity(market_id, plan.position_size < 0), plan.price)
        wanted = LiquidationMath.slice_size(abs_size, plan.price, lp.slice_threshold, lp.slice_fraction, max_size)
        plan.size = fp.min(wanted, fp.min(rate_room, book_room))
        if plan.size == 0:
            plan.action = Action.RATE_LIMITED if wanted > 0 and rate_room == 0 else self._void_action(lp)
            return plan
        self._preview(account_id, market_id, plan)
        if plan.size < abs_size and plan.value_after - plan.mm_after < plan.value - plan.mm:
            # A slice that would leave the account less healthy (the book is too thin for it):
            # close the whole position instead, if the rate limit, the caller and the book allow.
            if abs_size > rate_room:
                plan.action = Action.RATE_LIMITED
            elif abs_size > max_size:
                plan.action = Action.WORSENS_HEALTH
            elif abs_size > book_room:
                plan.action = self._void_action(lp)
            else:
                plan.size = abs_size
                self._preview(account_id, market_id, plan)
            if plan.action != Action.FILL:
                return plan
        if lp.policy == BadDebtPolicy.ADL and plan.value_after < 0 and -plan.value_after > self._fund_for(account_id):
            plan.action = Action.USE_ADL
        return plan

    def _fund_for(self, account_id: int) -> int:
        """What the fund can pay for this account: the free fund plus what it earmarked for it."""
        engine = self.engine
        return engine.insurance_fund + engine.fund_reserve_of(account_id)

    def _preview(self, account_id: int, market_id: int, plan: Plan) -> None:
        plan.size_delta = -plan.size if plan.position_size > 0 else plan.size
        _, plan.value_after, plan.mm_after = self.engine.preview_liquidation_fill(
            account_id, market_id, plan.size_delta
        )

    @staticmethod
    def _void_action(lp: LiquidationParams) -> Action:
        return Action.USE_ADL if lp.policy == BadDebtPolicy.ADL else Action.LIQUIDITY_VOID

    @staticmethod
    def _penalty(plan: Plan, closed_notional: int, liquidation_fee: int) -> int:
        """Penalty from the equity left after the fill; on a partial close also no more than the
        fill improved the account's health (AV - MM)."""
        penalty = LiquidationMath.penalty(closed_notional, liquidation_fee, plan.value_after)
        if plan.size < fp.abs(plan.position_size):
            gain = (plan.value_after - plan.mm_after) - (plan.value - plan.mm)
            penalty = fp.min(penalty, gain) if gain > 0 else 0
        return penalty

    def _rate_room(self, market_id: int, lp: LiquidationParams, price: int) -> tuple[int, int]:
        """(size the rate limit still allows in this window, window end); all of it when disabled."""
        if lp.rate_limit_notional == 0:
            return fp.MAX_UINT256, 0
        now = self.chain.timestamp
        stored = self.rate_windows.get(market_id, RateWindow())
        window = RateWindow(stored.start, stored.used)
        if now >= window.start + lp.rate_limit_window:
            # A new window starts with this call (`_use_rate_limit` records it).
            window.used = 0
            window.start = now
        window_end = window.start + lp.rate_limit_window
        left = lp.rate_limit_notional - window.used if lp.rate_limit_notional > window.used else 0
        return fp.w_div_down(left, price), window_end

    def _use_rate_limit(self, market_id: int, window_length: int, notional: int) -> None:
        now = self.chain.timestamp
        window = self.rate_windows.setdefault(market_id, RateWindow())
        if now >= window.start + window_length:
            window.start = now
            window.used = 0
        window.used += notional

    # ==========================================================================================
    # INTERNAL: ADL
    # ==========================================================================================

    def _ranked_takes(
        self, account_id: int, market_id: int, plan: Plan, counterparties: list[int], total: int,
        ranking: AdlRanking
    ) -> list[int]:
        """PNL_LEVERAGE, QUEUE, HYPERLIQUID, MIN_OVERSHOOT: counterparties in ranking order, each
        taken up to its size until covered (or, a partial ADL, all of each)."""
        takes = [0] * len(counterparties)
        remaining = total
        previous_score = 0
        for i, counterparty in enumerate(counterparties):
            if remaining == 0:
                raise AdlUnusedCounterparties(i)
            cp_size, score = self._checked_candidate(account_id, counterparty, market_id, plan, ranking)
            self._check_rank_order(counterparties, i, previous_score, score)
            previous_score = score
            takes[i] = fp.min(remaining, cp_size)
            remaining -= takes[i]
        # remaining != 0: a partial ADL, each listed winner closed whole (ILiquidationEngine);
        # an empty list would close nothing.
        if remaining == total:
            raise AdlInsufficient(remaining)
        return takes

    @staticmethod
    def _check_rank_order(counterparties: list[int], i: int, previous_score: int, score: int) -> None:
        """The counterparty at `i` ranks after the one before it: a lower score, or the same score
        and a higher id."""
        if i > 0 and (score > previous_score or (score == previous_score and counterparties[i] <= counterparties[i - 1])):
            raise AdlOutOfOrder(i, previous_score, score)

    def _drain_takes(
        self, account_id: int, market_id: int, plan: Plan, counterparties: list[int], total: int
    ) -> list[int]:
        """LEVERAGE_DRAIN: the listed winners (leverage descending) drained to one leverage. A winner at
        or below zero value (unbounded leverage, listed first) gives up min(remaining, its size); the
        others keep R = their sizes - what remains, each r_i = R * AV_i / E of it (down, at most its
        size; E = their values), so that r_i / AV_i is the same for all, and give up the rest; what
        the rounding leaves of R goes back to the first of them, as far as each gave up. The last
        listed must be above the level (r_i < its size)."""
        sizes, values = self._drain_candidates(account_id, market_id, plan, counterparties)
        n = len(sizes)
        takes = [0] * n
        remaining = total
        held = 0
        equity = 0
        for i in range(n):
            if values[i] != 0:
                held += sizes[i]
                equity += values[i]
            else:
                # Unbounded leverage: drained first, only as far as needed.
                if remaining == 0:
                    raise AdlUnusedCounterparties(i)
                takes[i] = fp.min(remaining, sizes[i])
                remaining -= takes[i]
        if held < remaining:
            raise AdlInsufficient(remaining - held)
        kept = held - remaining
        left = kept
        for i in range(n):
            if values[i] == 0:
                continue
            retained = fp.mul_div_down(kept, values[i], equity)
            if i == n - 1 and retained >= sizes[i]:
                raise AdlNotAboveLevel(i, sizes[i], retained)
            retained = fp.min(retained, sizes[i])
            takes[i] = sizes[i] - retained
            left -= retained
        i = 0
        while i < n and left > 0:
            if values[i] != 0:
                back = fp.min(left, takes[i])
                takes[i] -= back
                left -= back
            i += 1
        return takes

    def _drain_candidates(
        self, account_id: int, market_id: int, plan: Plan, counterparties: list[int]
    ) -> tuple[list[int], list[int]]:
        """LEVERAGE_DRAIN's list checked (eligible, in ranking order): each winner's size and account
        value (0 at or below zero)."""
        n = len(counterparties)
        sizes = [0] * n
        values = [0] * n
        previous_score = 0
        for i in range(n):
            sizes[i], score = self._checked_candidate(
                account_id, counterparties[i], market_id, plan, AdlRanking.LEVERAGE_DRAIN
            )
            self._check_rank_order(counterparties, i, previous_score, score)
            previous_score = score
            value, _, _ = self.engine.health(counterparties[i])
            if value > 0:
                values[i] = int(value)
        return sizes, values

    def _pro_rata_takes(
        self, account_id: int, market_id: int, plan: Plan, counterparties: list[int], total: int,
        ranking: AdlRanking
    ) -> list[int]:
        """PRO_RATA: every listed winner (by ascending id) gives up the same fraction of its size; the
        rounding remainder, one unit each, goes to the first counterparties with room."""
        n = len(counterparties)
        takes = [0] * n
        sizes = [0] * n
        available = 0
        for i in range(n):
            sizes[i], _ = self._checked_candidate(account_id, counterparties[i], market_id, plan, ranking)
            if i > 0 and counterparties[i] <= counterparties[i - 1]:
                raise AdlNotSortedById(i, counterparties[i - 1], counterparties[i])
            available += sizes[i]
        if available < total:
            raise AdlInsufficient(total - available)
        assigned = 0
        for i in range(n):
            takes[i] = fp.mul_div_down(total, sizes[i], available)
            assigned += takes[i]
        i = 0
        while i < n and assigned < total:
            if takes[i] < sizes[i]:
                takes[i] += 1
                assigned += 1
            i += 1
        return takes

    def _close_queue_rest(self, market_id: int, plan: Plan, counterparties: list[int], price: int) -> None:
        """QUEUE: the last listed winner closes whole too; the size beyond the bankrupt position closes
        against the vault at the same price (the vault, a counterparty itself, has none left)."""
        engine = self.engine
        last = counterparties[len(counterparties) - 1]
        vault_id = engine.vault
        rest, _, _ = engine.position_of(last, market_id)
        if rest == 0 or last == vault_id:
            return
        # The vault takes the bankrupt side's place: the winner's fill is -rest, as above.
        engine.adl_fill(vault_id, last, market_id, rest, price)
        self.chain._emit("AdlFill", vault_id, last, market_id, rest, price, plan.price)

    def _haircut_prices(
        self, market_id: int, plan: Plan, counterparties: list[int], takes: list[int], bankruptcy_price: int
    ) -> list[int]:
        """CAPPED_PRO_RATA: the price at which each winner gives up x_i = ceil(D * u_i / U) over its
        take (distance up, so the winners cover at least D; a short's price floors at 1 wei)."""
        n = len(counterparties)
        prices = [0] * n
        upnls = [0] * n
        total_upnl = 0
        for i in range(n):
            if takes[i] == 0:
                continue
            _, _, upnl, _ = self._candidate(
                counterparties[i], market_id, plan.position_size, plan.price, AdlRanking.CAPPED_PRO_RATA
            )
            upnls[i] = int(upnl)
            total_upnl += upnls[i]
        deficit = LiquidationMath.adl_deficit(plan.position_size, plan.price, bankruptcy_price)
        for i in range(n):
            if takes[i] == 0:
                continue
            distance = fp.mul_div_up(fp.mul_div_up(deficit, upnls[i], total_upnl), WAD, takes[i])
            if plan.position_size > 0:
                prices[i] = plan.price + distance
            else:
                prices[i] = plan.price - distance if distance < plan.price else 1
        return prices

    @staticmethod
    def _same_price(n: int, price: int) -> list[int]:
        """Every fill at one price (the bankruptcy price)."""
        return [price] * n

    @staticmethod
    def _by_score(ranking: AdlRanking) -> bool:
        """Rankings whose list is ranked by score (PNL_LEVERAGE, QUEUE, HYPERLIQUID, MIN_OVERSHOOT,
        LEVERAGE_DRAIN); the others by id."""
        return ranking != AdlRanking.PRO_RATA and ranking != AdlRanking.CAPPED_PRO_RATA

    def _checked_candidate(
        self, account_id: int, counterparty_id: int, market_id: int, plan: Plan, ranking: AdlRanking
    ) -> tuple[int, int]:
        eligible, cp_size, upnl, cp_score = self._candidate(
            counterparty_id, market_id, plan.position_size, plan.price, ranking
        )
        if not eligible or counterparty_id == account_id:
            raise AdlIneligible(counterparty_id, cp_size, upnl)
        return fp.abs(cp_size), cp_score

    def _candidate(
        self, account_id: int, market_id: int, bankrupt_side: int, price: int, ranking: AdlRanking
    ) -> tuple[bool, int, int, int]:
        """An ADL counterparty holds the opposite side with a positive uPnL at the oracle price."""
        engine = self.engine
        size, open_notional, _ = engine.position_of(account_id, market_id)
        if size == 0 or (size > 0) == (bankrupt_side > 0):
            return False, size, 0, 0
        upnl = MarginMath.unrealized_pnl(size, open_notional, price)
        if upnl <= 0:
            return False, size, upnl, 0
        value, _, _ = engine.health(account_id)
        notional = MarginMath.notional(size, price)
        return True, size, upnl, self._score(ranking, size, upnl, open_notional, notional, value)

    @staticmethod
    def _score(ranking: AdlRanking, size: int, upnl: int, open_notional: int, notional: int, value: int) -> int:
        """The ranking's score (the contract's branches in `_candidate`): HYPERLIQUID's, the notional
        under MIN_OVERSHOOT, the leverage under LEVERAGE_DRAIN, else adlScore."""
        if ranking == AdlRanking.HYPERLIQUID:
            return LiquidationMath.hyperliquid_score(int(size), int(open_notional), int(notional), int(value))
        if ranking == AdlRanking.MIN_OVERSHOOT:
            return int(notional)
        if ranking == AdlRanking.LEVERAGE_DRAIN:
            return LiquidationMath.leverage_score(int(notional), int(value))
        return LiquidationMath.adl_score(upnl, open_notional, notional, value)

    @staticmethod
    def _sort(ids: list[int], scores: list[int], by_score: bool) -> tuple[list[int], list[int]]:
        """By score descending then id ascending, or by id only. The contract's heapsort with
        `_before` yields the same order: ids are unique, so the order is total."""
        order = sorted(range(len(ids)), key=(lambda i: (-scores[i], ids[i])) if by_score else (lambda i: ids[i]))
        return [ids[i] for i in order], [scores[i] for i in order]

    @staticmethod
    def _check_pairs(account_ids: Sequence[int], market_ids: Sequence[int]) -> None:
        """Keeper views over pairs (account_ids[i], market_ids[i]) need lists of one length."""
        if len(account_ids) != len(market_ids):
            raise LengthMismatch(len(account_ids), len(market_ids))

    def _check_market(self, market_id: int) -> None:
        if not 0 <= market_id < self.engine.market_count():
            raise UnknownMarket(market_id)
