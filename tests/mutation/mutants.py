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
ENGINE_ACCESS = ("tests/test_engine_reverts.py",)
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


def by_name(names: list[str] | None) -> tuple[Mutant, ...]:
    """The named mutants (all when `names` is empty), in catalogue order; unknown names are an error."""
    if not names:
        return MUTANTS
    known = {m.name for m in MUTANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(m for m in MUTANTS if m.name in names)
