"""The model's fast path for the opening book's trades (simulator/model/opening.py) leaves exactly
the state the mirror leaves, and the same outcome for every trade, refusals included."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import event, given, settings
from hypothesis import strategies as st

from simulator.exchange import BookSeed, TraderSeed
from simulator.market_spec import MarketSpec
from simulator.model.exchange import ModelExchange
from simulator.model.opening import OpeningTrades
from simulator.runner import opening_book
from simulator.scenarios import load_scenario, with_overrides
from simulator.units import WAD
from tests.model.helpers import examples, fingerprint


class MirrorOnly(OpeningTrades):
    """Every trade through the mirror: the reference."""

    def _taker_trade(self, *args) -> bool:
        return False


def open_both(specs, book: BookSeed):
    """The book opened on two model exchanges, through the fast path and through the mirror alone:
    (fast exchange, its report, its opening), (mirror exchange, its report)."""
    fast, mirror = ModelExchange(specs), ModelExchange(specs)
    mirror._opening = MirrorOnly(mirror.protocol)
    fast_report = fast.open_book(book, fast.timestamp + 1)
    mirror_report = mirror.open_book(book, mirror.timestamp + 1)
    return (fast, fast_report), (mirror, mirror_report)


def assert_same(fast, fast_report, mirror, mirror_report) -> None:
    assert fast_report == mirror_report
    assert fingerprint(fast.protocol) == fingerprint(mirror.protocol)
    assert fast.timestamp == mirror.timestamp


SPECS = [
    MarketSpec("BTC", 100_000, imr="0.05", mmr="0.025", tiers=[(200_000, "0.04"), (1_000_000, "0.08")],
               max_funding_rate="0.00001", skew_scale=100, min_position_notional=100),
    MarketSpec("ETH", 4_000, max_open_interest=150, max_funding_rate="0.00002", skew_scale=5_000),  # caps in units
    MarketSpec("ALT", "0.5", imr="0.2", mmr="0.1", max_open_interest=150_000),
]
PRICES = [100_000, 4_000, 0.5]

trader = st.tuples(
    st.integers(0, 60_000),  # collateral, USD
    st.lists(st.tuples(st.integers(0, 2), st.integers(-400_000, 400_000)), max_size=3),  # (market, notional USD)
    st.booleans(),  # isolated (its first market)
)


@settings(max_examples=examples(60), deadline=None)
@given(traders=st.lists(trader, min_size=1, max_size=40), vault_usd=st.sampled_from([5_000, 200_000, 10**8]),
       batch=st.sampled_from([3, 7, 500]))
def test_the_fast_path_leaves_the_mirrors_state(traders, vault_usd, batch):
    """Random opening books over three markets (tiers, funding accruing between blocks, open-
    interest caps, a minimum notional) with accounts over their leverage, positions below the
    minimum, a vault too small for the book and caps reached: the same outcome for every trade
    (each refusal's words), the same storage (fingerprint) and the same clock; blocks of a few
    trades make funding accrue between them."""
    seeds = []
    for i, (collateral, legs, isolated) in enumerate(traders):
        positions = {}
        for market, notional in legs:
            size = int(notional / PRICES[market] * WAD)
            if size:
                positions[market] = size
        isolated_market = next(iter(positions)) if isolated and positions else None
        if isolated_market is not None:
            positions = {isolated_market: positions[isolated_market]}
        seeds.append(TraderSeed(f"0x{0xA000 + i:040x}", collateral * 10**6, positions, isolated_market))
    book = BookSeed(traders=seeds, vault_collateral=vault_usd * 10**6, insurance_fund=10**9)
    with patch("simulator.exchange.SETUP_BATCH", batch):
        (fast, fast_report), (mirror, mirror_report) = open_both(SPECS, book)
    assert_same(fast, fast_report, mirror, mirror_report)
    event("some trades refused" if fast_report.positions_rejected else "every trade went through")
    if fast._opening.fast:
        event("some trades through the fast path")
    if fast._opening.through_mirror:
        event("some trades handed to the mirror")


def test_the_fast_path_opens_oct_2025_as_the_mirror():
    """oct-2025's own opening book (600 accounts: cross and isolated, four markets with tiers):
    the same state, every trade through the fast path."""
    scenario = with_overrides(load_scenario("oct-2025"), accounts=600, mode="model")
    book, _, _ = opening_book(scenario, scenario.seed, 600)
    (fast, fast_report), (mirror, mirror_report) = open_both(scenario.market_specs(), book)
    assert_same(fast, fast_report, mirror, mirror_report)
    assert fast._opening.through_mirror == 0 and fast._opening.fast == fast_report.positions_opened > 1000


def test_a_trade_the_fast_path_would_refuse_gets_the_mirrors_words():
    """An account over its leverage: the fast path writes nothing and the mirror's revert names
    the account and its margin."""
    seeds = [TraderSeed(f"0x{0xA001:040x}", 1_000 * 10**6, {0: 1 * WAD})]  # $100,000 of BTC on $1,000
    book = BookSeed(traders=seeds, vault_collateral=10**14, insurance_fund=0)
    (fast, fast_report), (mirror, mirror_report) = open_both(SPECS, book)
    assert_same(fast, fast_report, mirror, mirror_report)
    [(_, _, reason)] = fast_report.positions_rejected
    assert reason.startswith("InsufficientMargin(") and fast._opening.fast == 0 and fast._opening.through_mirror == 1


@settings(max_examples=examples(30), deadline=None)
@given(traders=st.lists(trader, min_size=1, max_size=20), seconds=st.integers(0, 3_000))
def test_the_fast_paths_health_is_the_mirrors(traders, seconds):
    """The fast path's health of an account (its terms per market, one market's position given)
    plus its collateral is the mirror's `_health`, for every account and the vault, with funding
    accrued over `seconds` since the opening (within the oracle's heartbeat)."""
    seeds = [TraderSeed(f"0x{0xA000 + i:040x}", collateral * 10**6,
                        {m: int(n / PRICES[m] * WAD) for m, n in legs if int(n / PRICES[m] * WAD)})
             for i, (collateral, legs, _) in enumerate(traders)]
    exchange = ModelExchange(SPECS)
    exchange.open_book(BookSeed(traders=seeds, vault_collateral=10**14, insurance_fund=0), exchange.timestamp + 1)
    protocol, opening = exchange.protocol, exchange._opening
    protocol.advance(seconds, 1)
    for account_id in protocol.account_ids:
        row = protocol._rows[account_id]
        for m in range(len(SPECS)):
            price = protocol._price_of(m)
            value, mm, im = opening._health(row, m, opening._stored(row, m), price,
                                            protocol._current_funding_index(m, price))
            assert (value + protocol._collateral[row], mm, im) == protocol._health(account_id)
