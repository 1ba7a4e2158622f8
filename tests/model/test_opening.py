"""The model's fast path for the opening book's trades (simulator/model/opening.py) leaves exactly
the state the mirror leaves, and the same outcome for every trade, refusals included."""

from __future__ import annotations

from unittest.mock import patch

import pytest
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
    """Every deposit and trade through the mirror: the reference."""

    def _taker_trade(self, *args) -> bool:
        return False

    def _deposit(self, *args) -> bool:
        return False


def open_one(specs, book: BookSeed, min_collateral: int = 0, mirror_only: bool = False):
    """(exchange, its set-up report): the book opened on a model exchange, through the fast path
    or through the mirror alone."""
    exchange = ModelExchange(specs)
    exchange.protocol.set_min_collateral(min_collateral)
    if mirror_only:
        exchange._opening = MirrorOnly(exchange.protocol)
    return exchange, exchange.open_book(book, exchange.timestamp + 1)


def open_both(specs, book: BookSeed):
    return open_one(specs, book), open_one(specs, book, mirror_only=True)


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
       batch=st.sampled_from([3, 7, 500]), minimum_usd=st.sampled_from([0, 100, 2_000]))
def test_the_fast_path_leaves_the_mirrors_state(traders, vault_usd, batch, minimum_usd):
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
        outcomes = []
        for mirror_only in (False, True):
            try:
                outcomes.append(open_one(SPECS, book, minimum_usd * WAD, mirror_only))
            except RuntimeError as exc:  # a deposit below the minimum stops the opening
                outcomes.append(str(exc))
    if isinstance(outcomes[0], str) or isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]  # the same words from both
        event("a deposit refused: the opening stops")
        return
    (fast, fast_report), (mirror, mirror_report) = outcomes
    assert_same(fast, fast_report, mirror, mirror_report)
    event("some trades refused" if fast_report.positions_rejected else "every trade went through")
    if fast._opening.fast:
        event("some calls through the fast path")
    if fast._opening.through_mirror:
        event("some calls handed to the mirror")


def test_the_fast_path_opens_oct_2025_as_the_mirror():
    """oct-2025's own opening book (600 accounts: cross and isolated, four markets with tiers):
    the same state, every deposit and trade through the fast path."""
    scenario = with_overrides(load_scenario("oct-2025"), accounts=600, mode="model")
    book, _, _ = opening_book(scenario, scenario.seed, 600)
    (fast, fast_report), (mirror, mirror_report) = open_both(scenario.market_specs(), book)
    assert_same(fast, fast_report, mirror, mirror_report)
    # every deposit (the vault's, the fund's own call aside) and every trade
    assert fast._opening.through_mirror == 0
    assert fast._opening.fast == len([t for t in book.traders if t.collateral]) + 1 + fast_report.positions_opened


def test_a_trade_the_fast_path_would_refuse_gets_the_mirrors_words():
    """An account over its leverage: the fast path writes nothing and the mirror's revert names
    the account and its margin."""
    seeds = [TraderSeed(f"0x{0xA001:040x}", 1_000 * 10**6, {0: 1 * WAD})]  # $100,000 of BTC on $1,000
    book = BookSeed(traders=seeds, vault_collateral=10**14, insurance_fund=0)
    (fast, fast_report), (mirror, mirror_report) = open_both(SPECS, book)
    assert_same(fast, fast_report, mirror, mirror_report)
    [(_, _, reason)] = fast_report.positions_rejected
    assert reason.startswith("InsufficientMargin(")
    assert fast._opening.fast == 2 and fast._opening.through_mirror == 1  # the deposits; the trade by the mirror


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
