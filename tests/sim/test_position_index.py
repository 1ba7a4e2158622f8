"""The position index on the model backend: its float64 screen flags every account the exact math
finds liquidatable (boundaries to the wei, tiers, accrued funding, social loss, earmarks), its ADL
ranking is the contract's, and a change it missed is named."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from simulator.agents.keepers import ROUNDING_ROOM, Keepers, clear_of_any_fill
from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.exchange import Liquidate
from simulator.model import liquidation_views
from simulator.model.errors import BookExhausted
from simulator.model.exchange import ModelExchange
from simulator.position_index import IndexMismatch, PositionIndex
from simulator.units import WAD, wad
from tests.model.helpers import examples

BTC, ETH = 0, 1
SPECS = [
    MarketSpec("BTC", 100_000, depth2pct=10**12, tiers=[(1_000_000, "0.08"), (5_000_000, "0.12")],
               max_funding_rate="0.0001", skew_scale=50),
    MarketSpec("ETH", 4_000, depth2pct=10**12, max_funding_rate="0.0001", skew_scale=1_000,
               policy=BadDebtPolicy.SOCIALIZE),
]

account = st.tuples(
    st.integers(11, 100),  # collateral, percent of the notional opened (initial margin: 10%)
    st.integers(-40, 40),  # BTC size, 1/4 BTC
    st.integers(-400, 400),  # ETH size, 1/4 ETH
)


def book(accounts, specs=SPECS) -> tuple[ModelExchange, list[int]]:
    """Traders' taker trades against the vault, in a book deep enough that they fill at the spec
    prices; the vault is registered like any account, holds every opposite side and ranks among
    the winners."""
    exchange = ModelExchange(specs)
    protocol = exchange.protocol
    protocol.fund(exchange.vault_id, 10**9)
    ids = []
    for i, (percent, btc, eth) in enumerate(accounts):
        trader = 0xA000 + i
        ids.append(trader)
        notional = abs(btc) * 25_000 + abs(eth) * 1_000
        protocol.fund(trader, max(notional * percent // 100, 100))
        for market, quarters in ((BTC, btc), (ETH, eth)):
            if quarters:
                protocol.open_position(trader, market, quarters * WAD // 4)
    return exchange, ids


def index_of(exchange: ModelExchange) -> PositionIndex:
    index = PositionIndex(exchange, len(SPECS), exchange.vault_id)
    index.bootstrap(exchange.account_ids())
    return index


def screen(exchange: ModelExchange, index: PositionIndex):
    return index.screen(exchange.snapshot(), exchange.protocol.timestamp)


@settings(max_examples=examples(60))
@given(accounts=st.lists(account, min_size=1, max_size=12), btc=st.integers(60_000, 140_000),
       eth=st.integers(2_000, 6_000), seconds=st.integers(0, 86_400))
def test_screen_flags_every_liquidatable_account(accounts, btc, eth, seconds):
    exchange, _ = book(accounts)
    protocol = exchange.protocol
    protocol.advance(seconds, 1)  # funding accrues on the skew
    protocol.set_price(BTC, wad(btc))
    protocol.set_price(ETH, wad(eth))
    index = index_of(exchange)
    scan, exact = screen(exchange, index), exchange.scan()
    flagged = {scan.ids[i] for i, near in enumerate(scan.holds & (scan.values - scan.mms <= scan.margins)) if near}
    assert set(exact.liquidatable()) <= flagged
    found = scan.liquidatable()
    assert found == exact.liquidatable()
    for account in found:  # the bounds the keepers decide by hold the exact value
        low, high = scan.value_bounds(account)
        assert low <= protocol.health(account)[0] <= high


@settings(max_examples=examples(60))
@given(accounts=st.lists(account, min_size=2, max_size=30), btc=st.integers(60_000, 140_000),
       eth=st.integers(2_000, 6_000), copies=st.integers(0, 3))
def test_screen_orders_by_health_as_the_exact_values(accounts, btc, eth, copies):
    """`by_health` on the screen gives the order the exact values give (an exact scan's), with
    accounts of the same ratio (`copies` of one account: ties in registry order), accounts near
    zero value and accounts whose ratios the float margins cannot separate."""
    exchange, ids = book(accounts + accounts[:1] * copies)
    exchange.protocol.set_price(BTC, wad(btc))
    exchange.protocol.set_price(ETH, wad(eth))
    scan, exact = screen(exchange, index_of(exchange)), exchange.scan()
    assert scan.by_health(scan.liquidatable()) == exact.by_health(exact.liquidatable())


def test_screen_does_not_confirm_an_account_far_below_its_margin():
    """An account under water by thousands of dollars is liquidatable whatever the float error:
    nothing is asked, and its value is known to within the margin (a cent here)."""
    exchange, [trader] = book([(12, 8, 0)])
    exchange.protocol.set_price(BTC, wad(80_000))
    index = index_of(exchange)
    scan = screen(exchange, index)
    assert scan.liquidatable() == [trader] and index.confirmed == 0
    low, high = scan.value_bounds(trader)
    assert high < 0 and low <= exchange.protocol.health(trader)[0] <= high and high - low < WAD // 100  # a cent


@pytest.mark.parametrize("offset, liquidatable", [(0, False), (-1, True), (1, False)])
def test_screen_decides_value_equal_to_margin_to_the_wei(offset, liquidatable):
    """AV == MM is not liquidatable, one wei less is: the screen flags both and the exact math
    decides."""
    exchange, [trader] = book([(12, 8, -20)])
    protocol = exchange.protocol
    protocol.advance(3_600, 1)
    protocol.set_price(BTC, wad(96_000))
    value, mm, _ = protocol.health(trader)
    protocol._collateral[protocol._rows[trader]] += mm - value + offset  # test-only: exact boundary
    index = index_of(exchange)
    scan = screen(exchange, index)
    assert protocol.health(trader)[0] - protocol.health(trader)[1] == offset
    assert scan.liquidatable() == ([trader] if liquidatable else [])
    assert index.confirmed == 1  # the screen could not tell: exactly one account was asked


def test_screen_counts_social_loss_and_earmarks():
    """A socialised loss lowers every ETH position's value lazily; the screen sees it through the
    market's index, and an earmark is what the fund keeps for an account."""
    exchange, ids = book([(11, 0, 20), (100, 0, -20), (100, 0, 20)])
    protocol = exchange.protocol
    protocol.set_price(ETH, wad(3_400))  # the 11% account ends $3,200 under water; no fund: socialised
    [victim] = exchange.scan().liquidatable()
    results = exchange.execute([Liquidate(victim, ETH)],
                               protocol.timestamp + 1)
    assert results[0].ok, results[0].error
    index = index_of(exchange)
    assert exchange.snapshot().social_loss_index[ETH] > 0
    assert screen(exchange, index).liquidatable() == exchange.scan().liquidatable()
    index.reconcile()


@settings(max_examples=examples(40))
@given(accounts=st.lists(account, min_size=1, max_size=12), btc=st.integers(60_000, 140_000),
       eth=st.integers(2_000, 6_000))
def test_at_risk_counts_the_holders_below_the_warning_level(accounts, btc, eth):
    """Per market, the accounts holding it whose exact value is below 1.25 x their exact MM."""
    exchange, ids = book(accounts)
    protocol = exchange.protocol
    protocol.set_price(BTC, wad(btc))
    protocol.set_price(ETH, wad(eth))
    index = index_of(exchange)
    expected = [0, 0]
    for trader in ids:
        value, mm, _ = protocol.health(trader)
        if 4 * value < 5 * mm:
            for market in (BTC, ETH):
                expected[market] += protocol.position_of(trader, market)[0] != 0
    assert index.at_risk(screen(exchange, index), 1.25) == expected


@settings(max_examples=examples(60))
@given(accounts=st.lists(account, min_size=1, max_size=12), btc=st.integers(60_000, 140_000),
       eth=st.integers(2_000, 6_000), seconds=st.integers(0, 86_400))
def test_adl_required_many_fast_view_answers_as_the_mirror(accounts, btc, eth, seconds):
    """The model's fast `adl_required_many` (one health per pair) gives the mirror's answers for
    every pair: liquidatable or not, a market without a position, the vault, a SOCIALIZE market."""
    exchange, ids = book(accounts)
    protocol = exchange.protocol
    protocol.advance(seconds, 1)
    protocol.set_price(BTC, wad(btc))
    protocol.set_price(ETH, wad(eth))
    pairs = [(a, m) for a in ids + [exchange.vault_id] for m in (BTC, ETH)]
    accounts_, markets = [a for a, _ in pairs], [m for _, m in pairs]
    expected = protocol.adl_required_many(accounts_, markets)
    assert liquidation_views.adl_required_many(protocol.liquidator, accounts_, markets) == expected
    assert exchange.adl_required(pairs) == expected


@settings(max_examples=examples(60))
@given(accounts=st.lists(account, min_size=1, max_size=10),
       btc=st.integers(60_000, 140_000) | st.sampled_from([40_000, 50_000, 150_000, 160_000]),
       depth=st.sampled_from([10**12, 2_000_000, 200_000, 20_000]), rate_limited=st.booleans(),
       fund_offset=st.none() | st.sampled_from([-2, -1, 0, 1, 2, 10**9, *(-ROUNDING_ROOM + k for k in (-1, 0, 1))]),
       next_block=st.booleans(), chosen=st.integers(0, 9))
# A short bankrupt by 1,000,001 wei beyond the fund in a block the sellers walked down: its
# buy-back fills a hair below the oracle price and rescues it, so only the contract can answer.
@example(accounts=[(11, -4, 0), (100, -40, 0), (100, -40, 0)], btc=115_000, depth=10**12, rate_limited=False,
         fund_offset=-ROUNDING_ROOM - 1, next_block=False, chosen=0)
def test_keepers_settle_adl_answers_as_the_mirror(accounts, btc, depth, rate_limited, fund_offset, next_block, chosen):
    """The keepers answer "ADL" without asking for an account deeper under water than the fund can
    pay by more than ROUNDING_ROOM, and their answers are the mirror's: on books from deep to
    nearly empty (slices, escalations, a void book), walked either way in the block or in a block
    of its own, with and without a rate limit, and with the fund set within a few wei of an account's deficit, on either
    side of the room."""
    btc_spec = replace(SPECS[BTC], policy=BadDebtPolicy.ADL, rate_limit_notional=50_000 if rate_limited else 0,
                       rate_limit_window=60 if rate_limited else 0, slice_threshold=100_000)
    exchange, ids = book(accounts, [btc_spec, SPECS[ETH]])
    protocol = exchange.protocol
    if next_block:
        protocol.advance(1, 1)
    protocol.set_price(BTC, wad(btc))
    protocol.set_depth(BTC, depth * WAD)
    underwater = [a for a in ids if protocol.health(a)[0] < 0]
    if fund_offset is not None and underwater:
        account = underwater[chosen % len(underwater)]
        # what the fund can pay for it is its deficit plus `fund_offset` wei (the room's edge too)
        fund = -protocol.health(account)[0] - protocol.fund_reserve_of(account) + fund_offset
        protocol.insurance_fund = max(fund, 0)
    scan = exchange.scan()
    pairs = [(a, m) for a in scan.liquidatable() for m in (BTC, ETH) if protocol.position_of(a, m)[0]]
    keepers = Keepers.for_markets([btc_spec, SPECS[ETH]])
    assert keepers.adl_required(exchange, exchange, scan, exchange.snapshot(), pairs) == exchange.adl_required(pairs)
    event("some answers settled by the keepers" if keepers.settled else "every answer asked")
    if keepers.cleared:
        event("some 'no ADL' answers settled by the keepers")
    if keepers.settled > keepers.cleared:
        event("some 'ADL' answers settled by the keepers")
    if rate_limited:
        assert keepers.settled == 0


@settings(max_examples=examples(100))
@given(accounts=st.lists(account, min_size=2, max_size=8), btc=st.integers(60_000, 140_000),
       depth=st.sampled_from([10**9, 5_000_000, 1_000_000, 300_000, 60_000, 20_000]),
       walked=st.integers(-60, 60), fund_usd=st.integers(0, 20_000),
       edge=st.none() | st.sampled_from([-1e-3, -1e-9, 0.0, 1e-9, 1e-6, 1e-3]))
def test_keepers_clear_an_account_only_when_the_mirror_needs_no_adl(accounts, btc, depth, walked, fund_usd, edge):
    """`clear_of_any_fill` answers "no ADL" for a liquidatable position only where the mirror's
    `adlRequired` says so: on books from deep to nearly void, walked either way earlier in the
    block, with slices and escalations to the whole position, and with the fund set around the
    rule's own boundary for one account (`edge`: the fund at which the rule starts to clear it,
    moved by that fraction)."""
    btc_spec = replace(SPECS[BTC], policy=BadDebtPolicy.ADL, slice_threshold=100_000, slice_fraction="0.5")
    exchange, ids = book(accounts, [btc_spec, SPECS[ETH]])
    protocol = exchange.protocol
    protocol.set_price(BTC, wad(btc))
    protocol.set_depth(BTC, depth * WAD)
    if walked:  # another taker walks the book first in this block (not past its end)
        protocol.fund(0xB0B, 10**7)
        with contextlib.suppress(BookExhausted):
            protocol.open_position(0xB0B, BTC, walked * WAD // 40)
    protocol.insurance_fund = fund_usd * WAD
    state = exchange.snapshot()
    price, consumed, max_impact = state.prices[BTC], state.book_consumed[BTC], wad(btc_spec.max_impact)

    def cleared(account: int) -> bool:
        fund_for = protocol.insurance_fund + protocol.fund_reserve_of(account)
        return clear_of_any_fill(protocol.health(account)[0], fund_for, protocol.position_of(account, BTC)[0], price,
                                 state.depth2pct[BTC], consumed, max_impact)

    liquidatable = [a for a in ids if protocol.position_of(a, BTC)[0] and protocol.is_account_liquidatable(a)]
    if edge is not None and liquidatable:
        # The smallest fund at which the rule clears the first account, found by bisection, then moved.
        account, low, high = liquidatable[0], 0, 10**30
        protocol.insurance_fund = high
        if cleared(account):
            while high - low > 1:
                protocol.insurance_fund = (low + high) // 2
                low, high = (low, protocol.insurance_fund) if cleared(account) else (protocol.insurance_fund, high)
            protocol.insurance_fund = max(int(high * (1 + edge)), 0)
    for account in liquidatable:
        if cleared(account):
            event("cleared by the keepers' rule")
            assert protocol.adl_required(account, BTC) is False
        else:
            event("left to the contract")


@settings(max_examples=examples(60))
@given(side=st.sampled_from([1, -1]), quarters=st.integers(1, 40), percent=st.integers(11, 60),
       depth=st.sampled_from([5_000_000, 1_000_000, 300_000]), walk=st.integers(-12, 12),
       fund_usd=st.sampled_from([0, 500, 5_000]))
def test_keepers_clear_a_whole_close_up_to_the_mirrors_boundary(side, quarters, percent, depth, walk, fund_usd):
    """A position closed whole (no slicing), at every oracle price: where `clear_of_any_fill`
    clears it the mirror's `adlRequired` says no ADL (the rule's boundary price is on the safe side
    of the mirror's), and unless the book was walked the other way earlier in the block (a better
    fill the rule does not count on) the rule's boundary is the mirror's to a millionth of the price:
    its loss bound is the fill's loss, not a multiple of it."""
    spec = replace(SPECS[BTC], policy=BadDebtPolicy.ADL, slice_threshold=10**12)
    exchange, ids = book([(percent, side * quarters, 0)], [spec, SPECS[ETH]])
    protocol = exchange.protocol
    protocol.advance(1, 1)  # a block of its own: nothing walked in it yet
    protocol.set_depth(BTC, depth * WAD)
    if walk:  # another taker walks the book first in this block
        protocol.fund(0xB0B, 10**7)
        protocol.open_position(0xB0B, BTC, walk * WAD // 40)
    protocol.insurance_fund = fund_usd * WAD
    account, consumed = ids[0], exchange.snapshot().book_consumed[BTC]  # this block's
    size = protocol.position_of(account, BTC)[0]

    # Prices as 8-decimal oracle answers (what the oracle can give), WAD = answer * 10**10.
    def worse(answer: int) -> int:
        """An answer further against the position."""
        return answer - answer // 2 if side > 0 else answer + answer // 2

    def answers(answer: int) -> tuple[bool, bool, bool]:
        price = answer * 10**10
        protocol.set_price(BTC, price)
        fund_for = protocol.insurance_fund + protocol.fund_reserve_of(account)
        cleared = clear_of_any_fill(protocol.health(account)[0], fund_for, size, price, depth * WAD, consumed,
                                    wad(spec.max_impact))
        liquidatable = protocol.is_account_liquidatable(account)
        return liquidatable, cleared, liquidatable and protocol.adl_required(account, BTC)

    def boundary(holds, good: int, bad: int) -> int:
        """The price nearest `bad` at which `holds` still holds, between `good` (holds) and `bad`."""
        while abs(good - bad) > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if holds(middle) else (good, middle)
        return good

    safe = deep = 100_000 * 10**8
    for _ in range(8):  # far enough against the position that ADL is needed
        deep = worse(deep)
        if answers(deep)[2]:
            break
    assume(answers(deep)[2] and not answers(safe)[0])
    needs_no_adl = boundary(lambda price: not answers(price)[2], safe, deep)
    liquidatable = boundary(lambda price: answers(price)[0], deep, safe)
    cleared = [price for price in (liquidatable, (liquidatable + needs_no_adl) // 2, needs_no_adl) if answers(price)[1]]
    for price in cleared:
        assert not answers(price)[2], price
    rule = boundary(lambda price: answers(price)[1], liquidatable, deep) if answers(liquidatable)[1] else None
    if rule is not None:
        assert (rule >= needs_no_adl) if side > 0 else (rule <= needs_no_adl)
        walked_back = consumed > 0 if side > 0 else consumed < 0  # the closing fill would be better for it
        if not walked_back:
            event("boundary compared")
            assert abs(rule - needs_no_adl) <= needs_no_adl // 10**6
    else:
        event("never cleared")


@settings(max_examples=examples(40))
@given(accounts=st.lists(account, min_size=2, max_size=90), btc=st.integers(70_000, 130_000),
       side=st.sampled_from([1, -1]), by_score=st.booleans())
def test_ranking_is_the_contracts(accounts, btc, side, by_score):
    """The whole ranking, read in the keepers' order: past the first exact prefix (32), with the
    vault (no screened value: its score is only bounded) among the winners."""
    ranking = AdlRanking.PNL_LEVERAGE if by_score else AdlRanking.PRO_RATA
    exchange, _ = book(accounts, [replace(SPECS[BTC], ranking=ranking), SPECS[ETH]])
    protocol = exchange.protocol
    protocol.set_price(BTC, wad(btc))
    index = index_of(exchange)
    screen(exchange, index)
    ranking = index.adl_ranking(BTC, side, by_score=by_score)
    expected, _ = protocol.adl_ranking(BTC, side)
    assert [winner.account_id for winner in ranking] == list(expected)
    for winner in ranking:
        assert winner.size == protocol.position_of(winner.account_id, BTC)[0]


@pytest.mark.parametrize("ranking_kind", [AdlRanking.PNL_LEVERAGE, AdlRanking.PRO_RATA, AdlRanking.HYPERLIQUID,
                                          AdlRanking.MIN_OVERSHOOT, AdlRanking.LEVERAGE_DRAIN])
def test_ranking_past_its_first_prefix_places_the_vault(ranking_kind):
    """80 winning shorts of different leverage and the vault (short against net-long traders, its
    value unscreened): read past the first exact prefix, the ranking is still the contract's."""
    by_score = not ranking_kind.whole_ranking
    longs = [(100, 40, 0)] * 10  # 100 BTC long against 50 BTC of shorts: the vault is 50 BTC short
    shorts = [(12 + (i * 37) % 88, -(1 + i % 4), 0) for i in range(80)]
    exchange, _ = book(longs + shorts, [replace(SPECS[BTC], ranking=ranking_kind), SPECS[ETH]])
    exchange.protocol.set_price(BTC, wad(95_000))
    index = index_of(exchange)
    screen(exchange, index)
    expected, _ = exchange.protocol.adl_ranking(BTC, 1)
    assert exchange.vault_id in expected and len(expected) > 64
    hyperliquid = ranking_kind is AdlRanking.HYPERLIQUID
    drain = ranking_kind is AdlRanking.LEVERAGE_DRAIN
    read = index.adl_ranking(BTC, 1, by_score=by_score, hyperliquid=hyperliquid,
                             largest=ranking_kind is AdlRanking.MIN_OVERSHOOT, drain=drain)
    assert [winner.account_id for winner in read] == list(expected)
    if drain:  # the values the keepers size the draining with, exact
        assert read.values == {i: exchange.protocol.health(i)[0] for i in expected}


def test_ranking_reads_only_the_prefix_it_needs():
    exchange, _ = book([(100, 4, 0) for i in range(3)] + [(20 + i % 80, -4, 0) for i in range(200)])
    exchange.protocol.set_price(BTC, wad(90_000))
    index = index_of(exchange)
    screen(exchange, index)
    before = index.confirmed
    ranking = index.adl_ranking(BTC, 1, by_score=True)
    first = ranking[0]
    assert index.confirmed - before < 60  # the top of 201 winners (the vault among them), not all
    assert first.account_id == exchange.protocol.adl_ranking(BTC, 1)[0][0]


def test_reconcile_names_a_change_the_index_missed():
    exchange, [first, second] = book([(50, 1, 0), (50, -1, 0)])
    index = index_of(exchange)
    index.reconcile()
    exchange.protocol._collateral[exchange.protocol._rows[second]] += 1  # behind the index's back
    with pytest.raises(IndexMismatch, match=f"account {second:#x}, collateral"):
        index.reconcile()
