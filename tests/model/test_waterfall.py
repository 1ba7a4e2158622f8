"""Liquidation, the insurance fund, the three bad-debt policies and ADL in the model (the cases of
tests/test_liquidation.py, plus the plan's other outcomes)."""

import pytest

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.model import Protocol
from simulator.model.liquidation_engine import LiquidationEngine
from simulator.model import fixed_point as fp
from simulator.model.errors import (
    AdlIneligible,
    AdlInsufficient,
    AdlNotRequired,
    AdlNotSortedById,
    AdlOutOfOrder,
    AdlUnusedCounterparties,
    LiquidationWorsensHealth,
    LiquidityVoid,
    NotLiquidatable,
    RateLimited,
    UseDeleverage,
    VaultAccount,
)
from simulator.units import WAD, wad
from tests.model.helpers import (
    ALICE,
    BOB,
    BTC,
    CAROL,
    DAVE,
    KEEPER,
    canonical_counterparties,
    check_invariants,
    fingerprint,
    run_keepers,
    seed_book,
)


def test_healthy_account_cannot_be_liquidated():
    protocol = seed_book(BadDebtPolicy.ADL)
    value, mm, _ = protocol.health(ALICE)
    with pytest.raises(NotLiquidatable) as info:
        protocol.liquidate(ALICE, BTC)
    assert info.value.inputs == {"accountId": ALICE, "accountValue": value, "maintenanceMargin": mm}


def test_liquidation_pays_keeper_and_fund_from_remaining_equity():
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(94_000))  # AV $4,000 < MM $4,700
    assert protocol.is_liquidatable(ALICE)
    fund_before = protocol.insurance_fund
    _, value_after, _ = protocol.preview_liquidation_fill(ALICE, BTC, -WAD)
    assert protocol.liquidate(ALICE, BTC, keeper=KEEPER) == WAD
    [event] = protocol.events_named("Liquidation")
    assert event.sizeClosed == -WAD
    assert event.penalty == min(wad(94_000) // 100, value_after)
    assert event.keeperReward == event.penalty // 10
    assert protocol.collateral_of(KEEPER) == event.keeperReward
    assert protocol.insurance_fund == fund_before + event.penalty - event.keeperReward
    assert protocol.account_value(ALICE) == value_after - event.penalty >= 0
    assert protocol.get_position(ALICE, BTC) == (0, 0)
    check_invariants(protocol)


def test_none_records_the_shortfall_as_bad_debt():
    protocol = seed_book(BadDebtPolicy.NONE)
    protocol.set_price(BTC, wad(85_000))  # a gap through bankruptcy: AV -$5,000
    fund = protocol.insurance_fund
    _, value_after, _ = protocol.preview_liquidation_fill(ALICE, BTC, -WAD)
    shortfall = -value_after - fund
    assert shortfall == wad("4007.225")  # fill at 85,000 * (1 - 0.0085%): value after -$5,007.225
    tokens_before, claims_before, _ = protocol.balance_sheet()
    protocol.liquidate(ALICE, BTC)
    [event] = protocol.events_named("Liquidation")
    assert (event.fundPaid, event.badDebt, event.penalty, event.socialized) == (fund, shortfall, 0, 0)
    assert protocol.bad_debt == shortfall
    assert protocol.insurance_fund == 0
    assert protocol.account_value(ALICE) == 0
    tokens, claims, fund_after = protocol.balance_sheet()
    assert tokens == tokens_before == claims_before + fund  # no dust in this book
    assert claims + fund_after - tokens == protocol.bad_debt  # insolvent by exactly the bad debt
    [payment] = protocol.events_named("InsuranceFundPayment")
    [recorded] = protocol.events_named("BadDebtRecorded")
    assert (payment.amount, recorded.amount) == (fund, shortfall)
    check_invariants(protocol)


def test_adl_leaves_no_bad_debt_and_hits_the_top_of_the_ranking():
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(85_000))
    before = fingerprint(protocol)
    with pytest.raises(UseDeleverage) as info:
        protocol.liquidate(ALICE, BTC)
    assert info.value.shortfall == wad("5007.225") and info.value.fundAvailable == wad(1_000)
    assert fingerprint(protocol) == before
    assert protocol.adl_required(ALICE, BTC)
    ranking, scores = protocol.adl_ranking(BTC, WAD)
    assert ranking == [BOB, CAROL]
    assert scores[0] > scores[1] > 0
    assert scores[0] == wad("0.51")  # 15% PnL * 3.4x leverage ($42,500 on $12,500)
    dave_before = protocol.account_value(DAVE)
    bankruptcy = protocol.bankruptcy_price(ALICE, BTC)
    assert bankruptcy == 100_000 * WAD - (wad(10_000) - 1)  # P - (AV - 1 wei) / size, AV = -$5,000

    protocol.deleverage(ALICE, BTC, ranking)
    fills = protocol.events_named("AdlFill")
    assert [f.counterpartyId for f in fills] == ranking
    assert all(f.price == bankruptcy and f.oraclePrice == wad(85_000) for f in fills)
    assert sum(f.size for f in fills) == -WAD
    assert protocol.bad_debt == 0
    assert 0 <= protocol.account_value(ALICE) <= 1
    assert protocol.get_position(ALICE, BTC) == (0, 0)
    assert protocol.account_value(DAVE) == dave_before  # no position: loses nothing
    assert protocol.insurance_fund == wad(1_000)  # untouched
    [deleveraged] = protocol.events_named("Deleveraged")
    assert deleveraged.args == {
        "accountId": ALICE, "marketId": BTC, "size": WAD, "bankruptcyPrice": bankruptcy,
        "oraclePrice": wad(85_000), "valueBefore": -wad(5_000), "counterparties": 2,
    }
    check_invariants(protocol)


def test_deleverage_partial_list_closes_what_the_winners_hold():
    """tests/test_liquidation.py::test_deleverage_partialList_closesWhatTheWinnersHold on the model."""
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(85_000))
    fund = protocol.insurance_fund
    bankruptcy = protocol.bankruptcy_price(ALICE, BTC)
    protocol.deleverage(ALICE, BTC, [BOB])
    [event] = protocol.events_named("Deleveraged")
    assert (event.size, event.bankruptcyPrice, event.valueBefore) == (WAD // 2, bankruptcy, -wad(5_000))
    assert protocol.get_position(BOB, BTC)[0] == 0 and protocol.get_position(ALICE, BTC)[0] == WAD // 2
    assert protocol.fund_reserve_of(ALICE) == fund and protocol.insurance_fund == 0
    assert protocol.adl_required(ALICE, BTC)
    bankruptcy = protocol.bankruptcy_price(ALICE, BTC)
    assert abs(bankruptcy - wad(88_000)) <= 2
    protocol.deleverage(ALICE, BTC, [CAROL])
    assert [e.size for e in protocol.events_named("Deleveraged")] == [WAD // 2, WAD // 2]
    assert protocol.events_named("Deleveraged")[-1].bankruptcyPrice == bankruptcy
    assert protocol.get_position(ALICE, BTC)[0] == 0 and protocol.get_position(CAROL, BTC)[0] == 0
    assert protocol.bad_debt == 0
    check_invariants(protocol)


def test_deleverage_refuses_a_partial_list_under_pro_rata():
    """PRO_RATA's shares are of the whole position: a list that covers part of it is refused."""
    protocol = seed_book(BadDebtPolicy.ADL, ranking=AdlRanking.PRO_RATA)
    protocol.set_price(BTC, wad(85_000))
    with pytest.raises(AdlInsufficient) as info:
        protocol.deleverage(ALICE, BTC, [BOB])
    assert info.value.remaining == WAD // 2


def test_adl_takes_only_what_covers_the_position():
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.fund(BOB, 20_000)
    protocol.fund(DAVE, 20_000)
    protocol.settle_matched_fill(DAVE, BOB, BTC, WAD, wad(100_000))  # bob alone now covers alice
    protocol.set_price(BTC, wad(85_000))
    ranking, _ = protocol.adl_ranking(BTC, WAD)
    chosen = canonical_counterparties(protocol, BTC, ALICE, ranking)
    assert chosen == [BOB]
    carol_before = protocol.get_position(CAROL, BTC)
    with pytest.raises(AdlUnusedCounterparties) as info:
        protocol.deleverage(ALICE, BTC, ranking)
    assert info.value.firstUnused == 1
    protocol.deleverage(ALICE, BTC, chosen)
    assert protocol.get_position(BOB, BTC)[0] == -WAD * 3 // 2 + WAD
    assert protocol.get_position(CAROL, BTC) == carol_before
    check_invariants(protocol)


def test_deleverage_rejects_wrong_lists():
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(85_000))
    ranking, scores = protocol.adl_ranking(BTC, WAD)
    with pytest.raises(AdlOutOfOrder) as info:
        protocol.deleverage(ALICE, BTC, list(reversed(ranking)))
    assert info.value.inputs == {"index": 1, "previousScore": scores[1], "score": scores[0]}
    with pytest.raises(AdlIneligible) as info:
        protocol.deleverage(ALICE, BTC, [DAVE])
    assert info.value.inputs == {"accountId": DAVE, "size": 0, "unrealizedPnl": 0}
    with pytest.raises(AdlInsufficient) as info:
        protocol.deleverage(ALICE, BTC, [])
    assert info.value.remaining == WAD
    with pytest.raises(NotLiquidatable):
        protocol.deleverage(BOB, BTC, [ALICE])
    with pytest.raises(VaultAccount):
        protocol.liquidate(protocol.vault, BTC)


def test_no_adl_while_fund_and_book_can_absorb():
    protocol = seed_book(BadDebtPolicy.ADL, insurance=100_000)
    protocol.set_price(BTC, wad(85_000))
    assert not protocol.adl_required(ALICE, BTC)
    with pytest.raises(AdlNotRequired):
        protocol.deleverage(ALICE, BTC, [BOB, CAROL])
    protocol.liquidate(ALICE, BTC)
    [event] = protocol.events_named("Liquidation")
    assert event.fundPaid == wad("5007.225") and event.badDebt == 0
    assert not protocol.events_named("AdlFill")
    assert protocol.bad_debt == 0
    check_invariants(protocol)


def test_socialize_charges_open_positions_pro_rata_and_not_later_ones():
    protocol = seed_book(BadDebtPolicy.SOCIALIZE)
    protocol.set_price(BTC, wad(85_000))
    payers = [BOB, CAROL]
    before = {who: protocol.account_value(who) for who in payers}
    vault_before = protocol.account_value(protocol.vault)
    protocol.liquidate(ALICE, BTC)
    [event] = protocol.events_named("Liquidation")
    loss = event.socialized
    assert loss == wad("5007.225") - wad(1_000) and event.fundPaid == wad(1_000)
    assert event.badDebt == 0 and protocol.bad_debt == 0
    # Open positions after the fill: bob 0.5 and carol 0.5 short, the vault 1 long.
    delta = fp.mul_div_up(loss, WAD, WAD // 2 + WAD // 2 + WAD)
    assert delta == -(-loss * WAD // (2 * WAD))
    assert protocol.market_view(BTC).social_loss_index == delta
    [socialized] = protocol.events_named("LossSocialized")
    assert (socialized.amount, socialized.indexDelta) == (loss, delta)
    for who in payers:
        assert before[who] - protocol.account_value(who) == -(-(WAD // 2) * delta // WAD)
    # The vault took alice's sell at the fill price; beyond that it pays its 1.0 share.
    fill = event.fillPrice
    vault_pnl = wad(85_000) - fill  # bought 1 BTC at `fill`, valued at the oracle price
    assert vault_before + vault_pnl - protocol.account_value(protocol.vault) == delta
    # A position opened afterwards pays nothing.
    protocol.fund(0xE1217, 10_000)
    protocol.settle_matched_fill(0xE1217, DAVE, BTC, WAD // 10, wad(85_000))
    assert protocol.account_value(0xE1217) == wad(10_000)
    check_invariants(protocol)


def test_partial_liquidation_leaves_account_healthier():
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, depth2pct=50_000_000)], vault_collateral_usd=50_000_000)
    protocol.fund(ALICE, 200_000)
    protocol.fund(BOB, 2_000_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, wad(20), wad(100_000))
    protocol.set_price(BTC, wad(94_500))  # AV $90,000 < MM $94,500
    value, mm, _ = protocol.health(ALICE)
    assert value < mm
    _, value_after_fill, mm_after_fill = protocol.preview_liquidation_fill(ALICE, BTC, -wad(4))
    assert protocol.liquidate(ALICE, BTC) == wad(4)  # 20% of a $1.89M position
    [event] = protocol.events_named("Liquidation")
    gain = (value_after_fill - mm_after_fill) - (value - mm)
    assert event.penalty == min(wad(4 * 94_500) // 100, value_after_fill, gain)
    value_after, mm_after, _ = protocol.health(ALICE)
    assert (value_after, mm_after) == (value_after_fill - event.penalty, mm_after_fill)
    assert value_after - mm_after >= value - mm
    check_invariants(protocol)


def test_thin_book_escalates_a_slice_to_a_full_close():
    # A $2M position over the $1M threshold in a book so thin that a 20% slice costs more in impact
    # than it frees in margin: the plan closes everything instead.
    protocol = Protocol.from_specs(
        [MarketSpec("BTC", 100_000, depth2pct=50_000, policy=BadDebtPolicy.NONE, max_impact="0.9")],
        vault_collateral_usd=50_000_000,
    )
    protocol.fund(ALICE, 200_000)
    protocol.fund(BOB, 2_000_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, wad(20), wad(100_000))
    protocol.set_price(BTC, wad(94_500))
    value, mm, _ = protocol.health(ALICE)
    assert value < mm
    _, slice_value, slice_mm = protocol.preview_liquidation_fill(ALICE, BTC, -wad(4))
    assert slice_value - slice_mm < value - mm
    assert protocol.liquidate(ALICE, BTC) == wad(20)
    assert protocol.get_position(ALICE, BTC) == (0, 0)
    assert protocol.bad_debt > 0  # a full close through a thin book: the gap is bad debt under NONE
    check_invariants(protocol)


def test_thin_book_with_a_capped_caller_reverts_liquidation_worsens_health():
    protocol = Protocol.from_specs(
        [MarketSpec("BTC", 100_000, depth2pct=50_000, policy=BadDebtPolicy.NONE, max_impact="0.9")],
        vault_collateral_usd=50_000_000,
    )
    protocol.fund(ALICE, 200_000)
    protocol.fund(BOB, 2_000_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, wad(20), wad(100_000))
    protocol.set_price(BTC, wad(94_500))
    value, mm, _ = protocol.health(ALICE)
    _, slice_value, slice_mm = protocol.preview_liquidation_fill(ALICE, BTC, -wad(4))
    with pytest.raises(LiquidationWorsensHealth) as info:
        protocol.liquidate(ALICE, BTC, max_size=wad(4))
    assert info.value.inputs == {
        "accountId": ALICE, "healthBefore": value - mm, "healthAfter": slice_value - slice_mm
    }


def test_liquidity_void_leaves_the_position_until_depth_returns():
    protocol = seed_book(BadDebtPolicy.NONE)
    protocol.set_price(BTC, wad(94_000))
    protocol.set_depth(BTC, 0)
    assert protocol.book_capacity(BTC, False) == 0
    before = fingerprint(protocol)
    with pytest.raises(LiquidityVoid) as info:
        protocol.liquidate(ALICE, BTC)
    assert info.value.inputs == {"marketId": BTC, "size": 0}
    assert fingerprint(protocol) == before
    protocol.set_depth(BTC, wad(10_000_000))
    assert protocol.liquidate(ALICE, BTC) == WAD
    check_invariants(protocol)


def test_no_book_under_adl_sends_the_position_to_adl():
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(94_000))
    protocol.set_depth(BTC, 0)
    with pytest.raises(UseDeleverage) as info:
        protocol.liquidate(ALICE, BTC)
    assert info.value.shortfall == fp.MAX_UINT256  # no book at all
    assert protocol.adl_required(ALICE, BTC)


def test_rate_limit_window():
    protocol = seed_book(BadDebtPolicy.NONE, rate_limit_notional=94_000, rate_limit_window=60)
    erin = 0xE1217
    protocol.fund(erin, 10_000)
    protocol.settle_matched_fill(erin, CAROL, BTC, WAD, wad(100_000))
    protocol.set_price(BTC, wad(94_000))
    assert protocol.liquidate(ALICE, BTC) == WAD  # uses the whole window: $94,000
    assert protocol.liquidator.rate_windows[BTC].used == wad(94_000)
    window_end = protocol.timestamp + 60
    protocol.advance(59)
    with pytest.raises(RateLimited) as info:
        protocol.liquidate(erin, BTC)
    assert info.value.inputs == {"marketId": BTC, "windowEnd": window_end}
    protocol.advance(1)
    assert protocol.liquidate(erin, BTC) == WAD
    assert protocol.liquidator.rate_windows[BTC].start == protocol.timestamp
    check_invariants(protocol)


class _RevertAtEvent(Exception):
    """Raised in place of an event: a revert at the end of a call, after all its writes."""


def _revert_at(monkeypatch, protocol: Protocol, name: str, seen: dict) -> None:
    """Makes the chain's event `name` raise, noting the state (`fingerprint`) at that point."""
    emit = protocol._emit

    def emit_or_revert(event_name, *values):
        if event_name == name:
            seen[name] = fingerprint(protocol)
            raise _RevertAtEvent(name)
        emit(event_name, *values)

    monkeypatch.setattr(protocol, "_emit", emit_or_revert)


def test_a_liquidation_reverting_after_its_writes_restores_both_engines(monkeypatch):
    """One transaction spans the liquidation engine and the engine it calls: a revert after the fill,
    the penalty, the deficit's settlement (engine) and the rate window's use (liquidation engine)
    leaves the storage of both as it was."""
    protocol = seed_book(BadDebtPolicy.NONE, rate_limit_notional=1_000_000, rate_limit_window=60)
    protocol.set_price(BTC, wad(94_000))
    before = fingerprint(protocol)
    windows_before = dict(protocol.liquidator.rate_windows)
    seen: dict = {}
    _revert_at(monkeypatch, protocol, "Liquidation", seen)
    with pytest.raises(_RevertAtEvent):
        protocol.liquidate(ALICE, BTC)
    # The writes were made (position closed, rate window used), then undone.
    assert seen["Liquidation"] != before
    assert protocol.liquidator.rate_windows == windows_before == {}
    assert fingerprint(protocol) == before
    monkeypatch.undo()
    assert protocol.liquidate(ALICE, BTC) == WAD
    assert protocol.get_position(ALICE, BTC) == (0, 0)
    assert protocol.liquidator.rate_windows[BTC].used == wad(94_000)
    check_invariants(protocol)


def test_a_deleverage_reverting_after_its_fills_restores_both_engines(monkeypatch):
    """As above for ADL: the fills with every counterparty and the deficit's settlement are undone."""
    protocol = seed_book(BadDebtPolicy.ADL)
    protocol.set_price(BTC, wad(85_000))
    ranking, _ = protocol.adl_ranking(BTC, WAD)
    before = fingerprint(protocol)
    seen: dict = {}
    _revert_at(monkeypatch, protocol, "Deleveraged", seen)
    with pytest.raises(_RevertAtEvent):
        protocol.deleverage(ALICE, BTC, ranking)
    assert seen["Deleveraged"] != before
    assert fingerprint(protocol) == before
    assert protocol.adl_required(ALICE, BTC)
    monkeypatch.undo()
    protocol.deleverage(ALICE, BTC, ranking)
    assert protocol.get_position(ALICE, BTC) == (0, 0)
    check_invariants(protocol)


def test_protocol_forwards_every_external_function_of_the_liquidation_engine():
    """`Protocol` drives the liquidation engine it deploys (`liquidator`) through the same names:
    each public function of the model's LiquidationEngine is forwarded, none is missing."""
    public = [name for name, value in vars(LiquidationEngine).items() if callable(value) and not name.startswith("_")]
    assert "liquidate_account" in public and "adl_ranking" in public
    for name in public:
        assert getattr(Protocol, name).__wrapped__ is getattr(LiquidationEngine, name), name
    protocol = seed_book(BadDebtPolicy.ADL)
    assert protocol.liquidator.engine is protocol and protocol.liquidator.chain is protocol


def test_pro_rata_adl_with_the_remainder_rule():
    protocol = seed_book(BadDebtPolicy.ADL, insurance=0, ranking=AdlRanking.PRO_RATA)
    protocol.fund(DAVE, 50_000)
    protocol.fund(0xE1217, 50_000)
    protocol.settle_matched_fill(0xE1217, DAVE, BTC, WAD // 3, wad(100_000))  # dave: a third short
    protocol.set_price(BTC, wad(85_000))
    ranking, _ = protocol.adl_ranking(BTC, WAD)
    assert ranking == sorted([BOB, CAROL, DAVE])
    with pytest.raises(AdlNotSortedById) as info:
        protocol.deleverage(ALICE, BTC, list(reversed(ranking)))
    assert info.value.inputs == {"index": 1, "previousId": ranking[2], "id": ranking[1]}
    available = WAD // 2 + WAD // 2 + WAD // 3
    takes = {who: WAD * abs(protocol.get_position(who, BTC)[0]) // available for who in ranking}
    remainder = WAD - sum(takes.values())
    for who in ranking[:remainder]:
        takes[who] += 1
    protocol.deleverage(ALICE, BTC, ranking)
    fills = {f.counterpartyId: -f.size for f in protocol.events_named("AdlFill")}
    assert fills == takes
    assert sum(fills.values()) == WAD
    check_invariants(protocol)


@pytest.mark.parametrize("policy", list(BadDebtPolicy))
def test_keepers_clear_a_cascade(policy):
    """Seven 10x longs of $200,000 each; 2% steps down; keepers each step (tests/test_liquidation.py)."""
    spec = MarketSpec("BTC", 100_000, depth2pct=2_000_000, policy=policy)
    protocol = Protocol.from_specs([spec], vault_collateral_usd=100_000_000, insurance_fund_usd=5_000)
    whale = 0x3A1E
    protocol.fund(whale, 10_000_000)
    traders = [0x100 + i for i in range(7)]
    for trader in traders:
        protocol.fund(trader, 20_000)
        protocol.settle_matched_fill(trader, whale, BTC, wad(2), wad(100_000))
    price = 100_000
    for _ in range(8):
        price = price * 98 // 100
        protocol.set_price(BTC, wad(price))
        protocol.advance(1)
        run_keepers(protocol)
        check_invariants(protocol)
    assert protocol.market_view(BTC).long_open_interest == 0
    if policy == BadDebtPolicy.ADL:
        assert protocol.bad_debt == 0
    check_invariants(protocol)
