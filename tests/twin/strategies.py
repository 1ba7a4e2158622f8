"""Hypothesis strategies of the differential suite: books, price shocks, user operations, blocks of
several transactions (each drawn as data; tests/twin/harness.py applies them to a Twin)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from simulator.units import usdc
from tests.twin.harness import SPECS

# -40% .. +20% per market per step, mostly moves of a few percent: those liquidate accounts with
# equity left (penalties, partial slices); the large ones bankrupt them (the waterfall, ADL).
# Each move also adds up to 0.01 of a cent of "dust" to the 8-decimal answer: round prices make
# round notionals, under which rounding directions do not show.
PRICE_STEPS_BP = st.tuples(
    st.one_of(st.integers(9_400, 10_400), st.integers(9_400, 10_400), st.integers(6_000, 12_000)),
    st.integers(0, 999_999),
)
DEPTH_FACTORS = (0, 1, 5, 10, 20)  # tenths of the spec's depth: 0 = no book


@dataclass(frozen=True)
class Scenario:
    specs: tuple  # spec name per slot in use (2 or 3)
    vault_usd: int
    insurance_usd: int
    collateral: tuple  # token units (6 decimals) per trader
    openings: tuple
    steps: tuple


def openings(n_traders: int, n_markets: int):
    """("open", trader, market, side, tenths of leverage on free margin, how, counterparty, band bp,
    dust): the size is leverage * free margin / price, plus `dust` wei so that sizes, notionals and
    fees are not round numbers (rounding directions show only then)."""
    return st.tuples(
        st.just("open"),
        st.integers(0, n_traders - 1),
        st.integers(0, n_markets - 1),
        st.sampled_from([1, -1]),
        st.one_of(st.integers(60, 150), st.integers(5, 150)),  # mostly near the largest allowed
        st.sampled_from(["cross", "isolated", "matched"]),
        st.integers(0, n_traders - 1),
        st.integers(-100, 100),
        st.integers(0, 10**15),
    )


def user_ops(n_traders: int, n_markets: int):
    trader = st.integers(0, n_traders - 1)
    market = st.integers(0, n_markets - 1)
    return st.one_of(
        openings(n_traders, n_markets),
        st.tuples(st.just("close"), trader, market, st.booleans(), st.sampled_from([1, 2, 4])),
        st.tuples(st.just("withdraw"), trader, st.integers(1, 100)),
        st.tuples(st.just("margin"), trader, market, st.integers(-100, 100)),
        st.tuples(st.just("funding"), trader, market),
        st.tuples(st.just("insurance"), st.integers(1, 20_000)),
    )


def shock_steps(n_traders: int, n_markets: int):
    return st.tuples(
        st.one_of(st.just(0), st.integers(1, 7_200)),  # seconds passing (funding)
        st.lists(st.one_of(st.none(), PRICE_STEPS_BP), min_size=n_markets, max_size=n_markets),
        st.lists(st.one_of(st.none(), st.sampled_from(DEPTH_FACTORS)), min_size=n_markets, max_size=n_markets),
        st.lists(user_ops(n_traders, n_markets), max_size=2),
    )


@st.composite
def scenarios(draw) -> Scenario:
    n_markets = draw(st.integers(2, 3))
    n_traders = draw(st.integers(3, 8))
    return Scenario(
        specs=tuple(draw(st.sampled_from(sorted(SPECS))) for _ in range(n_markets)),
        vault_usd=draw(st.sampled_from([300_000, 3_000_000])),
        insurance_usd=draw(st.sampled_from([0, 2_000, 50_000])),
        collateral=tuple(draw(st.lists(st.integers(usdc(1_000), usdc(200_000)), min_size=n_traders,
                                       max_size=n_traders))),
        openings=tuple(draw(st.lists(openings(n_traders, n_markets), min_size=n_traders, max_size=2 * n_traders))),
        steps=tuple(draw(st.lists(shock_steps(n_traders, n_markets), min_size=1, max_size=4))),
    )


def block_ops(n_traders: int, n_markets: int):
    trader = st.integers(0, n_traders - 1)
    market = st.integers(0, n_markets - 1)
    return st.one_of(
        st.tuples(st.just("trade"), trader, market, st.sampled_from([1, -1]), st.integers(5, 120), st.booleans(),
                  st.integers(0, 10**15)),
        st.tuples(st.just("trade"), trader, market, st.sampled_from([1, -1]), st.integers(5, 120), st.booleans(),
                  st.integers(0, 10**15)),
        st.tuples(st.just("close"), trader, market, st.booleans()),
        st.tuples(st.just("depth"), market, st.sampled_from((0, 3, 5, 10, 20))),
        st.tuples(st.just("liquidate"), st.integers(0, 10**6), market),
        st.tuples(st.just("price"), market, st.integers(9_000, 10_500), st.integers(0, 999_999)),
        # A walk, a requote of the same book, another walk: setDepth's rescale, then its effect.
        st.tuples(st.just("requote"), trader, trader, market, st.sampled_from([1, -1]), st.integers(5, 120),
                  st.sampled_from((0, 3, 5, 20)), st.integers(0, 10**15)),
    )


@st.composite
def block_scenarios(draw):
    scenario = draw(scenarios())
    n_markets, n_traders = len(scenario.specs), len(scenario.collateral)
    blocks = draw(st.lists(st.lists(block_ops(n_traders, n_markets), min_size=2, max_size=5), min_size=1, max_size=4))
    return scenario, tuple(tuple(b) for b in blocks)


@dataclass(frozen=True)
class DustRanking:
    """One bankrupt long in a BTC market at $100,000 and, on the short side, real winners (the
    long's counterparties in matched fills) and dust winners (a few wei short against the vault, on
    a deposit of at most $1), each role at any trader, so dust lands anywhere in the ranking."""

    ranking: int  # AdlRanking
    bankrupt: int  # trader index
    roles: tuple  # per trader: ("winner", size wei, deposit token units) | ("dust", ...) | ("idle", 0, 0)
    crash_usd: int  # the price the crash goes to


@st.composite
def dust_rankings(draw, n_traders: int = 8) -> DustRanking:
    bankrupt = draw(st.integers(0, n_traders - 1))
    role = st.one_of(
        st.tuples(st.just("winner"), st.integers(10**16, 2 * 10**18), st.integers(usdc(20_000), usdc(60_000))),
        st.tuples(st.just("dust"), st.one_of(st.just(1), st.integers(1, 10**9)), st.integers(1, usdc(1))),
        st.tuples(st.just("idle"), st.just(0), st.just(0)),
    )
    roles = draw(st.lists(role, min_size=n_traders, max_size=n_traders)
                 .filter(lambda rs: any(r[0] == "winner" for i, r in enumerate(rs) if i != bankrupt)))
    return DustRanking(
        ranking=draw(st.sampled_from([0, 1, 6])),  # PNL_LEVERAGE, PRO_RATA, LEVERAGE_DRAIN
        bankrupt=bankrupt,
        roles=tuple(("idle", 0, 0) if i == bankrupt else r for i, r in enumerate(roles)),
        crash_usd=draw(st.integers(80_000, 88_000)),
    )
