"""The simulator's keepers on the model backend: the free insurance fund is budgeted over a block, so
liquidations the fund cannot pay once earlier ones have drawn it are held, not sent to revert."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from simulator.agents.keepers import ROUNDING_ROOM, Keepers, beyond_any_fill, drain_count
from simulator.chain.deploy import AdlRanking, MarketSpec
from simulator.exchange import Deleverage, HealthScan, Liquidate
from simulator.model.exchange import ModelExchange
from simulator.position_index import PositionIndex
from simulator.runner import run_scenario
from simulator.scenarios import load_scenario, with_overrides, with_settings
from simulator.units import WAD, wad
from tests.golden import model_exchange
from tests.model.helpers import canonical_counterparties

BTC = 0
TRADERS = [0xA11CE, 0xB0B, 0xCA201]
WINNER = 0xD0D0


def underwater_book(fund_usd: int) -> ModelExchange:
    """Three 1 BTC longs from $100,000 on $14,400 each; BTC at $85,000 leaves each $600 under water.
    The winner holds the other side; the book is deep enough that impact is negligible."""
    exchange = ModelExchange([MarketSpec("BTC", 100_000, depth2pct=10**12)])
    protocol = exchange.protocol
    protocol.fund(WINNER, 1_000_000)
    for trader in TRADERS:
        protocol.fund(trader, 14_400)
        protocol.settle_matched_fill(trader, WINNER, BTC, WAD, wad(100_000))
    if fund_usd:
        protocol.fund_insurance(fund_usd)
    protocol.set_price(BTC, wad(85_000))
    return exchange


def test_the_fund_is_budgeted_over_the_block():
    exchange = underwater_book(fund_usd=1_000)
    keepers = Keepers([AdlRanking.PNL_LEVERAGE])
    scan = exchange.scan()
    # Each liquidation alone fits the $1,000 fund ...
    assert exchange.adl_required([(t, BTC) for t in TRADERS]) == [False, False, False]
    # ... but only one fits it after the others: the rest wait.
    actions = keepers.plan(exchange, scan, exchange.snapshot())
    assert actions == [Liquidate(TRADERS[0], BTC)] and keepers.held == 2
    results = exchange.execute(actions, exchange.timestamp + 1)
    assert all(result.ok for result in results)
    # Next step the fund ($400 left) cannot pay either of them: both go to ADL, one per side a step.
    scan = exchange.scan()
    assert exchange.adl_required([(t, BTC) for t in TRADERS[1:]]) == [True, True]
    [deleverage] = keepers.plan(exchange, scan, exchange.snapshot())
    assert deleverage.account_id == TRADERS[1] and deleverage.counterparties == (WINNER,)
    assert all(result.ok for result in exchange.execute([deleverage], exchange.timestamp + 1))


def test_without_a_budget_the_block_sends_liquidations_that_revert():
    exchange = underwater_book(fund_usd=1_000)
    actions = Keepers([AdlRanking.PNL_LEVERAGE]).plan(exchange, exchange.scan())
    assert actions == [Liquidate(t, BTC) for t in TRADERS]
    results = exchange.execute(actions, exchange.timestamp + 1)
    assert [r.ok for r in results] == [True, False, False]
    assert all(r.error.startswith("UseDeleverage") for r in results[1:])


def test_an_earmarked_deficit_is_not_charged_to_the_budget():
    """A cross account whose deficit the fund has already earmarked draws nothing more."""
    exchange = underwater_book(fund_usd=0)
    protocol = exchange.protocol
    protocol.fund_insurance(1_300)
    protocol.fund_reserve[TRADERS[2]] = 600 * WAD  # as settleDeficit leaves it: moved out of the free fund
    protocol.insurance_fund -= 600 * WAD
    protocol.insurance_fund_reserved += 600 * WAD
    keepers = Keepers([AdlRanking.PNL_LEVERAGE])
    actions = keepers.plan(exchange, exchange.scan(), exchange.snapshot())
    # $700 free: the first trader fits, the second no longer; the earmarked third draws nothing.
    assert actions == [Liquidate(TRADERS[0], BTC), Liquidate(TRADERS[2], BTC)] and keepers.held == 1
    assert all(result.ok for result in exchange.execute(actions, exchange.timestamp + 1))



# -- ADL answers no fill can change -- #


def test_accounts_beyond_any_fill_are_not_asked():
    """With no fund, each trader is $600 under water: whatever its fill, ADL. The keepers answer
    that themselves, and plan exactly what asking `adlRequired` plans."""
    exchange = underwater_book(fund_usd=0)
    state = exchange.snapshot()
    keepers = Keepers.for_markets([MarketSpec("BTC", 100_000, depth2pct=10**12)])
    asked = []
    adl_required = exchange.adl_required
    exchange.adl_required = lambda pairs: asked.extend(pairs) or adl_required(pairs)
    actions = keepers.plan(exchange, exchange.scan(), state)
    assert keepers.settled == 3 and asked == []
    del exchange.adl_required
    assert actions == Keepers([AdlRanking.PNL_LEVERAGE]).plan(exchange, exchange.scan(), state)
    assert actions == [Deleverage(TRADERS[0], BTC, (WINNER,))]  # one ADL per side and block


def test_a_book_walked_the_other_way_is_asked():
    """A buy earlier in the block walks the book up: a long's liquidation fill (a sell) would fill
    above the oracle price, so the answer is the contract's, not the keepers'."""
    exchange = underwater_book(fund_usd=0)
    exchange.protocol.fund(exchange.vault_id, 1_000_000)
    exchange.protocol.open_position(WINNER, BTC, WAD // 10)
    state = exchange.snapshot()
    assert state.book_consumed[BTC] > 0
    keepers = Keepers.for_markets([MarketSpec("BTC", 100_000, depth2pct=10**12)])
    assert keepers.plan(exchange, exchange.scan(), state) == Keepers([AdlRanking.PNL_LEVERAGE]).plan(
        exchange, exchange.scan(), state)
    assert keepers.settled == 0


@pytest.mark.parametrize(("value", "fund_for", "size", "consumed", "settled"), [
    (-ROUNDING_ROOM - 1, 0, WAD, 0, True),
    (-ROUNDING_ROOM, 0, WAD, 0, False),  # within the room: the contract decides
    (-10**24, 10**24 - ROUNDING_ROOM - 1, WAD, 0, True),
    (-10**24, 10**24 - ROUNDING_ROOM, WAD, 0, False),
    (-10**24, 0, WAD, -1, True),  # a long sells into a book already walked down: no better
    (-10**24, 0, WAD, 1, False),  # ... walked up: it may fill above the oracle price
    (-10**24, 0, -WAD, 1, True),
    (-10**24, 0, -WAD, -1, False),
])
def test_beyond_any_fill_boundaries(value, fund_for, size, consumed, settled):
    assert beyond_any_fill(value, fund_for, size, consumed) is settled


# -- the order of a cross account's legs -- #

ALT = 1
HEDGER = 0x4ED6E


def hedged_book() -> ModelExchange:
    """The hedger: $1,500 (IM 7.5%) on a long of 10,000 ALT at $1 hedged by a short of 0.1 BTC at $100,000
    (MM $1,000). ALT falls 6% and BTC stays: AV $900 < MM $970. Closing either leg (1% penalty)
    restores the account's health, so the keepers' first leg is the only one closed."""
    exchange = ModelExchange([MarketSpec("BTC", 100_000, imr="0.075", depth2pct=10**12),
                               MarketSpec("ALT", 1, imr="0.075", depth2pct=10**12)])
    protocol = exchange.protocol
    protocol.fund(WINNER, 1_000_000)
    protocol.fund(HEDGER, 1_500)
    protocol.settle_matched_fill(HEDGER, WINNER, ALT, 10_000 * WAD, wad(1))
    protocol.settle_matched_fill(WINNER, HEDGER, BTC, WAD // 10, wad(100_000))
    protocol.set_price(ALT, wad("0.94"))
    return exchange


def test_keepers_close_legs_in_market_order_by_default():
    exchange = hedged_book()
    actions = Keepers([AdlRanking.PNL_LEVERAGE] * 2).plan(exchange, exchange.scan())
    assert actions == [Liquidate(HEDGER, BTC), Liquidate(HEDGER, ALT)]
    results = exchange.execute(actions, exchange.timestamp + 1)
    # The hedge goes; the healthier account keeps its losing ALT long.
    assert results[0].ok and results[1].error.startswith("NotLiquidatable")
    assert exchange.positions([HEDGER], BTC) == [0] and exchange.positions([HEDGER], ALT) == [10_000 * WAD]


def test_largest_loss_first_closes_the_losing_leg_and_keeps_the_hedge():
    exchange = hedged_book()
    assert exchange.unrealized_pnls([(HEDGER, BTC), (HEDGER, ALT)]) == [0, -600 * WAD]
    actions = Keepers([AdlRanking.PNL_LEVERAGE] * 2, leg_order="largest_loss").plan(exchange, exchange.scan())
    assert actions == [Liquidate(HEDGER, ALT), Liquidate(HEDGER, BTC)]
    results = exchange.execute(actions, exchange.timestamp + 1)
    assert results[0].ok and results[1].error.startswith("NotLiquidatable")
    assert exchange.positions([HEDGER], ALT) == [0] and exchange.positions([HEDGER], BTC) == [-WAD // 10]


def test_an_unknown_leg_order_is_named():
    with pytest.raises(ValueError, match="leg_order must be one of market_id, largest_loss, not 'random'"):
        Keepers([AdlRanking.PNL_LEVERAGE], leg_order="random")


# -- the order of a block's accounts -- #

SAFER, CLOSER = 0x5AFE, 0xC105E


def thin_book() -> ModelExchange:
    """Two 1 BTC longs from $100,000 on a book that moves 2% per $100,000; BTC at $90,000 (MM $4,500).
    SAFER ($14,000: AV $4,000) registered first, CLOSER ($11,500: AV $1,500) second. Closing 1 BTC
    on the untouched book costs about $810 of slippage; on the book the other fill walked, $2,430.
    No insurance fund: a fill that leaves an account below zero is refused (`UseDeleverage`)."""
    exchange = ModelExchange([MarketSpec("BTC", 100_000, depth2pct=100_000)])
    protocol = exchange.protocol
    protocol.fund(WINNER, 1_000_000)
    for trader, collateral in ((SAFER, 14_000), (CLOSER, 11_500)):
        protocol.fund(trader, collateral)
        protocol.settle_matched_fill(trader, WINNER, BTC, WAD, wad(100_000))
    protocol.set_price(BTC, wad(90_000))
    return exchange


def test_health_scan_orders_accounts_above_zero_first_least_margin_first():
    values, mms = [40, 5, -30, -10, 90, 20], [100, 50, 100, 100, 100, 10]
    scan = HealthScan([11, 12, 13, 14, 15, 16], values, mms)
    assert scan.liquidatable() == [11, 12, 13, 14, 15]  # 16 is above its MM
    # AV / MM: 0.4, 0.1, -0.3, -0.1, 0.9; those below zero last, the deepest first.
    assert scan.by_health(scan.liquidatable()) == [12, 11, 15, 13, 14]


def test_keepers_serve_the_registry_order_by_default_and_the_least_margin_first_by_health():
    exchange = thin_book()
    assert Keepers([AdlRanking.PNL_LEVERAGE]).plan(exchange, exchange.scan()) == \
        [Liquidate(SAFER, BTC), Liquidate(CLOSER, BTC)]
    keepers = Keepers([AdlRanking.PNL_LEVERAGE], account_order="health")
    assert keepers.plan(exchange, exchange.scan()) == [Liquidate(CLOSER, BTC), Liquidate(SAFER, BTC)]


@pytest.mark.parametrize("account_order, closed", [("registry", [SAFER]), ("health", [SAFER, CLOSER])])
def test_the_least_margin_first_takes_the_book_before_it_is_walked(account_order, closed):
    """In registry order SAFER's fill walks the book and CLOSER's would leave it below zero: it
    reverts and waits a block. By health CLOSER goes first, and SAFER still closes on the walked book."""
    exchange = thin_book()
    actions = Keepers([AdlRanking.PNL_LEVERAGE], account_order=account_order).plan(exchange, exchange.scan())
    results = exchange.execute(actions, exchange.timestamp + 1)
    assert {a.account_id for a, r in zip(actions, results) if r.ok} == set(closed)
    assert all(r.error.startswith("UseDeleverage") for r in results if not r.ok)
    assert exchange.positions([SAFER, CLOSER], BTC) == [0 if t in closed else WAD for t in (SAFER, CLOSER)]


def test_an_unknown_account_order_is_named():
    with pytest.raises(ValueError, match="account_order must be one of registry, health, not 'random'"):
        Keepers([AdlRanking.PNL_LEVERAGE], account_order="random")


# -- LEVERAGE_DRAIN's list -- #

LEVERED, MIDDLE, UNLEVERED, BUYER = 0xA1, 0xB2, 0xC3, 0xD4


def drain_book() -> ModelExchange:
    """A 0.5 BTC long from $100,000 on $5,000, $2,500 under water at $85,000 (no fund, so ADL), and
    three short winners of 0.5 BTC: $10,000, $20,000 and $500,000 of collateral, leverage 42,500 /
    17,500 = 2.43, 42,500 / 27,500 = 1.55 and 0.08 at $85,000. The first two alone keep 1 - 0.5 =
    0.5 BTC on $45,000, a leverage of 0.94: above the third's, so the draining stops before it."""
    exchange = ModelExchange([MarketSpec("BTC", 100_000, depth2pct=10**12, ranking=AdlRanking.LEVERAGE_DRAIN)])
    protocol = exchange.protocol
    for account, usd in ((TRADERS[0], 5_000), (BUYER, 1_000_000), (LEVERED, 10_000), (MIDDLE, 20_000),
                         (UNLEVERED, 500_000)):
        protocol.fund(account, usd)
    protocol.settle_matched_fill(TRADERS[0], LEVERED, BTC, WAD // 2, wad(100_000))
    protocol.settle_matched_fill(BUYER, MIDDLE, BTC, WAD // 2, wad(100_000))
    protocol.settle_matched_fill(BUYER, UNLEVERED, BTC, WAD // 2, wad(100_000))
    protocol.set_price(BTC, wad(85_000))
    return exchange


def test_leverage_drain_lists_the_winners_the_draining_reaches():
    """The hot loop's keepers, ranking from the contract's view and from the position index, send
    the ranking's prefix the draining reaches (`drain_count`), as the reference keeper does; the
    two drained winners end at one leverage and the third keeps its position."""
    exchange = drain_book()
    protocol = exchange.protocol
    assert exchange.adl_required([(TRADERS[0], BTC)]) == [True]
    ranking, _ = protocol.adl_ranking(BTC, 1)
    assert list(ranking) == [LEVERED, MIDDLE, UNLEVERED, BUYER][:3]
    values = [protocol.health(w)[0] for w in ranking]
    assert drain_count([-WAD // 2] * 3, values, WAD // 2) == 2
    assert canonical_counterparties(protocol, BTC, TRADERS[0], ranking) == [LEVERED, MIDDLE]
    [plain] = Keepers([AdlRanking.LEVERAGE_DRAIN]).plan(exchange, exchange.scan())
    index = PositionIndex(exchange, 1, exchange.vault_id)
    index.bootstrap(exchange.account_ids())
    scan = index.screen(exchange.snapshot(), protocol.timestamp)
    [indexed] = Keepers([AdlRanking.LEVERAGE_DRAIN]).plan(exchange, scan, index=index)
    assert plain == indexed and plain.counterparties == (LEVERED, MIDDLE)
    assert all(result.ok for result in exchange.execute([plain], exchange.timestamp + 1))
    # They keep 0.5 BTC between them in proportion to their values, $17,500 and $27,500.
    kept = [-protocol.position_of(w, BTC)[0] for w in (LEVERED, MIDDLE, UNLEVERED)]
    assert kept == [WAD // 2 * 17_500 // 45_000 + 1, WAD // 2 * 27_500 // 45_000, WAD // 2]


def test_by_health_confirms_only_the_accounts_its_margins_cannot_order():
    """Two accounts whose screened ratios are in the wrong order but within their margins of each
    other, and a third far from both: the two are confirmed and ordered by their exact values, the
    third is placed by the screen alone."""
    exact = {1: (100 * WAD + 5, 200 * WAD), 2: (100 * WAD, 200 * WAD), 3: (10 * WAD, 200 * WAD)}
    asked = []

    def confirm(ids):
        asked.extend(ids)
        return [exact[i][0] for i in ids], [exact[i][1] for i in ids]

    scan = HealthScan([1, 2, 3], np.array([100e18 - 1e13, 100e18, 10e18]), np.full(3, 200e18),
                      margins=np.full(3, 1e14), holds=np.ones(3, dtype=bool), confirm=confirm)
    found = scan.liquidatable()
    assert found == [1, 2, 3] and asked == []  # each surely below its margin
    assert scan.by_health(found) == [3, 2, 1]  # the screen alone would put 1 before 2
    assert sorted(asked) == [1, 2]


# -- ADLs longer than a transaction holds -- #


def five_winner_book(ranking: AdlRanking) -> tuple[ModelExchange, list[int]]:
    """One 1 BTC long from $100,000 on $14,400, against five winners short 0.2 BTC each on
    collateral from $5,000 to $25,000 (distinct scores); at $85,000 the long is $600 under water
    and there is no fund: ADL."""
    exchange = ModelExchange([MarketSpec("BTC", 100_000, depth2pct=10**12, ranking=ranking)])
    protocol = exchange.protocol
    winners = [0xE000 + i for i in range(5)]
    protocol.fund(TRADERS[0], 14_400)
    for i, winner in enumerate(winners):
        protocol.fund(winner, 5_000 * (i + 1))
        protocol.settle_matched_fill(TRADERS[0], winner, BTC, WAD // 5, wad(100_000))
    protocol.set_price(BTC, wad(85_000))
    return exchange, winners


def test_an_adl_longer_than_max_adl_counterparties_goes_out_in_parts():
    """At most two winners a transaction: three partial ADLs in one block on consecutive stretches
    of the list one ADL would send, ending where that ADL ends (no fund to earmark between them;
    to the rounding of the bankruptcy price, a wei a winner)."""
    parted, winners = five_winner_book(AdlRanking.PNL_LEVERAGE)
    whole = copy.deepcopy(parted)
    [one] = Keepers([AdlRanking.PNL_LEVERAGE]).plan(whole, whole.scan())
    actions = Keepers([AdlRanking.PNL_LEVERAGE], max_adl_counterparties=2).plan(parted, parted.scan())
    assert [len(a.counterparties) for a in actions] == [2, 2, 1]
    assert all(a.account_id == TRADERS[0] for a in actions)
    assert sum((a.counterparties for a in actions), ()) == one.counterparties
    assert sorted(one.counterparties) == winners
    results = parted.execute(actions, parted.timestamp + 1)
    assert all(r.ok for r in results)
    assert all(r.ok for r in whole.execute([one], whole.timestamp + 1))
    for account in [TRADERS[0], *winners]:
        assert parted.protocol.get_position(account, BTC) == (0, 0) == whole.protocol.get_position(account, BTC)
        assert abs(parted.protocol.collateral_of(account) - whole.protocol.collateral_of(account)) <= 5
    sizes = [args["size"] for r in results for name, args in r.events if name == "Deleveraged"]
    assert sizes == [2 * WAD // 5, 2 * WAD // 5, WAD // 5]


def test_pro_rata_lists_go_out_whole_whatever_max_adl_counterparties():
    exchange, winners = five_winner_book(AdlRanking.PRO_RATA)
    [action] = Keepers([AdlRanking.PRO_RATA], max_adl_counterparties=2).plan(exchange, exchange.scan())
    assert action.counterparties == tuple(winners)
    assert all(r.ok for r in exchange.execute([action], exchange.timestamp + 1))


def test_max_adl_counterparties_must_be_positive():
    with pytest.raises(ValueError, match="max_adl_counterparties must be at least 1, not 0"):
        Keepers([AdlRanking.PNL_LEVERAGE], max_adl_counterparties=0)


def test_a_scenario_sets_the_winners_a_deleverage_lists(tmp_path):
    """`agents.keepers.max_adl_counterparties` reaches the run's keepers: oct-2025 at 200 accounts
    to step 2100 deleverages positions against up to a dozen winners in one transaction; with 1,
    each transaction lists one winner, so the same ADLs take more of them."""
    def lists(settings: dict, out) -> list[int]:
        scenario = with_settings(with_overrides(load_scenario("oct-2025"), accounts=200, mode="model"), settings)
        run_scenario(scenario, out, model_exchange, max_steps=2100, render=False)
        lines = (out / "events.jsonl").read_text().splitlines()
        return [event["counterparties"] for event in map(json.loads, lines) if event["event"] == "Deleveraged"]

    whole = lists({}, tmp_path / "whole")
    parted = lists({"agents.keepers.max_adl_counterparties": 1}, tmp_path / "parted")
    assert max(whole) > 1 and set(parted) == {1} and len(parted) > len(whole)
