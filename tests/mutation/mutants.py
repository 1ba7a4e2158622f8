"""Deliberate errors in the contracts' margin, liquidation, waterfall, ADL, funding and book math,
and in the oracle router's guards.

Each mutant replaces one exact snippet of one Solidity file (which must occur exactly once, so a
mutant that no longer applies is an error, not a silent pass). `python -m tests.mutation` applies
each to a copy of the project, compiles it and runs the differential, stateful and regression
suites against it: every mutant must make them fail. tests/mutation/test_catalogue.py checks that every snippet
still applies to the contracts as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    mechanism: str
    path: str  # relative to the project root
    original: str
    mutated: str
    error: str  # what the mutant gets wrong, in words
    # The suites that can catch it when the lockstep suites cannot (an access check is seen only
    # by the tests that call it from outside); empty: the check's suites (DEFAULT_SUITES).
    suites: tuple[str, ...] = ()

    def source(self, root: Path = PROJECT_ROOT) -> str:
        return (root / self.path).read_text()

    def occurrences(self, root: Path = PROJECT_ROOT) -> int:
        return self.source(root).count(self.original)

    def apply(self, root: Path) -> None:
        """Rewrites the file under `root`; raises ValueError unless the snippet occurs exactly once."""
        count = self.occurrences(root)
        if count != 1:
            raise ValueError(f"mutant {self.name}: its snippet occurs {count} times in {self.path}, not once")
        file = root / self.path
        file.write_text(self.source(root).replace(self.original, self.mutated))


MARGIN = "contracts/libraries/MarginMath.sol"
LIQUIDATION_MATH = "contracts/libraries/LiquidationMath.sol"
FUNDING = "contracts/libraries/FundingMath.sol"
DEPTH = "contracts/libraries/DepthCurve.sol"
POSITION = "contracts/libraries/PositionMath.sol"
ENGINE = "contracts/engine/PerpEngine.sol"
ROUTER = "contracts/oracle/OracleRouter.sol"
LIQUIDATOR = "contracts/liquidation/LiquidationEngine.sol"
FEED = "contracts/oracle/PriceFeed.sol"
ADMIN = ("tests/test_liquidation_admin.py",)
# The modules of tests/engine/ that call each of the engine's guarded functions from outside.
ENGINE_ACCESS = (
    "tests/engine/test_admin.py",
    "tests/engine/test_markets.py",
    "tests/engine/test_depth.py",
    "tests/engine/test_matched_fills.py",
    "tests/engine/test_liquidation_hooks.py",
)
ORACLE_ACCESS = ("tests/test_oracle.py",)
MINIMUMS = ("tests/test_minimums.py", "tests/test_differential.py::test_minimums_refuse_dust_alike")

MUTANTS: tuple[Mutant, ...] = (
    # --- margin ---------------------------------------------------------------------------------
    Mutant(
        "mm-rounds-down", "margin", MARGIN,
        "return positionNotional.wMulUp(tiers[k].mmr) - tiers[k].deduction;",
        "return positionNotional.wMulDown(tiers[k].mmr) - tiers[k].deduction;",
        "maintenance margin rounded down instead of up (understates MM by a wei)",
    ),
    Mutant(
        "mm-ignores-deduction", "margin", MARGIN,
        "return positionNotional.wMulUp(tiers[k].mmr) - tiers[k].deduction;",
        "return positionNotional.wMulUp(tiers[k].mmr);",
        "tier deduction left out: MM jumps at every tier boundary above the first",
    ),
    Mutant(
        "im-ignores-tier-mm", "margin", MARGIN,
        "return FixedPointMath.max(positionNotional.wMulUp(imr), mm);",
        "return positionNotional.wMulUp(imr);",
        "initial margin is notional * imr even where the tiered MM is larger",
    ),
    Mutant(
        "liquidatable-at-mm", "margin", ENGINE,
        "return value < FixedPointMath.toInt(mm);",
        "return value <= FixedPointMath.toInt(mm);",
        "an account exactly at maintenance margin counts as liquidatable",
    ),
    Mutant(
        "pnl-rounds-up", "margin", MARGIN,
        "return size.sWMulDown(price) - openNotional;",
        "return size.sWMulUp(price) - openNotional;",
        "unrealised PnL rounded up (in the account's favour)",
    ),
    # --- insurance-fund waterfall and bad debt --------------------------------------------------
    Mutant(
        "fund-not-debited", "waterfall", ENGINE,
        "        insuranceFund -= fromFund;\n",
        "",
        "the fund pays a deficit without its balance going down",
    ),
    Mutant(
        "bad-debt-not-recorded", "waterfall", ENGINE,
        "        badDebt += writtenOff;\n",
        "",
        "a written-off deficit is not added to bad debt",
    ),
    Mutant(
        "socialize-skips-vault", "waterfall", ENGINE,
        "uint256 others = market.longOpenInterest + market.shortOpenInterest\n"
        "                + FixedPointMath.abs(positions[_crossId(vault)][marketId].size);",
        "uint256 others = market.longOpenInterest + market.shortOpenInterest;",
        "a socialised loss is spread over trader open interest only, though the vault pays it too",
    ),
    Mutant(
        "earmark-ignored-in-bankruptcy-price", "waterfall", ENGINE,
        "        value += FixedPointMath.toInt(fundReserveOf[accountId]);\n",
        "",
        "the bankruptcy price ignores what the fund earmarked for the account",
    ),
    Mutant(
        "adl-threshold-counts-whole-fund", "waterfall", LIQUIDATOR,
        "return engine.insuranceFund() + engine.fundReserveOf(accountId);",
        "return engine.insuranceFund() + engine.insuranceFundReserved();",
        "the ADL threshold counts every account's earmark as available to this one",
    ),
    # --- liquidation ----------------------------------------------------------------------------
    Mutant(
        "penalty-not-capped", "liquidation", LIQUIDATION_MATH,
        "return FixedPointMath.min(closedNotional.wMulDown(liquidationFee), uint256(valueAfterFill));",
        "return closedNotional.wMulDown(liquidationFee);",
        "the penalty is not capped by the equity left after the fill",
    ),
    Mutant(
        "slice-threshold-ignored", "liquidation", LIQUIDATION_MATH,
        "if (absSize.wMulUp(price) > sliceThreshold) size = absSize.wMulUp(sliceFraction);",
        "size = absSize.wMulUp(sliceFraction);",
        "small positions are sliced too instead of closed whole",
    ),
    Mutant(
        "bankruptcy-price-keeps-no-wei", "liquidation", LIQUIDATION_MATH,
        "int256 distance = (accountValue - 1).sMulDivDown(WAD, absSize);",
        "int256 distance = accountValue.sMulDivDown(WAD, absSize);",
        "the bankruptcy price does not hold back one wei of value",
    ),
    Mutant(
        "partial-penalty-not-capped-by-gain", "liquidation", LIQUIDATOR,
        "penalty = gain > 0 ? FixedPointMath.min(penalty, uint256(gain)) : 0;",
        "penalty = gain > 0 ? penalty : 0;",
        "a partial liquidation's penalty may exceed what the slice improved the account's health",
    ),
    # --- ADL ------------------------------------------------------------------------------------
    Mutant(
        "adl-score-leverage-inverted", "adl", LIQUIDATION_MATH,
        "uint256 leverage = notional.wDivDown(uint256(accountValue));",
        "uint256 leverage = uint256(accountValue).wDivDown(notional);",
        "the ADL score multiplies PnL% by AV / notional instead of leverage",
    ),
    Mutant(
        "adl-ties-by-id-descending", "adl", LIQUIDATOR,
        "        return idA < idB;\n    }",
        "        return idA > idB;\n    }",
        "the ranking breaks ties (and orders PRO_RATA) by descending id",
    ),
    Mutant(
        "partial-adl-empty-list", "adl", LIQUIDATOR,
        "        if (remaining == total) revert AdlInsufficient(remaining);\n",
        "",
        "an empty counterparty list is taken as a partial ADL that closes nothing",
        ("tests/test_liquidation.py::test_deleverage_rejects_wrong_lists",),
    ),
    Mutant(
        "partial-adl-reports-whole-size", "adl", LIQUIDATOR,
        "plan.positionSize > 0 ? int256(closed) : -int256(closed),",
        "plan.positionSize,",
        "Deleveraged reports the whole position where a partial ADL closed part of it",
        ("tests/test_liquidation.py::test_deleverage_partialList_closesWhatTheWinnersHold",
         "tests/test_differential.py::test_a_partial_adl_agrees_and_the_rest_follows"),
    ),
    Mutant(
        "pro-rata-remainder-dropped", "adl", LIQUIDATOR,
        "            if (takes[i] < sizes[i]) {\n                ++takes[i];",
        "            if (false) {\n                ++takes[i];",
        "PRO_RATA does not hand out its rounding remainder, so ADL leaves a residue open",
    ),
    Mutant(
        "queue-rest-left-open", "adl", LIQUIDATOR,
        "if (rest == 0 || last == vaultId) return;",
        "if (true) return;",
        "QUEUE closes the last winner only as far as the bankrupt size: the queue baseline never overshoots",
    ),
    Mutant(
        "capped-haircut-rounds-down", "adl", LIQUIDATOR,
        "deficit.mulDivUp(upnls[i], totalUpnl).mulDivUp(WAD, takes[i]);",
        "deficit.mulDivDown(upnls[i], totalUpnl).mulDivDown(WAD, takes[i]);",
        "CAPPED_PRO_RATA rounds each haircut down, so the winners cover less than the deficit",
    ),
    Mutant(
        "hyperliquid-score-ignores-leverage", "adl", LIQUIDATION_MATH,
        "return priceRatio.wMulDown(notional.wDivDown(uint256(accountValue)));",
        "return priceRatio;",
        "HYPERLIQUID ranks winners by mark / entry alone, without their leverage",
    ),
    Mutant(
        "min-overshoot-smallest-first", "adl", LIQUIDATOR,
        "else if (ranking == AdlRanking.MIN_OVERSHOOT) score = notional;",
        "else if (ranking == AdlRanking.MIN_OVERSHOOT) score = type(uint256).max - notional;",
        "MIN_OVERSHOOT takes the smallest winners first: the most closures instead of the fewest",
    ),
    Mutant(
        "leverage-drain-keeps-by-size", "adl", LIQUIDATOR,
        "uint256 retained = kept.mulDivDown(values[i], equity);",
        "uint256 retained = kept.mulDivDown(sizes[i], held);",
        "LEVERAGE_DRAIN leaves each winner a share of the kept size by its size, not its value: pro rata, not one leverage",
    ),
    Mutant(
        "leverage-drain-level-unchecked", "adl", LIQUIDATOR,
        "if (i == n - 1 && retained >= sizes[i]) revert AdlNotAboveLevel(i, sizes[i], retained);",
        "",
        "LEVERAGE_DRAIN accepts a list whose last winner is at or below the level (it gives up nothing)",
    ),
    Mutant(
        "leverage-drain-at-level-accepted", "adl", LIQUIDATOR,
        "retained >= sizes[i]) revert AdlNotAboveLevel",
        "retained > sizes[i]) revert AdlNotAboveLevel",
        "LEVERAGE_DRAIN accepts a last winner exactly at the level (it keeps its whole size)",
    ),
    # --- funding, fills and the book ------------------------------------------------------------
    Mutant(
        "adl-when-fund-exactly-covers", "waterfall", LIQUIDATOR,
        "uint256(-plan.valueAfter) > _fundFor(accountId)",
        "uint256(-plan.valueAfter) >= _fundFor(accountId)",
        "a deficit exactly equal to what the fund can pay goes to ADL (invariant 7)",
    ),
    Mutant(
        "pro-rata-fills-dust-with-zero", "adl", LIQUIDATOR,
        "if (takes[i] == 0) continue;\n            // The bankrupt side closes",
        "// The bankrupt side closes",
        "a PRO_RATA winner whose share rounds to 0 is filled with 0 (adlFill reverts ZeroAmount: ADL stalls)",
    ),
    Mutant(
        "funding-owed-rounds-down", "funding", FUNDING,
        "return FixedPointMath.sDivUp(size * (index - lastIndex), WAD);",
        "return FixedPointMath.sMulDivDown(size * (index - lastIndex), 1, WAD);",
        "funding owed rounds down, so receivers can get more than payers pay",
    ),
    Mutant(
        "funding-sign-flipped", "funding", FUNDING,
        "return skew > 0 ? magnitude : -magnitude;",
        "return skew > 0 ? -magnitude : magnitude;",
        "the crowded side receives funding instead of paying it",
    ),
    Mutant(
        "book-full-impact", "book", DEPTH,
        "? midAbsTwice.mulDivUp(IMPACT_AT_DEPTH, 2 * depth2pct)",
        "? midAbsTwice.mulDivUp(IMPACT_AT_DEPTH, depth2pct)",
        "the taker pays the end impact of its walk instead of the average",
    ),
    Mutant(
        "realised-pnl-released-rounds-down", "position", POSITION,
        "int256 released = openNotional.sMulDivUp(closed, absSize);",
        "int256 released = openNotional.sMulDivDown(closed, absSize);",
        "a reduction releases open notional rounded down, so realised PnL rounds up",
    ),
    # --- the oracle router (invariant 10) -------------------------------------------------------
    Mutant(
        "staleness-unchecked", "oracle", ROUTER,
        "} else if (_age(r.updatedAt) > m.heartbeat) {",
        "} else if (false) {",
        "an answer older than the heartbeat is served",
    ),
    Mutant(
        "stale-at-heartbeat", "oracle", ROUTER,
        "} else if (_age(r.updatedAt) > m.heartbeat) {",
        "} else if (_age(r.updatedAt) >= m.heartbeat) {",
        "an answer exactly one heartbeat old counts as stale",
    ),
    Mutant(
        "breaker-never-trips", "oracle", ROUTER,
        "if (maxDeviation != 0 && last != 0 && _deviationUp(last, r.price) > maxDeviation) {",
        "if (false) {",
        "a jump beyond the breaker's deviation is served unconfirmed",
    ),
    Mutant(
        "breaker-cooldown-ignored", "oracle", ROUTER,
        "if (block.timestamp < m.trippedUntil) r.status = Status.Tripped;",
        "if (false) r.status = Status.Tripped;",
        "a tripped breaker serves prices again before its cooldown ends",
    ),
)


# --- access control: each privileged function tried from an outsider (issue 17) ------------------
ACCESS_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "liquidator-owner-unchecked", "access", LIQUIDATOR,
        "if (msg.sender != owner) revert Unauthorized(msg.sender);",
        "",
        "anyone can transfer the liquidation engine's ownership and set its rules",
        ADMIN,
    ),
    Mutant(
        "liquidator-zero-owner-accepted", "access", LIQUIDATOR,
        "if (newOwner == address(0)) revert InvalidOwner(newOwner);",
        "",
        "the liquidation engine's ownership can be given to address(0) (its rules frozen for good)",
        ADMIN,
    ),
    Mutant(
        "liquidator-accept-unchecked", "access", LIQUIDATOR,
        "if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);",
        "",
        "anyone can take the liquidation engine's ownership, offered or not",
        ADMIN,
    ),
    Mutant(
        "slice-fraction-zero-accepted", "access", LIQUIDATOR,
        "if (p.sliceFraction == 0 || p.sliceFraction > WAD)",
        "if (p.sliceFraction > WAD)",
        "a slice fraction of 0 is accepted (every slice of a large position is empty: never liquidated)",
        ADMIN,
    ),
    Mutant(
        "slice-fraction-above-wad-accepted", "access", LIQUIDATOR,
        "if (p.sliceFraction == 0 || p.sliceFraction > WAD)",
        "if (p.sliceFraction == 0 || p.sliceFraction > WAD + 1)",
        "a slice fraction above 1 is accepted",
        ADMIN,
    ),
    Mutant(
        "slice-fraction-wad-refused", "access", LIQUIDATOR,
        "if (p.sliceFraction == 0 || p.sliceFraction > WAD)",
        "if (p.sliceFraction == 0 || p.sliceFraction >= WAD)",
        "a slice fraction of exactly 1 (whole positions) is refused",
        ADMIN,
    ),
    Mutant(
        "rate-limit-window-unchecked", "access", LIQUIDATOR,
        "if (p.rateLimitNotional != 0 && p.rateLimitWindow == 0) {",
        "if (false) {",
        "a rate limit with a window of 0 seconds is accepted (a window that never ends)",
        ADMIN,
    ),
    Mutant(
        "engine-owner-unchecked", "access", ENGINE,
        "if (msg.sender != owner) revert Unauthorized(msg.sender, OWNER_ROLE);",
        "",
        "anyone can act as the engine's owner (markets, roles, vault, ownership)",
        ENGINE_ACCESS,
    ),
    Mutant(
        "engine-accept-unchecked", "access", ENGINE,
        "if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);",
        "",
        "anyone can take the engine's ownership (and OWNER_ROLE), offered or not",
        ("tests/engine/test_admin.py",),
    ),
    Mutant(
        "engine-role-unchecked", "access", ENGINE,
        "if (!hasRole[role][msg.sender]) revert Unauthorized(msg.sender, role);",
        "",
        "anyone holds every role (market maker, operator, liquidator)",
        ENGINE_ACCESS,
    ),
    Mutant(
        "router-owner-unchecked", "access", ROUTER,
        "if (msg.sender != owner) revert NotOwner(msg.sender);",
        "",
        "anyone can reconfigure the oracle router",
        ORACLE_ACCESS,
    ),
    Mutant(
        "router-accept-unchecked", "access", ROUTER,
        "if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender, pendingOwner);",
        "",
        "anyone can take the oracle router's ownership, offered or not",
        ORACLE_ACCESS,
    ),
    Mutant(
        "feed-owner-unchecked", "access", FEED,
        "if (msg.sender != owner) revert NotOwner(msg.sender);",
        "",
        "anyone can name a feed's updaters",
        ORACLE_ACCESS,
    ),
    Mutant(
        "feed-updater-unchecked", "access", FEED,
        "if (!isUpdater[msg.sender]) revert NotUpdater(msg.sender);",
        "",
        "anyone can submit a feed's answer",
        ORACLE_ACCESS,
    ),
    Mutant(
        "min-collateral-unchecked", "dust", ENGINE,
        "if (collateral < FixedPointMath.toInt(minimum)) revert CollateralBelowMinimum(id, collateral, minimum);",
        "",
        "a deposit or margin transfer of dust registers an account (the registry grows for 1e-6 USDC)",
        MINIMUMS,
    ),
    Mutant(
        "min-position-unchecked", "dust", ENGINE,
        "if (newSize != 0 && notional < minimum) revert PositionBelowMinimum(id, marketId, notional, minimum);",
        "",
        "a user trade may leave a position of a few wei open (dust winners in every ADL ranking)",
        MINIMUMS,
    ),
    Mutant(
        "min-position-at-minimum-refused", "dust", ENGINE,
        "if (newSize != 0 && notional < minimum)",
        "if (newSize != 0 && notional <= minimum)",
        "a position exactly at the minimum notional is refused",
        MINIMUMS,
    ),
    Mutant(
        "engine-lock-ignored", "access", ENGINE,
        "if (locked) revert Reentrancy();",
        "",
        "a token's callback can re-enter the engine during a transfer",
        ("tests/test_hostile_tokens.py",),
    ),
)
MUTANTS = MUTANTS + ACCESS_MUTANTS


# --- boundaries of the liquidation decisions: each comparison flipped (issue 17) ------------------
# `<` for `<=`, `>` for `>=` and back, in _plan, _penalty, _rateRoom, _useRateLimit and the ADL
# checks; each is caught by its pinned case in tests/test_boundaries.py (INVARIANTS.md, "Boundaries
# of the liquidation decisions", lists every comparison, and argues the flips that change nothing).
BOUNDARIES = "tests/test_boundaries.py"


def _pinned(*tests: str) -> tuple[str, ...]:
    return tuple(test if "/" in test else f"{BOUNDARIES}::{test}" for test in tests)


_LOOP = "for (uint256 i; i < n; ++i) {\n            "


def _overrun(name: str, original: str, what: str, *tests: str) -> Mutant:
    """A loop bound `i < n` read as `i <= n`: one index past the end of the arrays."""
    return Mutant(name, "boundary", LIQUIDATOR, original, original.replace("i < ", "i <= ", 1),
                  f"{what} runs one index past the end (Panic 0x32 on every ADL that runs it)", _pinned(*tests))


BOUNDARY_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "plan-liquidates-at-mm", "boundary", LIQUIDATOR,
        "if (plan.value >= int256(plan.mm)) revert NotLiquidatable",
        "if (plan.value > int256(plan.mm)) revert NotLiquidatable",
        "_plan liquidates an account whose value equals its maintenance margin",
        ("tests/test_differential.py::test_an_account_exactly_at_maintenance_margin_is_not_liquidatable",),
    ),
    Mutant(
        "slice-at-threshold", "boundary", LIQUIDATION_MATH,
        "if (absSize.wMulUp(price) > sliceThreshold)",
        "if (absSize.wMulUp(price) >= sliceThreshold)",
        "a position whose notional equals the slice threshold is sliced instead of closed whole",
        _pinned("test_sliceSize_notionalExactlyTheThreshold"),
    ),
    Mutant(
        "worsening-tie-escalates", "boundary", LIQUIDATOR,
        "plan.valueAfter - int256(plan.mmAfter) < plan.value - int256(plan.mm)",
        "plan.valueAfter - int256(plan.mmAfter) <= plan.value - int256(plan.mm)",
        "a slice that leaves AV - MM unchanged counts as worsening: the whole position closes",
        _pinned("test_plan_sliceLeavingHealthUnchanged"),
    ),
    Mutant(
        "escalation-rate-room-at-whole", "boundary", LIQUIDATOR,
        "if (absSize > rateRoom) plan.action = Action.RATE_LIMITED;",
        "if (absSize >= rateRoom) plan.action = Action.RATE_LIMITED;",
        "a rate limit with room for exactly the whole position refuses the escalation",
        _pinned("test_plan_wholePositionExactlyTheRateRoom"),
    ),
    Mutant(
        "escalation-max-size-at-whole", "boundary", LIQUIDATOR,
        "else if (absSize > maxSize) plan.action = Action.WORSENS_HEALTH;",
        "else if (absSize >= maxSize) plan.action = Action.WORSENS_HEALTH;",
        "a caller's maxSize of exactly the whole position refuses the escalation",
        _pinned("test_plan_wholePositionExactlyMaxSize"),
    ),
    Mutant(
        "escalation-book-room-at-whole", "boundary", LIQUIDATOR,
        "else if (absSize > bookRoom) plan.action = _voidAction(lp);",
        "else if (absSize >= bookRoom) plan.action = _voidAction(lp);",
        "a book that can take exactly the whole position counts as void for it",
        _pinned("test_plan_wholePositionExactlyTheBookRoom"),
    ),
    Mutant(
        "shortfall-at-zero-value", "boundary", LIQUIDATOR,
        "plan.size == 0 || plan.valueAfter >= 0 ? type(uint256).max",
        "plan.size == 0 || plan.valueAfter > 0 ? type(uint256).max",
        "UseDeleverage reports a shortfall of 0 for a slice that leaves exactly zero value",
        _pinned("test_liquidateAccount_voidSliceLeavingExactlyZeroValue"),
    ),
    Mutant(
        "penalty-caps-whole-close", "boundary", LIQUIDATOR,
        "if (plan.size < FixedPointMath.abs(plan.positionSize)) {",
        "if (plan.size <= FixedPointMath.abs(plan.positionSize)) {",
        "a whole close's penalty is capped by the health it gained, as a slice's is",
        _pinned("test_penalty_wholeCloseNotCappedByGain"),
    ),
    Mutant(
        "rate-window-ends-late", "boundary", LIQUIDATOR,
        "if (block.timestamp >= window.start + lp.rateLimitWindow) {",
        "if (block.timestamp > window.start + lp.rateLimitWindow) {",
        "_rateRoom: a rate window still counts at its end, a second too long",
        _pinned("test_rateRoom_windowEndsOnItsLastSecond"),
    ),
    Mutant(
        "rate-window-recorded-late", "boundary", LIQUIDATOR,
        "if (block.timestamp >= window.start + windowLength) {",
        "if (block.timestamp > window.start + windowLength) {",
        "_useRateLimit: a liquidation at a window's end is added to the old window",
        _pinned("test_rateRoom_windowEndsOnItsLastSecond"),
    ),
    Mutant(
        "ranked-tie-refused", "boundary", LIQUIDATOR,
        "score > previousScore || (score == previousScore",
        "score >= previousScore || (score == previousScore",
        "winners with tied scores are refused whatever their ids (AdlOutOfOrder)",
        _pinned("test_rankedTakes_tiedScoresInIdOrder"),
    ),
    Mutant(
        "ranked-duplicate-accepted", "boundary", LIQUIDATOR,
        "score == previousScore && counterparties[i] <= counterparties[i - 1]",
        "score == previousScore && counterparties[i] < counterparties[i - 1]",
        "a winner listed twice is taken twice (ranked by score)",
        _pinned("test_deleverage_counterpartyListedTwice[PNL_LEVERAGE]"),
    ),
    Mutant(
        "pro-rata-duplicate-accepted", "boundary", LIQUIDATOR,
        "if (i > 0 && counterparties[i] <= counterparties[i - 1]) {",
        "if (i > 0 && counterparties[i] < counterparties[i - 1]) {",
        "a winner listed twice is taken twice (PRO_RATA)",
        _pinned("test_deleverage_counterpartyListedTwice[PRO_RATA]"),
    ),
    Mutant(
        "pro-rata-exact-cover-refused", "boundary", LIQUIDATOR,
        "if (available < total) revert AdlInsufficient",
        "if (available <= total) revert AdlInsufficient",
        "PRO_RATA winners holding exactly the bankrupt size are refused (AdlInsufficient(0))",
        _pinned("test_proRataTakes_winnersExactlyCoverThePosition"),
    ),
    Mutant(
        "pro-rata-remainder-overshoots", "boundary", LIQUIDATOR,
        "i < n && assigned < total",
        "i < n && assigned <= total",
        "PRO_RATA hands out a unit beyond the bankrupt size when the shares divide exactly",
        _pinned("test_proRataTakes_sharesDivideExactly"),
    ),
    Mutant(
        "candidate-zero-pnl-eligible", "boundary", LIQUIDATOR,
        "if (upnl <= 0) return (false, size, upnl, 0);",
        "if (upnl < 0) return (false, size, upnl, 0);",
        "a position with a uPnL of exactly 0 counts as an ADL winner",
        _pinned("test_candidate_winnerAtZeroPnl"),
    ),
    Mutant(
        "candidate-zero-side-as-long", "boundary", LIQUIDATOR,
        "(size > 0) == (bankruptSide > 0)",
        "(size > 0) == (bankruptSide >= 0)",
        "adlRanking(market, 0) ranks the shorts (side 0 read as a bankrupt long)",
        _pinned("test_candidate_bankruptSideZero"),
    ),
    Mutant(
        "adl-score-at-zero-value", "boundary", LIQUIDATION_MATH,
        "if (accountValue <= 0) return type(uint256).max;\n        if (upnl <= 0)",
        "if (accountValue < 0) return type(uint256).max;\n        if (upnl <= 0)",
        "PNL_LEVERAGE scores a winner of zero account value by dividing by it (the ranking and its ADL revert)",
        _pinned("test_adlScore_winnerAtZeroValue[0-PNL_LEVERAGE]"),
    ),
    Mutant(
        "hyperliquid-score-at-zero-value", "boundary", LIQUIDATION_MATH,
        "if (accountValue <= 0) return type(uint256).max;\n        uint256 cost",
        "if (accountValue < 0) return type(uint256).max;\n        uint256 cost",
        "HYPERLIQUID scores a winner of zero account value by dividing by it (the ranking and its ADL revert)",
        _pinned("test_adlScore_winnerAtZeroValue[0-HYPERLIQUID]"),
    ),
    Mutant(
        "leverage-score-at-zero-value", "boundary", LIQUIDATION_MATH,
        "if (accountValue <= 0) return type(uint256).max;\n        return notional.wDivDown",
        "if (accountValue < 0) return type(uint256).max;\n        return notional.wDivDown",
        "LEVERAGE_DRAIN scores a winner of zero account value by dividing by it (the ranking and its ADL revert)",
        _pinned("test_adlScore_winnerAtZeroValue[0-LEVERAGE_DRAIN]"),
    ),
    Mutant(
        "drain-exact-cover-refused", "boundary", LIQUIDATOR,
        "if (held < remaining) revert AdlInsufficient",
        "if (held <= remaining) revert AdlInsufficient",
        "LEVERAGE_DRAIN winners holding exactly the bankrupt size are refused (AdlInsufficient(0))",
        _pinned("test_drainTakes_winnersExactlyCoverThePosition"),
    ),
    Mutant(
        "bankruptcy-price-reaches-zero", "boundary", LIQUIDATION_MATH,
        "return bankrupt > 0 ? uint256(bankrupt) : 1;",
        "return bankrupt >= 0 ? uint256(bankrupt) : 1;",
        "a bankruptcy price of exactly 0 is not floored at 1 wei (an ADL at a price of 0)",
        _pinned("test_bankruptcyPrice_exactlyZeroFloorsAtOneWei"),
    ),
    Mutant(
        "haircut-price-reaches-zero", "boundary", LIQUIDATOR,
        "distance < plan.price ? plan.price - distance : 1",
        "distance <= plan.price ? plan.price - distance : 1",
        "CAPPED_PRO_RATA fills a winner at a price of 0 when its distance equals the oracle price",
        _pinned("test_haircutPrices_distanceExactlyThePrice"),
    ),
    Mutant(
        "ranked-first-checked-against-nothing", "boundary", LIQUIDATOR,
        "if (i > 0 && (score > previousScore",
        "if (i >= 0 && (score > previousScore",
        "the first listed winner is checked against a previous score of 0 (any ranked ADL reverts)",
        _pinned("test_rankedTakes_tiedScoresInIdOrder"),
    ),
    Mutant(
        "pro-rata-first-checked-against-nothing", "boundary", LIQUIDATOR,
        "if (i > 0 && counterparties[i] <= counterparties[i - 1]) {",
        "if (i >= 0 && counterparties[i] <= counterparties[i - 1]) {",
        "the first PRO_RATA winner is compared with the id before it (index -1: every PRO_RATA ADL reverts)",
        _pinned("test_proRataTakes_winnersExactlyCoverThePosition"),
    ),
    _overrun("deleverage-loop-overruns",
             "for (uint256 i; i < counterparties.length; ++i) {\n            // A dust winner",
             "deleverageAccount's fill loop", "test_rankedTakes_tiedScoresInIdOrder"),
    _overrun("ranked-loop-overruns",
             "for (uint256 i; i < counterparties.length; ++i) {\n            if (remaining == 0)",
             "_rankedTakes' loop", "test_rankedTakes_tiedScoresInIdOrder"),
    _overrun("pro-rata-size-loop-overruns", _LOOP + "(sizes[i],) =",
             "_proRataTakes' size loop", "test_proRataTakes_sharesDivideExactly"),
    _overrun("pro-rata-share-loop-overruns", _LOOP + "takes[i] = total.mulDivDown",
             "_proRataTakes' share loop", "test_proRataTakes_sharesDivideExactly"),
    _overrun("haircut-upnl-loop-overruns", _LOOP + "if (takes[i] == 0) continue;\n            (,, int256 upnl,)",
             "_haircutPrices' uPnL loop", "test_haircutPrices_distanceExactlyThePrice"),
    _overrun("haircut-price-loop-overruns", _LOOP + "if (takes[i] == 0) continue;\n            uint256 distance",
             "_haircutPrices' price loop", "test_haircutPrices_distanceExactlyThePrice"),
    _overrun("same-price-loop-overruns", _LOOP + "prices[i] = price;",
             "_samePrice's loop", "test_rankedTakes_tiedScoresInIdOrder"),
)
MUTANTS = MUTANTS + BOUNDARY_MUTANTS


def by_name(names: list[str] | None) -> tuple[Mutant, ...]:
    """The named mutants (all when `names` is empty), in catalogue order; unknown names are an error."""
    if not names:
        return MUTANTS
    known = {m.name for m in MUTANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(m for m in MUTANTS if m.name in names)
