"""Liquidation, the insurance fund, the three bad-debt policies and ADL (docs/design.md §6,
invariants 4-8 and 10 of INVARIANTS.md)."""

import ape
import pytest

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec, deploy_system
from simulator.chain.keeper import MAX_UINT, canonical_counterparties, run_keepers
from simulator.units import usdc, wad
from tests.conftest import WAD
from tests.invariants import check_invariants
from tests.isolation import isolated
from tests.reverts import reverts

BTC = 0


def account_id(account):
    return int(account.address, 16)


def book(project, deployer, vault_account, accounts, policy, insurance=1_000, **spec):
    """alice: $10,000 long 1 BTC at $100,000 (10x), matched half against bob ($5,000, more
    leveraged) and half against carol ($50,000); dave holds collateral and no position."""
    alice, bob, carol, dave = accounts[1:5]
    params = dict(depth2pct=10_000_000, policy=policy)
    params.update(spec)
    system = deploy_system(project, deployer, vault_account, [MarketSpec("BTC", 100_000, **params)],
                           insurance_fund_usd=insurance)
    for who, dollars in ((alice, 10_000), (bob, 5_000), (carol, 50_000), (dave, 7_000)):
        system.fund(who, dollars)
    system.engine.settleMatchedFill(alice, bob, BTC, WAD // 2, wad(100_000), sender=deployer)
    system.engine.settleMatchedFill(alice, carol, BTC, WAD // 2, wad(100_000), sender=deployer)
    return system, alice, bob, carol, dave


def test_healthy_account_cannot_be_liquidated(project, deployer, vault_account, accounts):
    system, alice, *_ = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    value, mm, _ = system.engine.health(account_id(alice))
    with ape.reverts(system.liquidator.NotLiquidatable, accountId=account_id(alice), accountValue=value,
                     maintenanceMargin=mm):
        system.liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)


def test_liquidation_pays_keeper_and_fund_from_remaining_equity(project, deployer, vault_account, accounts):
    system, alice, *_ = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    keeper = accounts[6]
    engine, liquidator = system.engine, system.liquidator
    system.set_price(BTC, 94_000)  # AV $4,000 < MM $4,700
    assert engine.isLiquidatable(alice)
    fund_before = engine.insuranceFund()
    _, value_after, _ = engine.previewLiquidationFill(account_id(alice), BTC, -WAD)
    receipt = liquidator.liquidate(alice, BTC, MAX_UINT, sender=keeper)
    [event] = receipt.events.filter(liquidator.Liquidation)
    assert event.sizeClosed == -WAD  # $94,000 is below the slice threshold: closed whole
    assert event.penalty == min(wad(94_000) // 100, value_after)  # 1% fee, from equity only
    assert event.keeperReward == event.penalty // 10
    assert engine.collateralOf(account_id(keeper)) == event.keeperReward
    assert engine.insuranceFund() == fund_before + event.penalty - event.keeperReward
    assert engine.accountValue(alice) == value_after - event.penalty >= 0
    assert engine.getPosition(alice, BTC) == (0, 0)
    check_invariants(system)


def test_insolvency_under_none_records_the_shortfall_as_bad_debt(project, deployer, vault_account, accounts):
    system, alice, *_ = book(project, deployer, vault_account, accounts, BadDebtPolicy.NONE)
    engine = system.engine
    system.set_price(BTC, 85_000)  # a gap through bankruptcy: AV -$5,000
    fund = engine.insuranceFund()
    _, value_after, _ = engine.previewLiquidationFill(account_id(alice), BTC, -WAD)
    shortfall = -value_after - fund
    assert shortfall > 0
    tokens_before, claims_before, _ = engine.balanceSheet()
    receipt = system.liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    [event] = receipt.events.filter(system.liquidator.Liquidation)
    assert (event.fundPaid, event.badDebt, event.penalty) == (fund, shortfall, 0)
    assert engine.badDebt() == shortfall
    assert engine.insuranceFund() == 0
    assert engine.accountValue(alice) == 0
    # The protocol is insolvent by exactly the bad debt: claims exceed tokens held by that much.
    tokens, claims, fund_after = engine.balanceSheet()
    assert tokens == tokens_before == claims_before + fund  # no dust in this book
    assert claims + fund_after - tokens == engine.badDebt()
    check_invariants(system)


def test_adl_leaves_no_bad_debt_and_hits_the_top_of_the_ranking(project, deployer, vault_account, accounts):
    system, alice, bob, carol, dave = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    engine, liquidator = system.engine, system.liquidator
    system.set_price(BTC, 85_000)
    alice_id = account_id(alice)
    with ape.reverts(liquidator.UseDeleverage):
        liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    assert liquidator.adlRequired(alice_id, BTC)
    ranking, scores = liquidator.adlRanking(BTC, WAD)
    # bob ($5,000 on a $50,000 short) is more leveraged than carol ($50,000 on the same short).
    assert list(ranking) == [account_id(bob), account_id(carol)]
    assert scores[0] > scores[1] > 0
    upnl_before = {who: engine.getPosition(who, BTC) for who in (bob, carol)}
    for who in (bob, carol):
        size, open_notional = upnl_before[who]
        assert size * 85_000 - open_notional > 0  # winners only
    dave_before = engine.accountValue(dave)
    bankruptcy = engine.bankruptcyPrice(alice, BTC)
    assert bankruptcy == 100_000 * WAD - (wad(10_000) - 1)  # P - (AV - 1 wei) / size, AV = -$5,000

    receipt = liquidator.deleverage(alice, BTC, list(ranking), sender=deployer)
    fills = receipt.events.filter(liquidator.AdlFill)
    assert [f.counterpartyId for f in fills] == list(ranking)
    assert all(f.price == bankruptcy for f in fills)
    assert sum(f.size for f in fills) == -WAD
    assert engine.badDebt() == 0
    assert 0 <= engine.accountValue(alice) <= 1
    assert engine.getPosition(alice, BTC) == (0, 0)
    assert engine.accountValue(dave) == dave_before  # no position: loses nothing
    check_invariants(system)


def test_adl_takes_only_what_covers_the_position(project, deployer, vault_account, accounts):
    system, alice, bob, carol, dave = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    engine, liquidator = system.engine, system.liquidator
    # bob adds a larger short: he alone covers alice's 1 BTC.
    system.fund(bob, 20_000)
    system.fund(dave, 20_000)
    engine.settleMatchedFill(dave, bob, BTC, WAD, wad(100_000), sender=deployer)
    system.set_price(BTC, 85_000)
    ranking, _ = liquidator.adlRanking(BTC, WAD)
    chosen = canonical_counterparties(system, BTC, account_id(alice), ranking)
    assert chosen == [account_id(bob)]
    carol_before = engine.getPosition(carol, BTC)
    with ape.reverts(liquidator.AdlUnusedCounterparties, firstUnused=1):
        liquidator.deleverage(alice, BTC, list(ranking), sender=deployer)
    liquidator.deleverage(alice, BTC, chosen, sender=deployer)
    assert engine.getPosition(bob, BTC)[0] == -WAD * 3 // 2 + WAD
    assert engine.getPosition(carol, BTC) == carol_before
    check_invariants(system)


def test_deleverage_rejects_wrong_lists(project, deployer, vault_account, accounts):
    system, alice, bob, carol, dave = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    liquidator, engine = system.liquidator, system.engine
    system.set_price(BTC, 85_000)
    ranking, scores = liquidator.adlRanking(BTC, WAD)
    with ape.reverts(liquidator.AdlOutOfOrder, index=1, previousScore=scores[1], score=scores[0]):
        liquidator.deleverage(alice, BTC, list(reversed(ranking)), sender=deployer)
    with ape.reverts(liquidator.AdlIneligible, accountId=account_id(dave), size=0, unrealizedPnl=0):
        liquidator.deleverage(alice, BTC, [account_id(dave)], sender=deployer)
    with ape.reverts(liquidator.AdlInsufficient, remaining=WAD):
        liquidator.deleverage(alice, BTC, [], sender=deployer)
    with ape.reverts(liquidator.NotLiquidatable):
        liquidator.deleverage(bob, BTC, [account_id(alice)], sender=deployer)


def test_deleverage_partialList_closesWhatTheWinnersHold(project, deployer, vault_account, accounts):
    """A list that covers part of the position (bob's half) closes bob whole and leaves alice the
    rest, whose deficit the free fund earmarks before the next winner (carol) covers what is left."""
    system, alice, bob, carol, _ = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    liquidator, engine = system.liquidator, system.engine
    alice_id = account_id(alice)
    system.set_price(BTC, 85_000)  # AV -$5,000: bankrupt at $90,000; the fund's $1,000 cannot pay
    fund = engine.insuranceFund()
    bankruptcy = engine.bankruptcyPriceOf(alice_id, BTC)
    assert wad(90_000) <= bankruptcy <= wad(90_000) + 1
    receipt = liquidator.deleverage(alice, BTC, [account_id(bob)], sender=deployer)
    [event] = receipt.events.filter(liquidator.Deleveraged)
    assert (event.size, event.bankruptcyPrice, event.valueBefore) == (WAD // 2, bankruptcy, -wad(5_000))
    assert engine.getPosition(bob, BTC)[0] == 0 and engine.getPosition(alice, BTC)[0] == WAD // 2
    # The rest carries about -$2,500 at $85,000; the free fund ($1,000) is earmarked for it first,
    # so the next winner closes it at about $88,000.
    assert engine.fundReserveOf(alice_id) == fund and engine.insuranceFund() == 0
    assert liquidator.adlRequired(alice_id, BTC)
    bankruptcy = engine.bankruptcyPriceOf(alice_id, BTC)
    assert abs(bankruptcy - wad(88_000)) <= 2
    receipt = liquidator.deleverage(alice, BTC, [account_id(carol)], sender=deployer)
    [event] = receipt.events.filter(liquidator.Deleveraged)
    assert (event.size, event.bankruptcyPrice) == (WAD // 2, bankruptcy)
    assert engine.getPosition(alice, BTC)[0] == 0 and engine.getPosition(carol, BTC)[0] == 0
    check_invariants(system)


def test_no_adl_while_fund_and_book_can_absorb(project, deployer, vault_account, accounts):
    system, alice, bob, carol, _ = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL,
                                        insurance=100_000)
    liquidator, engine = system.liquidator, system.engine
    system.set_price(BTC, 85_000)
    assert not liquidator.adlRequired(account_id(alice), BTC)
    with ape.reverts(liquidator.AdlNotRequired):
        liquidator.deleverage(alice, BTC, [account_id(bob), account_id(carol)], sender=deployer)
    receipt = liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    [event] = receipt.events.filter(liquidator.Liquidation)
    assert event.fundPaid > wad(5_000) and event.badDebt == 0
    assert not receipt.events.filter(liquidator.AdlFill)
    assert engine.badDebt() == 0
    check_invariants(system)


def test_socialize_charges_open_positions_pro_rata_and_not_later_ones(project, deployer, vault_account, accounts):
    system, alice, bob, carol, dave = book(project, deployer, vault_account, accounts, BadDebtPolicy.SOCIALIZE,
                                           insurance=0)
    engine, liquidator = system.engine, system.liquidator
    system.set_price(BTC, 85_000)
    payers = [bob, carol]
    before = {who: engine.accountValue(who) for who in payers}
    receipt = liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    [event] = receipt.events.filter(liquidator.Liquidation)
    loss = event.socialized
    assert loss > wad(5_000) and event.badDebt == 0 and engine.badDebt() == 0
    # Open positions after the fill: bob 0.5 and carol 0.5 short, the vault 1 long (it took
    # alice's sell): each pays loss * |size| / 2, rounded up.
    total = WAD // 2 + WAD // 2 + WAD
    delta = -(-loss * WAD // total)
    assert engine.marketView(BTC).socialLossIndex == delta
    for who in payers:
        assert before[who] - engine.accountValue(who) == -(-(WAD // 2) * delta // WAD)
    # A position opened afterwards pays nothing.
    system.fund(accounts[5], 10_000)
    engine.settleMatchedFill(accounts[5], dave, BTC, WAD // 10, wad(85_000), sender=deployer)
    assert engine.accountValue(accounts[5]) == wad(10_000)
    check_invariants(system)


def test_partial_liquidation_leaves_account_healthier(project, deployer, vault_account, accounts):
    # A $2M position over the $1M slice threshold: closed 20% per call.
    system = deploy_system(project, deployer, vault_account, [MarketSpec("BTC", 100_000, depth2pct=50_000_000)],
                           vault_collateral_usd=50_000_000)
    alice, bob = accounts[1], accounts[2]
    system.fund(alice, 200_000)
    system.fund(bob, 2_000_000)
    system.engine.settleMatchedFill(alice, bob, BTC, wad(20), wad(100_000), sender=deployer)
    system.set_price(BTC, 94_500)  # AV $90,000 < MM $94,500
    engine, liquidator = system.engine, system.liquidator
    value, mm, _ = engine.health(account_id(alice))
    assert value < mm
    _, value_after_fill, mm_after_fill = engine.previewLiquidationFill(account_id(alice), BTC, -wad(4))
    receipt = liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    [event] = receipt.events.filter(liquidator.Liquidation)
    assert event.sizeClosed == -wad(4)
    gain = (value_after_fill - mm_after_fill) - (value - mm)
    assert event.penalty == min(wad(4 * 94_500) // 100, value_after_fill, gain)
    value_after, mm_after, _ = engine.health(account_id(alice))
    assert (value_after, mm_after) == (value_after_fill - event.penalty, mm_after_fill)
    assert value_after - mm_after >= value - mm
    check_invariants(system)


@pytest.mark.parametrize("bad", ["stale", "breaker"])
def test_nothing_liquidates_on_unusable_prices(project, deployer, vault_account, accounts, chain, bad):
    system, alice, *_ = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL,
                             max_deviation="0.1", cooldown=600)
    system.set_price(BTC, 94_000)
    assert system.engine.isLiquidatable(alice)
    if bad == "stale":
        chain.pending_timestamp += 3601
        error = system.router.StalePrice
    else:
        system.set_price(BTC, 80_000)  # -15%: trips the 10% breaker
        error = system.router.BreakerTripped
    with reverts(error, any_args=True):
        system.liquidator.liquidate(alice, BTC, MAX_UINT, sender=deployer)
    with reverts(error, any_args=True):
        system.liquidator.adlRequired(account_id(alice), BTC)


def cascade(project, deployer, vault_account, accounts, chain, rate_limit):
    """Seven 10x longs of $200,000 each; the price falls 2% a step for 8 steps with keepers acting
    each step; then keepers finish the book as the rate-limit windows pass."""
    spec = MarketSpec("BTC", 100_000, depth2pct=2_000_000, policy=BadDebtPolicy.NONE,
                      rate_limit_notional=rate_limit, rate_limit_window=60)
    system = deploy_system(project, deployer, vault_account, [spec], vault_collateral_usd=100_000_000)
    whale = accounts[8]
    system.fund(whale, 10_000_000)
    for trader in accounts[1:8]:
        system.fund(trader, 20_000)
        system.engine.settleMatchedFill(trader, whale, BTC, wad(2), wad(100_000), sender=deployer)
    price = 100_000
    for _ in range(8):
        price = price * 98 // 100
        system.set_price(BTC, price)
        run_keepers(system, deployer)
    for _ in range(8):
        chain.pending_timestamp += 61
        run_keepers(system, deployer)
    assert not system.engine.marketView(BTC).longOpenInterest
    check_invariants(system)
    return system.engine.badDebt()


def test_rate_limit_leaves_at_least_as_much_bad_debt(project, deployer, vault_account, accounts, chain):
    with isolated(chain):
        without = cascade(project, deployer, vault_account, accounts, chain, rate_limit=0)
    with isolated(chain):
        limited = cascade(project, deployer, vault_account, accounts, chain, rate_limit=200_000)
    assert limited >= without
    assert limited > 0


def test_keeper_views_answer_for_many_accounts_and_name_bad_input(project, deployer, vault_account, accounts):
    """The many-account views equal the single-account views (the differential suite compares them
    with the model after every operation); mismatched lists and unknown markets are named."""
    system, alice, bob, carol, dave = book(project, deployer, vault_account, accounts, BadDebtPolicy.ADL)
    liquidator, engine = system.liquidator, system.engine
    system.set_price(BTC, 85_000)  # alice needs ADL; bob and carol are winners, dave is flat
    ids = [account_id(who) for who in (alice, bob, carol, dave)]
    assert list(liquidator.adlRequiredMany(ids, [BTC] * 4)) == [True, False, False, False]
    assert list(liquidator.positionSizes(ids, BTC)) == [engine.positionOf(i, BTC)[0] for i in ids]
    assert list(liquidator.positionSizes(ids, BTC)) == [WAD, -WAD // 2, -WAD // 2, 0]
    masks, reserves = liquidator.marketMasksAndReserves(ids)
    assert (list(masks), list(reserves)) == ([1, 1, 1, 0], [0, 0, 0, 0])
    assert list(liquidator.unrealizedPnls(ids, [BTC] * 4)) == [-15_000 * WAD, 7_500 * WAD, 7_500 * WAD, 0]
    assert list(liquidator.adlRequiredMany([], [])) == []
    with reverts(liquidator.LengthMismatch, accountIds=4, marketIds=1):
        liquidator.unrealizedPnls(ids, [BTC])
    with reverts(liquidator.UnknownMarket, marketId=1):
        liquidator.unrealizedPnls(ids[:1], [1])
    with reverts(liquidator.LengthMismatch, accountIds=2, marketIds=1):
        liquidator.adlRequiredMany(ids[:2], [BTC])
    with reverts(liquidator.UnknownMarket, marketId=1):
        liquidator.positionSizes(ids, 1)
    with reverts(liquidator.UnknownMarket, marketId=1):
        liquidator.adlRequiredMany(ids[:1], [1])


@pytest.mark.parametrize("ranking", [AdlRanking.PNL_LEVERAGE, AdlRanking.PRO_RATA])
def test_adl_ranking_sorts_many_winners_with_ties(project, deployer, vault_account, accounts, ranking):
    """adlRanking's heapsort over 24 winners in three groups of equal score: by score descending
    then id ascending (PNL_LEVERAGE), or by id ascending (PRO_RATA); every winner once."""
    system = deploy_system(project, deployer, vault_account,
                           [MarketSpec("BTC", 100_000, depth2pct=10**9, ranking=ranking)])
    engine = system.engine
    whale = accounts[1]
    system.fund(whale, 10_000_000)
    shorts = [f"0x{(i * 0x9E3779B97F4A7C15 + 12345) % 2**160:040x}" for i in range(1, 25)]
    system.usdc.mint(deployer, usdc(24 * 30_000), sender=deployer)
    system.usdc.approve(engine, usdc(24 * 30_000), sender=deployer)
    for k, short in enumerate(shorts):
        engine.depositFor(short, usdc((10_000, 20_000, 30_000)[k % 3]), sender=deployer)
        engine.settleMatchedFill(whale, short, BTC, WAD // 10, wad(100_000), sender=deployer)
    system.set_price(BTC, 90_000)
    ids, scores = system.liquidator.adlRanking(BTC, WAD)
    assert sorted(ids) == sorted(int(s, 16) for s in shorts)
    pairs = list(zip(scores, ids))
    if ranking == AdlRanking.PNL_LEVERAGE:
        assert len(set(scores)) == 3 and min(scores) > 0
        assert pairs == sorted(pairs, key=lambda p: (-p[0], p[1]))
    else:
        assert list(ids) == sorted(ids)
