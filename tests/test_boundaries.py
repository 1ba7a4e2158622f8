"""Boundaries of the liquidation decisions (issue 17; INVARIANTS.md, "Boundaries of the
liquidation decisions"): for each `<`, `<=`, `>`, `>=` of LiquidationEngine's `_plan`, `_penalty`,
`_rateRoom`, `_useRateLimit` and ADL checks whose flip can change behaviour, a case with the
compared values equal to the wei (and one unit off where that decides too), chain and model in
lockstep (the Twin compares every outcome and the whole state). Each case names the mutant of
tests/mutation/mutants.py that flips its comparison; run one with
`python -m tests.mutation NAME` (its suite is its case)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulator.chain.deploy import AdlRanking, BadDebtPolicy
from simulator.units import WAD, oracle_answer, usdc, wad
from tests.isolation import isolated
from tests.twin.boundaries import (
    MAX_UINT,
    ZERO_VALUE_DEPTH,
    ZERO_VALUE_ENTRY,
    adl_book,
    by_id,
    haircut_book,
    haircut_distance,
    liquidatable_long,
    preview,
    rate_limited_longs,
    thin_book,
    trader,
    trader_id,
    two_market_long,
    zero_value_winner,
)
from tests.twin.harness import build_env, one_market

ONE_WEI = Decimal("1e-18")  # one wei of a WAD amount given in dollars


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


# ================================================================================================
# _plan (and the slice rule it calls, LiquidationMath.sliceSize)
# ================================================================================================


@pytest.mark.parametrize("below", [0, 1])
def test_sliceSize_notionalExactlyTheThreshold(env, chain, below):
    """A position whose notional equals the slice threshold closes whole; with the threshold one wei
    lower it is sliced (20%). Mutant `slice-at-threshold` (`>` to `>=`)."""
    with isolated(chain):
        spec = thin_book(depth2pct=10_000_000, slice_threshold=Decimal(90_000) - below * ONE_WEI)
        twin, alice_id = liquidatable_long(env, spec, 90_000)
        [event] = twin.liquidate(alice_id, 0).named("Liquidation")
        assert event["sizeClosed"] == (-WAD // 5 if below else -WAD)


@pytest.mark.parametrize("thinner", [0, 1])
def test_plan_sliceLeavingHealthUnchanged(env, chain, thinner):
    """A 20% slice into a book of $18,000 depth leaves AV - MM exactly where it was: not a worsening,
    so the slice is taken (its penalty, capped by a gain of 0, is 0). One wei less depth and the
    slice worsens health: the whole position closes instead. Mutant `worsening-tie-escalates`
    (`after < before` to `<=`)."""
    with isolated(chain):
        twin, alice_id = liquidatable_long(env, thin_book(depth2pct=Decimal(18_000) - thinner * ONE_WEI), 90_000)
        value, mm, _ = twin.health(alice_id)
        _, value_after, mm_after = preview(twin, alice_id, -WAD // 5)
        assert (value_after - mm_after) - (value - mm) == (-18_000 if thinner else 0)
        [event] = twin.liquidate(alice_id, 0).named("Liquidation")
        if thinner:
            assert event["sizeClosed"] == -WAD
        else:
            assert event["sizeClosed"] == -WAD // 5 and event["penalty"] == 0
            assert twin.health(alice_id)[0] - twin.health(alice_id)[1] == value - mm


@pytest.mark.parametrize("short_by", [0, 1])
def test_plan_wholePositionExactlyTheRateRoom(env, chain, short_by):
    """A worsening slice escalates to the whole position when the rate limit leaves room for exactly
    that ($90,000 at $90,000: 1 BTC); one wei of limit less and it is `RateLimited`. Mutant
    `escalation-rate-room-at-whole` (`absSize > rateRoom` to `>=`)."""
    with isolated(chain):
        spec = thin_book(rate_limit_notional=Decimal(90_000) - short_by * ONE_WEI, rate_limit_window=60)
        twin, alice_id = liquidatable_long(env, spec, 90_000)
        outcome = twin.liquidate(alice_id, 0)
        if short_by:
            assert not outcome.ok and outcome.error.name == "RateLimited"
        else:
            [event] = outcome.named("Liquidation")
            assert event["sizeClosed"] == -WAD


@pytest.mark.parametrize("max_size", [WAD, WAD - 1], ids=["exactly", "one-wei-less"])
def test_plan_wholePositionExactlyMaxSize(env, chain, max_size):
    """A worsening slice escalates to the whole position when the caller's `maxSize` is exactly its
    size; one wei less and the call reverts `LiquidationWorsensHealth`. Mutant
    `escalation-max-size-at-whole` (`absSize > maxSize` to `>=`)."""
    with isolated(chain):
        twin, alice_id = liquidatable_long(env, thin_book(), 90_000)
        outcome = twin.liquidate(alice_id, 0, max_size)
        if max_size == WAD:
            [event] = outcome.named("Liquidation")
            assert event["sizeClosed"] == -WAD
        else:
            assert not outcome.ok and outcome.error.name == "LiquidationWorsensHealth"


@pytest.mark.parametrize("thinner", [0, 1])
def test_plan_wholePositionExactlyTheBookRoom(env, chain, thinner):
    """A worsening slice escalates to the whole position when the book can take exactly that: $8,500
    of depth with a 20% maximum impact ends at $85,000 of notional, 1 BTC at $85,000. One wei less
    depth and the book is void for it (`LiquidityVoid` under NONE). Mutant
    `escalation-book-room-at-whole` (`absSize > bookRoom` to `>=`)."""
    with isolated(chain):
        spec = thin_book(depth2pct=Decimal(8_500) - thinner * ONE_WEI, max_impact="0.2")
        twin, alice_id = liquidatable_long(env, spec, 85_000)
        room = twin.view("bookCapacity(0, sell)", ("engine", "bookCapacity", 0, False),
                         lambda: twin.model.book_capacity(0, False)) * WAD // wad(85_000)
        assert room == WAD - thinner
        outcome = twin.liquidate(alice_id, 0)
        if thinner:
            assert not outcome.ok and outcome.error.name == "LiquidityVoid"
        else:
            [event] = outcome.named("Liquidation")
            assert event["sizeClosed"] == -WAD


@pytest.mark.parametrize("entry_offset", [0, 1])
def test_liquidateAccount_voidSliceLeavingExactlyZeroValue(env, chain, entry_offset):
    """Under ADL, a worsening slice whose whole position the book cannot take goes to ADL; the
    `UseDeleverage` shortfall is the slice's deficit, or MAX_UINT when it leaves none. Here the
    slice leaves exactly zero value (found on the model: ZERO_VALUE_DEPTH, ZERO_VALUE_ENTRY), so
    the shortfall is MAX_UINT; one wei higher entry leaves 1 wei of deficit. Mutant
    `shortfall-at-zero-value` (`valueAfter >= 0` to `>`)."""
    with isolated(chain):
        spec = thin_book(depth2pct=ZERO_VALUE_DEPTH, policy=BadDebtPolicy.ADL)
        twin, alice_id = liquidatable_long(env, spec, 90_000, entry=ZERO_VALUE_ENTRY + entry_offset)
        assert preview(twin, alice_id, -WAD // 5)[1] == -entry_offset
        outcome = twin.liquidate(alice_id, 0)
        assert not outcome.ok and outcome.error.name == "UseDeleverage"
        assert outcome.error.args_["shortfall"] == (1 if entry_offset else MAX_UINT)


# ================================================================================================
# _penalty
# ================================================================================================


@pytest.mark.parametrize("max_size", [MAX_UINT, WAD - 1], ids=["whole", "one-wei-less"])
def test_penalty_wholeCloseNotCappedByGain(env, chain, max_size):
    """The cap by the health gained applies to partial closes only: alice's whole BTC position
    closes with its full 2% penalty ($1,920), more than the close improved AV - MM (about $951);
    a close of one wei less is partial and its penalty is that gain. Mutant
    `penalty-caps-whole-close` (`size < |positionSize|` to `<=`)."""
    with isolated(chain):
        twin, alice_id = two_market_long(env)
        value, mm, _ = twin.health(alice_id)
        [event] = twin.liquidate(alice_id, 0, max_size).named("Liquidation")
        value_after, mm_after, _ = twin.health(alice_id)
        gain = (value_after + event["penalty"] - mm_after) - (value - mm)
        if max_size == MAX_UINT:
            assert event["sizeClosed"] == -WAD and event["penalty"] == wad(96_000) * 2 // 100 > gain
        else:
            assert event["penalty"] == gain < wad(96_000) * 2 // 100


# ================================================================================================
# _rateRoom and _useRateLimit
# ================================================================================================


def test_rateRoom_windowEndsOnItsLastSecond(env, chain):
    """alice's liquidation uses the whole window's limit; carol's, 59 s later, is `RateLimited` to
    the window's end; at exactly 60 s a new window starts (with carol's liquidation, which records
    it: `rateWindows` is compared after every transaction). Mutants `rate-window-ends-late`
    (`_rateRoom`'s `timestamp >= start + window` to `>`) and `rate-window-recorded-late`
    (`_useRateLimit`'s)."""
    with isolated(chain):
        twin, alice_id, carol_id = rate_limited_longs(env)
        assert twin.liquidate(alice_id, 0).ok
        start = twin.model.timestamp
        refused = twin.liquidate(carol_id, 0, seconds=59)
        assert not refused.ok and refused.error.name == "RateLimited"
        assert refused.error.args_["windowEnd"] == start + 60
        assert twin.liquidate(carol_id, 0, seconds=1).ok
        assert twin.model.liquidator.rate_windows[0].start == start + 60


# ================================================================================================
# ADL: _rankedTakes, _proRataTakes, _candidate, _haircutPrices
# ================================================================================================


def test_rankedTakes_tiedScoresInIdOrder(env, chain):
    """Two winners with the same score (same size, entry and deposit), listed by increasing id: the
    ranking's tie-break, accepted. Mutant `ranked-tie-refused` (`score > previousScore` to `>=`)."""
    with isolated(chain):
        twin, alice_id = adl_book(env, AdlRanking.PNL_LEVERAGE, {"bob": WAD // 2, "carol": WAD // 2})
        ids, scores = twin.adl_ranking(0, 1)
        assert ids == [trader_id(env, name) for name in by_id(env, "bob", "carol")] and scores[0] == scores[1]
        outcome = twin.deleverage(alice_id, 0, ids)
        assert outcome.ok and [f["counterpartyId"] for f in outcome.named("AdlFill")] == ids


@pytest.mark.parametrize("ranking", [AdlRanking.PNL_LEVERAGE, AdlRanking.PRO_RATA], ids=lambda r: r.name)
def test_deleverage_counterpartyListedTwice(env, chain, ranking):
    """The same winner listed twice (its score equal to itself, its id not above itself) is refused:
    `AdlOutOfOrder` when ranked by score, `AdlNotSortedById` under PRO_RATA. Mutants
    `ranked-duplicate-accepted` and `pro-rata-duplicate-accepted` (`<=` to `<` in the id checks)."""
    with isolated(chain):
        twin, alice_id = adl_book(env, ranking, {"bob": WAD // 2, "carol": WAD // 2})
        bob_id = trader_id(env, "bob")
        outcome = twin.deleverage(alice_id, 0, [bob_id, bob_id])
        expected = "AdlOutOfOrder" if ranking == AdlRanking.PNL_LEVERAGE else "AdlNotSortedById"
        assert not outcome.ok and outcome.error.name == expected


@pytest.mark.parametrize("short_by", [0, 1])
def test_proRataTakes_winnersExactlyCoverThePosition(env, chain, short_by):
    """PRO_RATA winners holding exactly the bankrupt size (0.3 + 0.7 BTC) cover it, each closing
    whole; with one of them a wei short (the wei held by a third winner left off the list) they do
    not (`AdlInsufficient(1)`). Mutant `pro-rata-exact-cover-refused` (`available < total` to
    `<=`)."""
    with isolated(chain):
        _check_exact_cover(env, AdlRanking.PRO_RATA, short_by)


@pytest.mark.parametrize("short_by", [0, 1])
def test_drainTakes_winnersExactlyCoverThePosition(env, chain, short_by):
    """LEVERAGE_DRAIN winners holding exactly the bankrupt size (0.3 + 0.7 BTC) are drained whole
    (nothing is kept: the level is 0, below the last listed); with one of them a wei short (the wei
    held by a third winner left off the list) they do not cover it (`AdlInsufficient(1)`). Mutant
    `drain-exact-cover-refused` (`held < remaining` to `<=`)."""
    with isolated(chain):
        _check_exact_cover(env, AdlRanking.LEVERAGE_DRAIN, short_by)


def _check_exact_cover(env, ranking: AdlRanking, short_by: int) -> None:
    """bob 0.3 and carol 0.7 BTC short (less `short_by` wei, then held by dave, who is not listed)
    against alice's position: listed in the ranking's order, they cover it exactly, each closing
    whole, or fall a wei short."""
    shorts = {"bob": 3 * WAD // 10, "carol": 7 * WAD // 10 - short_by}
    if short_by:
        shorts["dave"] = 1
    twin, alice_id = adl_book(env, ranking, shorts)
    listed = [i for i in twin.adl_ranking(0, 1)[0] if i != trader_id(env, "dave")]
    assert sorted(listed) == sorted(trader_id(env, name) for name in ("bob", "carol"))
    outcome = twin.deleverage(alice_id, 0, listed)
    if short_by:
        assert not outcome.ok and outcome.error.name == "AdlInsufficient"
        assert outcome.error.args_["remaining"] == 1
    else:
        assert outcome.ok
        assert {f["counterpartyId"]: -f["size"] for f in outcome.named("AdlFill")} == {
            trader_id(env, name): size for name, size in shorts.items()}


def test_proRataTakes_sharesDivideExactly(env, chain):
    """PRO_RATA: bob and carol each short 1 BTC against alice's 1 BTC (carol's other side is dave):
    each share is exactly half, nothing is left to hand out though both have room. Mutant
    `pro-rata-remainder-overshoots` (`assigned < total` to `<=`: a unit more than the position)."""
    with isolated(chain):
        twin, alice_id = adl_book(env, AdlRanking.PRO_RATA, {"bob": WAD}, others=(("dave", "carol", WAD),))
        listed = [trader_id(env, name) for name in by_id(env, "bob", "carol")]
        outcome = twin.deleverage(alice_id, 0, listed)
        assert outcome.ok
        assert [-f["size"] for f in outcome.named("AdlFill")] == [WAD // 2, WAD // 2]


@pytest.mark.parametrize("offset", [-10, 0, 10])
def test_candidate_winnerAtZeroPnl(env, chain, offset):
    """carol opens 0.1 BTC short at the crash price (+`offset` wei): her uPnL at the oracle price is
    -1, 0 or +1 wei. Only a positive uPnL makes an ADL winner (`adlRanking` is compared after every
    transaction; a list naming her at 0 is `AdlIneligible`). Mutant `candidate-zero-pnl-eligible`
    (`upnl <= 0` to `<`)."""
    with isolated(chain):
        twin, alice_id = adl_book(env, AdlRanking.PNL_LEVERAGE, {"bob": WAD})
        carol, dave = trader(env, "carol"), trader(env, "dave")
        for who in (carol, dave):
            assert twin.deposit(who, usdc(50_000)).ok
        assert twin.matched(dave, carol, 0, WAD // 10, wad(85_000) + offset).ok
        carol_id, bob_id = trader_id(env, "carol"), trader_id(env, "bob")
        assert twin.view("unrealizedPnls", ("liquidator", "unrealizedPnls", [carol_id], [0]),
                         lambda: twin.model.unrealized_pnls([carol_id], [0])) == [offset // 10]
        ids, _ = twin.adl_ranking(0, 1)
        assert ids == ([bob_id, carol_id] if offset > 0 else [bob_id])
        if offset == 0:
            refused = twin.deleverage(alice_id, 0, [carol_id, bob_id])
            assert not refused.ok and refused.error.name == "AdlIneligible" and refused.error.args_["unrealizedPnl"] == 0


def test_candidate_bankruptSideZero(env, chain):
    """`adlRanking(market, 0)` ranks against a short (0 is not above 0: the winners are longs). After
    a crash no long is in profit: an empty ranking, as for side -1, on both sides. Mutant
    `candidate-zero-side-as-long` (`bankruptSide > 0` to `>=`: the shorts would be listed)."""
    with isolated(chain):
        twin, _ = adl_book(env, AdlRanking.PNL_LEVERAGE, {"bob": WAD})
        assert twin.adl_ranking(0, 1)[0] == [trader_id(env, "bob")]
        assert twin.adl_ranking(0, 0) == twin.adl_ranking(0, -1) == ([], [])


@pytest.mark.parametrize("ranking", [AdlRanking.PNL_LEVERAGE, AdlRanking.HYPERLIQUID, AdlRanking.LEVERAGE_DRAIN],
                         ids=lambda r: r.name)
@pytest.mark.parametrize("entry_offset", [-1, 0, 1])
def test_adlScore_winnerAtZeroValue(env, chain, ranking, entry_offset):
    """A winner whose account value is exactly 0 (its profit here, a loss in another market) ranks
    first with the maximum score, as one below zero does; one wei above zero it has a finite score.
    The ranking is compared after every transaction and the ADL goes through. Mutants
    `adl-score-at-zero-value`, `hyperliquid-score-at-zero-value` and `leverage-score-at-zero-value`
    (`accountValue <= 0` to `<`: a division by the zero value, every ranking and ADL naming the
    winner reverts)."""
    with isolated(chain):
        twin, alice_id, bob_id = zero_value_winner(env, ranking, entry_offset)
        assert twin.health(bob_id)[0] == entry_offset
        ids, scores = twin.adl_ranking(0, 1)
        assert ids == [bob_id] and (scores[0] == MAX_UINT) == (entry_offset <= 0)
        assert twin.deleverage(alice_id, 0, ids).ok


@pytest.mark.parametrize("entry_offset", [1, 0, 2])
def test_bankruptcyPrice_exactlyZeroFloorsAtOneWei(env, chain, entry_offset):
    """alice long 1 BTC on $100,000 from $100,000 less 1 wei: her value is the notional plus 1 wei,
    so her bankruptcy price, P - (AV - 1) / size, is exactly 0 and floors at 1 wei (1 wei off
    either side: 1 and -1, which floors too). `bankruptcyPriceOf` of every open position is
    compared after every transaction. Mutant `bankruptcy-price-reaches-zero` (`bankrupt > 0` to
    `>=`: an ADL price of 0)."""
    with isolated(chain):
        twin = one_market(env, alice=100_000, bob=50_000)
        alice_id = trader_id(env, "alice")
        assert twin.matched(trader(env, "alice"), trader(env, "bob"), 0, WAD, wad(100_000) - entry_offset).ok
        assert twin.health(alice_id)[0] == wad(100_000) + entry_offset
        assert twin.view("bankruptcyPriceOf", ("engine", "bankruptcyPriceOf", alice_id, 0),
                         lambda: twin.model.bankruptcy_price_of(alice_id, 0)) == 1


def test_haircutPrices_distanceExactlyThePrice(env, chain):
    """CAPPED_PRO_RATA against a bankrupt short: bob's haircut distance (his share of the deficit
    over his take) is exactly the oracle price, so his price floors at 1 wei, as it does for any
    distance at or above the price (never 0). Mutant `haircut-price-reaches-zero` (`distance <
    price` to `<=`)."""
    with isolated(chain):
        twin, entry, bob_id = haircut_book(env)
        alice_id = trader_id(env, "alice")
        assert twin.matched(trader(env, "bob"), trader(env, "alice"), 0, WAD, entry).ok
        twin.set_price(0, oracle_answer(200_000), seconds=1)
        price = wad(200_000)
        winners = sorted((bob_id, trader_id(env, "carol")))
        upnls = twin.view("unrealizedPnls", ("liquidator", "unrealizedPnls", winners, [0, 0]),
                          lambda: twin.model.unrealized_pnls(winners, [0, 0]))
        bankruptcy = twin.view("bankruptcyPriceOf", ("engine", "bankruptcyPriceOf", alice_id, 0),
                               lambda: twin.model.bankruptcy_price_of(alice_id, 0))
        deficit = WAD * (price - bankruptcy) // WAD  # adlDeficit of a 1 BTC short
        outcome = twin.deleverage(alice_id, 0, winners)
        assert outcome.ok
        fills = outcome.named("AdlFill")
        takes = [f["size"] for f in fills]  # the winners sell: alice's fills are buys
        k = winners.index(bob_id)
        assert haircut_distance(deficit, upnls, takes, k) == price
        assert fills[k]["counterpartyId"] == bob_id and fills[k]["price"] == 1
