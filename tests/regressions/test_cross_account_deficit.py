"""Regressions on chain (with the model in lockstep, tests/twin/harness.Twin): cases found while
writing the property tests, kept as fixed sequences.

The cross-account deficit case (found by the differential suite): a liquidation that leaves a
cross account below zero while it still holds another position used to be allowed because the fund
could pay, but the fund paid nothing until close-out. Other liquidations then drained it, and the
account's last position went to ADL at a bankruptcy price that had to absorb the whole deficit (a
short's floored at 1 wei): winners lost far more than their profit, and bad debt was recorded in an
ADL market (invariant 6). The fix: the fund earmarks the carried deficit (`fundReserveOf`), the
waterfall counts only the free fund for everyone else, and the earmark is paid or released at
close-out. The model mirrors the contracts, so chain and model agree throughout.
"""

import pytest

from simulator.chain.deploy import MarketSpec
from simulator.units import WAD, oracle_answer, usdc, wad
from tests.isolation import isolated
from tests.twin.harness import Twin, build_env
from tests.twin.oracle import HEARTBEAT

BTC, ETH = 0, 1


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


def two_adl_markets(twin: Twin, insurance_usd: int):
    twin.configure_market(BTC, MarketSpec("BTC", 100_000, depth2pct=10_000_000, heartbeat=HEARTBEAT), seconds=1)
    twin.configure_market(ETH, MarketSpec("ETH", 4_000, depth2pct=5_000_000, heartbeat=HEARTBEAT))
    twin.deposit(twin.env.vault, usdc(10_000_000))
    twin.deposit_insurance(insurance_usd)


def test_carried_deficit_keeps_its_fund_and_the_next_loss_goes_to_adl(env, chain):
    with isolated(chain):
        twin = Twin(env)
        alice, bob, carol, dave, erin = env.traders[:5]
        two_adl_markets(twin, insurance_usd=6_000)
        for who, dollars in ((alice, 12_000), (bob, 50_000), (carol, 50_000), (dave, 10_000), (erin, 50_000)):
            twin.deposit(who, usdc(dollars))
        assert twin.matched(alice, bob, BTC, WAD, wad(100_000)).ok  # alice long 1 BTC
        assert twin.matched(carol, alice, ETH, WAD // 2, wad(4_000)).ok  # alice short 0.5 ETH
        assert twin.matched(dave, erin, BTC, WAD, wad(100_000)).ok  # dave long 1 BTC
        twin.set_price(BTC, oracle_answer(85_000), seconds=1)
        twin.set_price(ETH, oracle_answer(4_100))
        alice_id, bob_id, dave_id, erin_id = (int(a.address, 16) for a in (alice, bob, dave, erin))
        model = twin.model

        # alice's BTC: the fund ($6,000) can pay the ~$3,057 loss, so the plan fills. alice still
        # holds ETH, so nothing is paid to her yet, but the fund earmarks her deficit.
        outcome = twin.liquidate(alice_id, BTC)
        [event] = outcome.named("Liquidation")
        deficit = -model.health(alice_id)[0]
        assert event["fundPaid"] == 0 and deficit > wad(3_000)
        [reserved] = outcome.named("InsuranceFundReserved")
        assert (reserved["accountId"], reserved["amount"], reserved["total"]) == (alice_id, deficit, deficit)
        assert model.fund_reserve_of(alice_id) == deficit and model.insurance_fund == wad(6_000) - deficit

        # dave's ~$5,008 loss is more than the free fund (~$2,943): ADL, though the fund's total
        # ($6,000) would once have paid it and left nothing for alice.
        refused = twin.liquidate(dave_id, BTC)
        assert not refused.ok and refused.error.name == "UseDeleverage"
        assert refused.error.args_["fundAvailable"] == model.insurance_fund < refused.error.args_["shortfall"]
        assert twin.adl_required(dave_id, BTC)
        shorts_before = {i: model.health(i)[0] for i in (bob_id, erin_id)}
        upnl = {i: 15_000 * WAD for i in (bob_id, erin_id)}  # both short 1 BTC from $100,000
        fills = twin.keeper_act(dave_id, BTC).named("AdlFill")
        assert fills and {f["counterpartyId"] for f in fills} <= {bob_id, erin_id}
        for i, before in shorts_before.items():
            assert 0 <= before - model.health(i)[0] <= upnl[i]  # part of the profit, never more
        assert model.fund_reserve_of(alice_id) == deficit  # untouched by dave's ADL

        # alice's last position, 0.5 ETH short, is liquidated, not deleveraged: the free fund and her
        # earmark cover it. The earmark goes back to the fund at close-out, and the fund pays.
        assert not twin.adl_required(alice_id, ETH)
        outcome = twin.keeper_act(alice_id, ETH)
        [event] = outcome.named("Liquidation")
        [released] = outcome.named("InsuranceFundReleased")
        assert (released["amount"], released["total"]) == (deficit, 0)
        assert event["fundPaid"] >= deficit and event["badDebt"] == 0
        assert model.health(alice_id)[0] == 0 and model.insurance_fund_reserved == 0

        # Invariant 6: under ADL no bad debt is recorded; the fund never went negative.
        assert not [args for name, args in twin.history if name == "BadDebtRecorded"]
        assert model.bad_debt == 0 and model.insurance_fund >= 0
        twin.compare_state("end")


def test_earmark_goes_back_to_the_fund_when_the_account_recovers(env, chain):
    """No gift to the owner: a carried deficit that the market later repays releases the fund's
    earmark when the owner closes out, and an owner cannot close out while in deficit."""
    with isolated(chain):
        twin = Twin(env)
        alice, bob, carol = env.traders[:3]
        two_adl_markets(twin, insurance_usd=6_000)
        for who, dollars in ((alice, 12_000), (bob, 50_000), (carol, 50_000)):
            twin.deposit(who, usdc(dollars))
        assert twin.matched(alice, bob, BTC, WAD, wad(100_000)).ok
        assert twin.matched(carol, alice, ETH, wad(5), wad(4_000)).ok  # alice short 5 ETH
        twin.set_price(BTC, oracle_answer(85_000), seconds=1)
        alice_id = int(alice.address, 16)
        model = twin.model
        twin.liquidate(alice_id, BTC)
        deficit = model.fund_reserve_of(alice_id)
        assert deficit > 0 and model.health(alice_id)[0] == -deficit

        # Still in deficit: closing the last position herself would leave the loss unsettled.
        refused = twin.matched(alice, carol, ETH, wad(5), wad(4_000))
        assert not refused.ok and refused.error.name == "DeficitCloseOut"

        # ETH falls $1,000: alice's short gains $5,000, more than her deficit; she closes out with
        # equity and the whole earmark goes back to the fund.
        twin.set_price(ETH, oracle_answer(3_000), seconds=1)
        value = model.health(alice_id)[0]
        assert value > 0
        fund = model.insurance_fund
        outcome = twin.matched(alice, carol, ETH, wad(5), wad(3_000))
        assert outcome.ok, outcome.error
        [released] = outcome.named("InsuranceFundReleased")
        assert (released["accountId"], released["amount"], released["total"]) == (alice_id, deficit, 0)
        assert model.insurance_fund == fund + deficit and model.insurance_fund_reserved == 0
        assert model.collateral_of(alice_id) == value  # her own equity, nothing from the fund
        twin.compare_state("end")
