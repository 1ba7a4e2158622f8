"""The model against the reference numbers of docs/design.md §11 (the same cases tests/test_engine.py
checks on chain)."""

import pytest

from simulator.chain.deploy import MarketSpec
from simulator.model import Protocol
from simulator.model import depth as DepthCurve
from simulator.model.errors import BookExhausted, InsufficientMargin
from simulator.units import WAD, wad
from tests.model.helpers import ALICE, BOB, check_invariants

BTC, ETH = 0, 1
DEFAULT_MARKETS = (
    MarketSpec("BTC", 100_000, depth2pct=10_000_000),
    MarketSpec("ETH", 4_000, depth2pct=5_000_000),
)


def test_10x_leverage_controls_ten_times_the_deposit():
    protocol = Protocol.from_specs(DEFAULT_MARKETS)
    protocol.fund(ALICE, 10_000)
    protocol.fund(BOB, 10_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD, wad(100_000))  # $100,000 at the oracle price
    assert protocol.initial_margin(ALICE) == wad(10_000)
    assert protocol.account_value(ALICE) == wad(10_000)
    assert protocol.get_position(ALICE, BTC) == (WAD, wad(100_000))
    before = len(protocol.events)
    with pytest.raises(InsufficientMargin) as info:
        protocol.settle_matched_fill(ALICE, BOB, BTC, 10**12, wad(100_000))
    assert info.value.accountId == ALICE and info.value.accountValue == wad(10_000)
    assert info.value.initialMargin == wad(10_000) + wad("0.1") // 10  # 1e-6 BTC more at 10%
    assert len(protocol.events) == before  # reverted: nothing emitted
    assert protocol.get_position(ALICE, BTC) == (WAD, wad(100_000))
    check_invariants(protocol)


def test_depth_curve_seed_numbers():
    protocol = Protocol.from_specs([MarketSpec("ETH", 1_000, depth2pct=370_000)])
    protocol.fund(ALICE, 100_000)
    size = wad(370)  # $370,000 at $1,000
    assert protocol.quote(0, -size) == wad(990)
    protocol.open_position(ALICE, 0, -size, 0)
    [event] = protocol.events_named("PositionChanged")[:1]
    assert event.fillPrice == wad(990)  # average 1% below
    view = protocol.market_view(0)
    assert view.book_block == protocol.block_number
    assert view.book_consumed == -wad(370_000)
    # The marginal price after the walk is 2% below: the next tiny sell starts there.
    assert DepthCurve.impact_of(-view.book_consumed, view.depth2pct) == wad("0.02")
    assert wad(980) - 10**5 < protocol.quote(0, -(10**6)) < wad(980)  # half its own 1e-9 walk below
    protocol.advance(1)
    assert protocol.market_view(0).book_consumed == 0  # a new block, a fresh book
    assert protocol.quote(0, -size) == wad(990)
    check_invariants(protocol)


def test_book_consumption_accumulates_within_a_block_only():
    protocol = Protocol.from_specs([MarketSpec("ETH", 1_000, depth2pct=370_000)])
    protocol.fund(ALICE, 100_000)
    protocol.fund(BOB, 100_000)
    protocol.open_position(ALICE, 0, -wad(185), 0)
    protocol.open_position(BOB, 0, -wad(185), 0)  # same block
    fills = [e.fillPrice for e in protocol.events_named("PositionChanged") if e.accountId in (ALICE, BOB)]
    assert fills == [wad(995), wad(985)]
    protocol.advance(12, blocks=1)
    protocol.open_position(ALICE, 0, wad(185), None)  # next block: the walk starts from 0 again
    assert protocol.events_named("PositionChanged")[-2].fillPrice == wad(1005)
    check_invariants(protocol)


def test_auto_mine_puts_every_transaction_in_its_own_block():
    protocol = Protocol.from_specs([MarketSpec("ETH", 1_000, depth2pct=370_000)], auto_mine=True)
    protocol.fund(ALICE, 100_000)
    protocol.fund(BOB, 100_000)
    protocol.open_position(ALICE, 0, -wad(185), 0)
    protocol.open_position(BOB, 0, -wad(185), 0)
    fills = [e.fillPrice for e in protocol.events_named("PositionChanged") if e.accountId in (ALICE, BOB)]
    assert fills == [wad(995), wad(995)]


def test_book_ends_at_max_impact():
    protocol = Protocol.from_specs([MarketSpec("ETH", 1_000, depth2pct=370_000)])
    protocol.fund(ALICE, 1_000_000)
    # 10% max impact = 5x the 2% depth: $1.85M is the whole book.
    assert protocol.book_capacity(0, False) == wad(1_850_000)
    with pytest.raises(BookExhausted) as info:
        protocol.open_position(ALICE, 0, -(wad(1_850) + 1), 0)
    assert info.value.maxImpact == wad("0.1") and info.value.impact > wad("0.1")


def test_5x_long_zero_equity_at_minus_20_percent():
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, imr="0.2", mmr=0, depth2pct=10**9)])
    protocol.fund(ALICE, 20_000)
    protocol.fund(BOB, 100_000)
    protocol.settle_matched_fill(ALICE, BOB, 0, WAD, wad(100_000))
    protocol.set_price(0, wad(80_000))
    assert protocol.account_value(ALICE) == 0
    assert protocol.maintenance_margin(ALICE) == 0
    assert not protocol.is_liquidatable(ALICE)  # AV < MM is strict
    protocol.set_price(0, wad("79999.99"))
    assert protocol.account_value(ALICE) < 0
    assert protocol.is_liquidatable(ALICE)
    check_invariants(protocol)


def test_tiered_maintenance_margin_hyperliquid_example():
    spec = MarketSpec("BTC", 100_000, imr="0.025", mmr="0.0125", tiers=[(150_000_000, "0.025")], depth2pct=10**9)
    protocol = Protocol.from_specs([spec])
    floors, mmrs, deductions = protocol.tiers_of(0)
    assert deductions == [0, wad(1_875_000)]
    protocol.fund(ALICE, 6_000_000)
    protocol.fund(BOB, 6_000_000)
    protocol.settle_matched_fill(ALICE, BOB, 0, wad(2_000), wad(100_000))  # $200M
    assert protocol.maintenance_margin(ALICE) == wad(3_125_000)
    assert protocol.initial_margin(ALICE) == wad(5_000_000)
    check_invariants(protocol)


@pytest.mark.parametrize("notional", [149_999_999, 150_000_000, 150_000_001])
def test_tiered_margin_is_continuous_at_the_floor(notional):
    spec = MarketSpec("BTC", 1, imr="0.025", mmr="0.0125", tiers=[(150_000_000, "0.025")], depth2pct=10**12)
    protocol = Protocol.from_specs([spec], vault_collateral_usd=0)
    protocol.fund(ALICE, 5_000_000)
    protocol.fund(BOB, 5_000_000)
    protocol.settle_matched_fill(ALICE, BOB, 0, wad(notional), wad(1))
    expected = (
        notional * WAD * 125 // 10_000 if notional < 150_000_000 else notional * WAD * 25 // 1000 - wad(1_875_000)
    )
    assert protocol.maintenance_margin(ALICE) == expected
