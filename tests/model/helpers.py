"""Shared builders and invariant checks for the model tests (plain pytest, no Ape fixtures)."""

from __future__ import annotations

import numpy as np

from simulator.agents import reference_keeper
from simulator.agents.reference_keeper import KeeperReport, ModelKeeper
from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.model import Protocol
from simulator.model.errors import ModelRevert
from simulator.units import WAD, wad

# Rounding dust the protocol may keep (wei of WAD USD), as in tests/invariants.py.
MAX_DUST_WEI = 10**9

ALICE, BOB, CAROL, DAVE, ERIN, FRANK = 0xA11CE, 0xB0B, 0xCA201, 0xDA7E, 0xE1217, 0xF2A2C
KEEPER = 0x4EE9E2
BTC = 0


def seed_book(policy: BadDebtPolicy, insurance=1_000, **spec):
    """alice: $10,000 long 1 BTC at $100,000 (10x), matched half against bob ($5,000) and half
    against carol ($50,000); dave holds $7,000 and no position (tests/test_liquidation.py's book)."""
    params = dict(depth2pct=10_000_000, policy=policy)
    params.update(spec)
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, **params)], insurance_fund_usd=insurance)
    for who, dollars in ((ALICE, 10_000), (BOB, 5_000), (CAROL, 50_000), (DAVE, 7_000)):
        protocol.fund(who, dollars)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD // 2, wad(100_000))
    protocol.settle_matched_fill(ALICE, CAROL, BTC, WAD // 2, wad(100_000))
    return protocol


def check_conservation(protocol: Protocol) -> int:
    """Invariant 1: 0 <= tokens + bad debt - claims - fund <= MAX_DUST_WEI."""
    tokens, claims, fund = protocol.balance_sheet()
    dust = tokens + protocol.bad_debt - claims - fund
    assert dust >= 0, f"claims exceed tokens by {-dust} wei (tokens {tokens}, claims {claims}, fund {fund})"
    assert dust <= MAX_DUST_WEI, f"{dust} wei unaccounted for: more than rounding dust"
    return dust


def check_open_interest(protocol: Protocol) -> None:
    """Invariant 2: sizes sum to zero per market; trader OI long - short + vault size = 0."""
    ids = protocol.account_ids
    for market_id in range(protocol.market_count()):
        sizes = [protocol.position_of(i, market_id)[0] for i in ids]
        assert sum(sizes) == 0, f"market {market_id}: sizes sum to {sum(sizes)}"
        # Every account with a position is registered: the arrays hold nothing else.
        assert sum(int(s) for s in protocol._size[: len(protocol._row_ids), market_id]) == 0
        view = protocol.market_view(market_id)
        assert view.long_open_interest - view.short_open_interest + view.vault_size == 0
        traders = [s for i, s in zip(ids, sizes) if i != protocol.vault]
        assert view.long_open_interest == sum(s for s in traders if s > 0)
        assert view.short_open_interest == -sum(s for s in traders if s < 0)


def check_insurance_fund(protocol: Protocol) -> None:
    """Invariant 4: the fund never goes negative and is backed by tokens; its earmarks add up and
    belong to accounts that still hold positions (a closed-out account's earmark was settled)."""
    tokens, _, fund = protocol.balance_sheet()
    assert 0 <= fund <= tokens
    assert protocol.insurance_fund >= 0 and protocol.insurance_fund_reserved >= 0
    assert sum(protocol.fund_reserve.values()) == protocol.insurance_fund_reserved
    for account_id, reserved in protocol.fund_reserve.items():
        assert reserved > 0 and protocol.market_mask_of(account_id) != 0, (account_id, reserved)


def check_invariants(protocol: Protocol) -> None:
    check_conservation(protocol)
    check_open_interest(protocol)
    check_insurance_fund(protocol)


def fingerprint(protocol: Protocol) -> tuple:
    """Everything a transaction can change, comparable with ==."""
    rows = len(protocol._row_ids)
    arrays = tuple(
        tuple(map(tuple, getattr(protocol, name)[:rows].tolist())) for name in protocol._POSITION_ARRAYS
    )
    return (
        tuple(protocol._collateral[:rows].tolist()),
        tuple(protocol._registered[:rows].tolist()),
        arrays,
        tuple(protocol._row_ids),
        tuple(protocol.account_ids),
        tuple(repr(m) for m in protocol.markets),
        tuple(protocol.tiers),
        protocol.insurance_fund,
        protocol.insurance_fund_reserved,
        tuple(sorted(protocol.fund_reserve.items())),
        protocol.bad_debt,
        protocol.token_balance,
        protocol.vault,
        tuple(protocol.prices),
        # The liquidation engine's storage.
        repr(sorted((m, w.start, w.used) for m, w in protocol.liquidator.rate_windows.items())),
        repr(sorted(protocol.liquidator._liquidation_params.items())),
        tuple(sorted(protocol.liquidator.configured.items())),
        (protocol.liquidator.owner, protocol.liquidator.pending_owner),
        len(protocol.events),
        protocol.block_number,
        protocol.timestamp,
    )


def canonical_counterparties(protocol: Protocol, market_id: int, account_id: int, ranking) -> list[int]:
    """The reference keeper's choice (simulator/agents/reference_keeper.py) on the model: the prefix
    of the ranking that covers the position (PNL_LEVERAGE), or all of it (PRO_RATA)."""
    return reference_keeper.canonical_counterparties(ModelKeeper(protocol), market_id, account_id, ranking)


def run_keepers(protocol: Protocol, keeper: int = KEEPER, max_rounds: int = 10) -> KeeperReport:
    """The reference keeper on the model: liquidate until nothing can be acted on."""
    return reference_keeper.run_keepers(ModelKeeper(protocol, keeper), max_rounds)


def health_by_loop(protocol: Protocol):
    """(values, mms, ims) of the registered accounts, one `health` call each."""
    rows = [protocol.health(i) for i in protocol.account_ids]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def as_list(array) -> list:
    return [int(x) for x in np.asarray(array, dtype=object).tolist()]


# --- random books -----------------------------------------------------------------------------

TRADERS = (ALICE, BOB, CAROL, DAVE, ERIN, FRANK)
WHALE = 0x3A1E  # a deep-pocketed counterparty for matched fills


def random_book(policy: BadDebtPolicy, ranking: AdlRanking, ops) -> Protocol:
    """Two markets, six traders with $50,000 each, a $5M whale, then `ops` (reverts skipped)."""
    protocol = Protocol.from_specs(random_markets(policy, ranking), insurance_fund_usd=1_000)
    for trader in TRADERS:
        protocol.fund(trader, 50_000)
    protocol.fund(WHALE, 5_000_000)
    for op in ops:
        apply_op(protocol, op)
    return protocol


def random_markets(policy: BadDebtPolicy, ranking: AdlRanking) -> list[MarketSpec]:
    """Two markets with tiers, funding and the given liquidation rules."""
    return [
        MarketSpec(
            "BTC", 100_000, depth2pct=3_000_000, tiers=[(1_000_000, "0.075")], max_funding_rate="0.00001",
            skew_scale=50, policy=policy, ranking=ranking, slice_threshold=500_000,
        ),
        MarketSpec(
            "ETH", 4_000, imr="0.05", mmr="0.025", depth2pct=1_000_000, max_funding_rate="0.00002",
            skew_scale=1_000, policy=policy, ranking=ranking, rate_limit_notional=400_000, rate_limit_window=30,
        ),
    ]


def openings():
    """A hypothesis strategy of one position opened at a leverage of 1 to 15 (see `apply_op`)."""
    from hypothesis import strategies as st

    return st.tuples(st.just("open"), st.sampled_from(TRADERS), st.sampled_from([0, 1]),
                     st.sampled_from([1, -1]), st.integers(1, 12),
                     st.sampled_from(["matched", "taker", "isolated"]))


def books():
    """(policy, ranking, ops) of a random book: positions first, then anything, shocks included."""
    from hypothesis import strategies as st

    return st.tuples(
        st.sampled_from(list(BadDebtPolicy)),
        st.sampled_from(list(AdlRanking)),
        st.lists(openings(), min_size=2, max_size=10),
        st.lists(operations(), min_size=1, max_size=30),
        st.lists(shocks(), min_size=1, max_size=4),
    ).map(lambda book: (book[0], book[1], book[2] + book[3] + book[4]))


def shocks():
    """Time passes (funding accrues), the price moves -30% to +30% in one market, then (usually)
    keepers run."""
    from hypothesis import strategies as st

    return st.tuples(st.just("price"), st.sampled_from([0, 1]), st.integers(7_000, 13_000),
                     st.sampled_from([True, True, False]), st.integers(0, 7_200))


def operations():
    """A hypothesis strategy of one operation on a random book (see `apply_op`)."""
    from hypothesis import strategies as st

    who = st.sampled_from(TRADERS)
    market = st.sampled_from([0, 1])
    return st.one_of(
        openings(),
        shocks(),
        shocks(),
        st.tuples(st.just("keepers")),
        st.tuples(st.just("deposit"), who, st.integers(1, 200_000)),
        st.tuples(st.just("withdraw"), who, st.integers(1, 100_000)),
        st.tuples(st.just("matched"), who, st.sampled_from(TRADERS + (0x7A0017,)), market,
                  st.integers(100, 1_500_000), st.integers(-100, 100)),
        st.tuples(st.just("taker"), who, market, st.integers(-800_000, 800_000), st.booleans()),
        st.tuples(st.just("margin"), who, market, st.integers(-50_000, 50_000)),
        st.tuples(st.just("depth"), market, st.integers(0, 30)),
        st.tuples(st.just("advance"), st.integers(0, 3_600), st.integers(0, 3)),
        st.tuples(st.just("funding"), who, market),
        st.tuples(st.just("insurance"), st.integers(1, 50_000)),
        st.tuples(st.just("keepers")),
    )


# Operations that are exactly one transaction (so a revert must leave no trace at all).
SINGLE_TRANSACTION = {"deposit", "withdraw", "matched", "taker", "margin", "depth", "funding", "insurance"}


def apply_op(protocol: Protocol, op: tuple) -> bool:
    """Applies one operation; returns False when it reverted (ModelRevert), True otherwise."""
    kind, *args = op
    try:
        if kind == "deposit":
            protocol.fund(args[0], args[1])
        elif kind == "withdraw":
            protocol.withdraw(args[0], args[1] * 10**6)
        elif kind == "matched":
            buyer, seller, market_id, dollars, offset_bp = args
            price = protocol.prices[market_id]
            size = wad(dollars) * WAD // price
            fill_price = price * (10_000 + offset_bp) // 10_000
            protocol.settle_matched_fill(buyer, seller, market_id, size, fill_price)
        elif kind == "taker":
            who, market_id, dollars, isolated = args
            size = wad(dollars) * WAD // protocol.prices[market_id]
            if isolated:
                protocol.open_isolated_position(who, market_id, size)
            else:
                protocol.open_position(who, market_id, size)
        elif kind == "open":
            # A position of `leverage` times the account's value, opened one of three ways.
            who, market_id, side, leverage, how = args
            price = protocol.prices[market_id]
            value = protocol.account_value(who)
            if how == "isolated":
                protocol.transfer_margin(who, market_id, max(value // 2, 1))
                value = protocol.health(protocol.isolated_account_id(who, market_id))[0]
            size = side * (max(value, WAD) * leverage * WAD // price)
            if how == "matched":
                buyer, seller = (who, WHALE) if side > 0 else (WHALE, who)
                protocol.settle_matched_fill(buyer, seller, market_id, abs(size), price)
            elif how == "taker":
                protocol.open_position(who, market_id, size)
            else:
                protocol.open_isolated_position(who, market_id, size)
        elif kind == "margin":
            protocol.transfer_margin(args[0], args[1], wad(args[2]))
        elif kind == "price":
            market_id, factor_bp, then_keepers, seconds = args
            protocol.advance(seconds, 1)
            protocol.set_price(market_id, max(1, protocol.prices[market_id] * factor_bp // 10_000))
            if then_keepers:
                run_keepers(protocol)
        elif kind == "depth":
            market_id, tenths = args
            base = (3_000_000, 1_000_000)[market_id]
            protocol.set_depth(market_id, wad(base) * tenths // 10)
        elif kind == "advance":
            protocol.advance(args[0], args[1])
        elif kind == "funding":
            protocol.settle_funding(args[0], args[1])
        elif kind == "insurance":
            protocol.fund_insurance(args[0])
        elif kind == "keepers":
            run_keepers(protocol)
        else:
            raise ValueError(kind)
    except ModelRevert:
        return False
    return True


# --- hypothesis budgets -----------------------------------------------------------------------


def examples(at_ci: int) -> int:
    """`max_examples` for a test that runs `at_ci` examples under the "ci" profile (max_examples
    100, hypothesis' default): scaled by the profile tests/conftest.py loaded (HYPOTHESIS_PROFILE:
    "quick" 10 gives a tenth, "nightly" 1000 ten times as many), never fewer than 2."""
    from hypothesis import settings

    return max(2, at_ci * settings.default.max_examples // 100)


def steps(at_ci: int) -> int:
    """`stateful_step_count` for a machine that runs `at_ci` steps under "ci": twice as many under a
    profile with more examples than "ci" ("nightly"), the same otherwise."""
    from hypothesis import settings

    return at_ci * 2 if settings.default.max_examples > 100 else at_ci
