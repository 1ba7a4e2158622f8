"""The contract changes of "settle deficits only on closed-out accounts, register on fill, depth
requote scales consumption" in the model:

- settleDeficit pays nothing while the account holds any position, only earmarks the fund for its
  deficit; once closed out, the earmark is released to the fund, which pays, and the socialised
  loss is spread over longOI + shortOI + |vault size| and the account's own snapshot is untouched;
- every filled account is registered first (AccountRegistered before FundingSettled);
- setDepth within a block that walked the book rescales the block's consumption;
- PRO_RATA ordering errors are AdlNotSortedById; adlRequired(vault) is false.
"""

import pytest

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.model import Protocol
from simulator.model import fixed_point as fp
from simulator.model.errors import AdlNotSortedById, VaultAccount
from simulator.units import WAD, wad
from tests.model.helpers import ALICE, BOB, CAROL, DAVE, KEEPER, check_invariants, seed_book

BTC, ETH = 0, 1


def two_market_book(policy: BadDebtPolicy, insurance=1_000) -> Protocol:
    """alice ($12,000): long 1 BTC at $100,000 and 5 ETH at $4,000, both matched against bob."""
    markets = [
        MarketSpec("BTC", 100_000, depth2pct=10_000_000, policy=policy),
        MarketSpec("ETH", 4_000, depth2pct=5_000_000, policy=policy),
    ]
    protocol = Protocol.from_specs(markets, insurance_fund_usd=insurance)
    protocol.fund(ALICE, 12_000)
    protocol.fund(BOB, 200_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD, wad(100_000))
    protocol.settle_matched_fill(ALICE, BOB, ETH, wad(5), wad(4_000))
    return protocol


@pytest.mark.parametrize("policy", [BadDebtPolicy.NONE, BadDebtPolicy.SOCIALIZE])
def test_deficit_waits_until_the_account_is_closed_out(policy):
    protocol = two_market_book(policy)
    protocol.set_price(BTC, wad(85_000))  # BTC loss $15,000: AV about -$3,000
    fund = protocol.insurance_fund
    index_before = protocol.market_view(BTC).social_loss_index
    protocol.liquidate(ALICE, BTC, keeper=KEEPER)
    [first] = protocol.events_named("Liquidation")
    assert (first.fundPaid, first.socialized, first.badDebt, first.penalty) == (0, 0, 0, 0)
    assert protocol.bad_debt == 0
    assert protocol.market_view(BTC).social_loss_index == index_before
    assert not protocol.events_named("InsuranceFundPayment") and not protocol.events_named("LossSocialized")
    value, _, _ = protocol.health(ALICE)
    assert value < 0 and protocol.market_mask_of(ALICE) == 1 << ETH  # the deficit stays, ETH open
    # The whole fund ($1,000 < the ~$3,000 deficit) is earmarked for alice, nothing paid to her.
    [reserved] = protocol.events_named("InsuranceFundReserved")
    assert (reserved.accountId, reserved.amount, reserved.total) == (ALICE, fund, fund)
    assert protocol.insurance_fund == 0 and protocol.insurance_fund_reserved == fund
    assert protocol.fund_reserve_of(ALICE) == fund
    # settleDeficit itself pays nothing on an account with a position (and the fund has no more).
    assert protocol.settle_deficit(ALICE, BTC, policy == BadDebtPolicy.SOCIALIZE) == (0, 0, 0)
    assert protocol.health(ALICE)[0] == value and protocol.fund_reserve_of(ALICE) == fund
    check_invariants(protocol)

    # Closing the last position closes the account out: now the waterfall runs.
    since = len(protocol.events)
    _, value_after, _ = protocol.preview_liquidation_fill(ALICE, ETH, -wad(5))
    protocol.liquidate(ALICE, ETH, keeper=KEEPER)
    [second] = protocol.events_named("Liquidation", since)
    deficit = -value_after
    [released] = protocol.events_named("InsuranceFundReleased", since)
    assert (released.amount, released.total) == (fund, 0) and protocol.insurance_fund_reserved == 0 and protocol.fund_reserve_of(ALICE) == 0
    assert second.fundPaid == fund
    if policy == BadDebtPolicy.NONE:
        assert (second.socialized, second.badDebt) == (0, deficit - fund)
        assert protocol.bad_debt == deficit - fund
    else:
        # Spread over the ETH market's open positions: bob's 5 short and the vault's 5 long.
        view = protocol.market_view(ETH)
        others = view.long_open_interest + view.short_open_interest + abs(view.vault_size)
        assert others == wad(10)
        assert (second.socialized, second.badDebt) == (deficit - fund, 0)
        [socialized] = protocol.events_named("LossSocialized", since)
        assert socialized.indexDelta == fp.mul_div_up(deficit - fund, WAD, others)
        assert view.social_loss_index == socialized.indexDelta
        # alice's own (now empty) position keeps the snapshot it had: nothing to settle later.
        assert protocol._position(ALICE, ETH).social_loss_index == 0
    assert protocol.health(ALICE)[0] == 0
    check_invariants(protocol)


def test_single_market_close_out_is_settled_at_once():
    """A whole close in the account's only market closes it out: the waterfall runs in that call."""
    protocol = seed_book(BadDebtPolicy.NONE)
    protocol.set_price(BTC, wad(85_000))
    protocol.liquidate(ALICE, BTC)
    [event] = protocol.events_named("Liquidation")
    assert event.fundPaid == wad(1_000) and event.badDebt > 0
    assert protocol.health(ALICE)[0] == 0


def test_sliced_liquidation_leaves_the_deficit_until_the_last_slice():
    """Above the slice threshold a liquidation closes 20%: the account keeps its position (and its
    negative value) until the last slice, and only that one runs the waterfall."""
    spec = MarketSpec("BTC", 100_000, depth2pct=50_000_000, policy=BadDebtPolicy.NONE, slice_threshold=100_000)
    protocol = Protocol.from_specs([spec], vault_collateral_usd=50_000_000, insurance_fund_usd=100)
    protocol.fund(ALICE, 20_000)
    protocol.fund(BOB, 2_000_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, wad(2), wad(100_000))
    protocol.set_price(BTC, wad(85_000))  # AV $20,000 - $30,000 = -$10,000
    assert protocol.health(ALICE)[0] < 0
    calls = 0
    while protocol.position_of(ALICE, BTC)[0] != 0:
        protocol.liquidate(ALICE, BTC)
        calls += 1
        event = protocol.events_named("Liquidation")[-1]
        if protocol.position_of(ALICE, BTC)[0] != 0:
            assert (event.fundPaid, event.badDebt) == (0, 0)
            assert protocol.bad_debt == 0
    assert calls > 1
    assert event.fundPaid == wad(100) and event.badDebt > 0
    assert protocol.health(ALICE)[0] == 0
    check_invariants(protocol)


def test_a_fill_registers_the_account_first():
    """An unfunded vault is registered by its first fill (a liquidation fill has no capacity check),
    before its funding is settled."""
    protocol = Protocol.from_specs(
        [MarketSpec("BTC", 100_000, depth2pct=10_000_000, policy=BadDebtPolicy.NONE)], vault_collateral_usd=0
    )
    protocol.fund(ALICE, 10_000)
    protocol.fund(BOB, 50_000)
    protocol.settle_matched_fill(ALICE, BOB, BTC, WAD, wad(100_000))
    vault = protocol.vault
    assert vault not in protocol.account_ids
    protocol.set_price(BTC, wad(94_000))
    since = len(protocol.events)
    protocol.liquidate(ALICE, BTC)
    assert vault in protocol.account_ids
    names = [e.event_name for e in protocol.events[since:]]
    registered = names.index("AccountRegistered")
    assert protocol.events[since + registered].accountId == vault
    changed = [i for i, e in enumerate(protocol.events[since:]) if e.event_name == "PositionChanged"]
    assert protocol.events[since + changed[1]].accountId == vault and changed[1] > registered > changed[0]
    check_invariants(protocol)


def test_depth_requote_in_the_same_block_rescales_consumption():
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, depth2pct=10_000_000)])
    protocol.fund(ALICE, 1_000_000)
    protocol.fund(BOB, 1_000_000)
    protocol.open_position(ALICE, BTC, wad(3))  # walks $300,000 up: +0.06% marginal impact
    consumed = protocol.market_view(BTC).book_consumed
    assert consumed == wad(300_000)
    protocol.set_depth(BTC, wad(4_000_000))
    assert protocol.market_view(BTC).book_consumed == consumed * 4 // 10
    # A sell walk leaves negative consumption; the rescale rounds toward negative infinity.
    protocol.open_position(BOB, BTC, -wad(7))
    consumed = protocol.market_view(BTC).book_consumed
    assert consumed < 0
    protocol.set_depth(BTC, wad(1_000_000) + 1)
    assert protocol.market_view(BTC).book_consumed == fp.s_mul_div_down(consumed, wad(1_000_000) + 1, wad(4_000_000))
    exact, remainder = divmod(-consumed * (wad(1_000_000) + 1), wad(4_000_000))
    assert remainder != 0  # the case where the direction of rounding matters
    assert protocol.market_view(BTC).book_consumed == -exact - 1
    # Depth 0 (no book): consumption resets; a later requote has nothing to scale.
    protocol.set_depth(BTC, 0)
    assert protocol.market_view(BTC).book_consumed == 0
    protocol.set_depth(BTC, wad(10_000_000))
    assert protocol.market_view(BTC).book_consumed == 0
    # A new block starts a fresh book: a requote there changes nothing about consumption.
    protocol.open_position(ALICE, BTC, WAD)
    protocol.advance(1, 1)
    protocol.set_depth(BTC, wad(5_000_000))
    assert protocol.markets[BTC].book_consumed == wad(100_000)  # stale storage, untouched
    assert protocol.market_view(BTC).book_consumed == 0
    check_invariants(protocol)


def test_requote_keeps_the_marginal_price():
    """After a requote the next small fill prices as if the walked price move stayed in place."""
    protocol = Protocol.from_specs([MarketSpec("BTC", 100_000, depth2pct=10_000_000)])
    protocol.fund(ALICE, 1_000_000)
    protocol.open_position(ALICE, BTC, wad(5))
    before = protocol.quote(BTC, WAD // 1000)
    protocol.set_depth(BTC, wad(20_000_000))
    after = protocol.quote(BTC, WAD // 1000)
    # Marginal impact unchanged; the tiny fill's own walk is half as steep in the deeper book.
    assert abs(after - before) <= wad("0.02")


def test_pro_rata_errors_name_the_ids():
    protocol = seed_book(BadDebtPolicy.ADL, insurance=0, ranking=AdlRanking.PRO_RATA)
    protocol.set_price(BTC, wad(85_000))
    ranking, _ = protocol.adl_ranking(BTC, WAD)
    assert ranking == sorted([BOB, CAROL])
    with pytest.raises(AdlNotSortedById) as info:
        protocol.deleverage(ALICE, BTC, [ranking[1], ranking[0]])
    assert info.value.inputs == {"index": 1, "previousId": ranking[1], "id": ranking[0]}
    with pytest.raises(AdlNotSortedById) as info:
        protocol.deleverage(ALICE, BTC, [ranking[0], ranking[0]])
    assert info.value.inputs == {"index": 1, "previousId": ranking[0], "id": ranking[0]}


def test_adl_required_is_false_for_the_vault():
    protocol = Protocol.from_specs(
        [MarketSpec("BTC", 100_000, depth2pct=10_000_000)], vault_collateral_usd=20_000, insurance_fund_usd=0
    )
    protocol.fund(ALICE, 100_000)
    protocol.open_position(ALICE, BTC, WAD)  # the vault is 1 BTC short on $20,000
    protocol.set_price(BTC, wad(115_000))
    vault = protocol.vault
    assert protocol.is_account_liquidatable(vault)
    assert protocol.adl_required(vault, BTC) is False
    with pytest.raises(VaultAccount):
        protocol.liquidate_account(vault, BTC)
    assert not protocol.adl_required(CAROL, BTC) and not protocol.adl_required(DAVE, BTC)
