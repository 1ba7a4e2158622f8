"""Differential tests (invariant 11): the same operations go to the contracts on anvil (through Ape,
one transaction per call) and to the numpy model (`simulator.model.Protocol`), and after every
operation every observable must agree to the wei.

The `Twin` (tests/twin/harness.py) drives both sides in lockstep; tests/test_stateful.py and
tests/regressions use it too. Its reader (tests/twin/reader.py), the router's model
(tests/twin/oracle.py) and the strategies (tests/twin/strategies.py) live beside it.

- Time and blocks: every Ape transaction is mined in a block of its own. Before each one the twin
  sets the chain's next block timestamp (`chain.pending_timestamp`) and advances the model to the
  same block and timestamp, so funding accrual, rate windows and the per-block book consumption
  match exactly; the chain's head block number and timestamp are compared after every operation.
- The oracle: `OracleShadow` follows the router (feed answer, heartbeat, breaker) and decides what
  price the model may read at each timestamp; a price the router would refuse is 0 in the model,
  whose `InvalidPrice` then stands for the router's error (StalePrice, BreakerTripped,
  DeviationUnconfirmed), which must be the chain's, with its arguments.
- Outcomes: both sides succeed with the same events (engine and liquidation engine logs, every
  field), or both revert with the same error name and arguments.
- State after every operation (one batch of eth_calls): registered accounts, health (AV, MM, IM)
  and liquidatability of every account, positions (size, open notional, funding index),
  collateral, market masks, market views (open interest, vault size, funding index and rate,
  depth, book consumption, social loss index), insurance fund, bad debt, balance sheet, rate
  windows, block number and timestamp.
- Keepers: `Twin.run_keepers` is the reference keeper's loop (simulator/agents/reference_keeper.py)
  run on both sides, comparing every decision (liquidatable, adlRequired, the canonical ranking)
  before acting.

Ape 0.8.51's `chain.isolate()` swallows every exception raised inside it (a failed assertion
passes): examples are isolated with `isolated(chain)`, which snapshots, re-raises and restores.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings

from simulator.chain.deploy import AdlRanking, MarketSpec
from simulator.model.errors import ModelRevert
from simulator.units import WAD, oracle_answer, usdc, wad
from tests.isolation import isolated
from tests.model.helpers import examples
from tests.twin.harness import (
    TRADER_NAMES,
    Twin,
    apply_user_op,
    block_txs,
    build_env,
    dust_ranking_book,
    one_market,
    run_scenario,
    setup_book,
)
from tests.twin.oracle import HEARTBEAT
from tests.twin.reader import Reverted
from tests.twin.strategies import DustRanking, Scenario, block_scenarios, dust_rankings, scenarios


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


# ================================================================================================
# Tests
# ================================================================================================

DIFFERENTIAL = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# A book through all three policies, run first every time: a liquidation with equity left (a
# penalty), funding over an hour, then a crash with the ADL market's book pulled (ADL), a
# socialised loss, bad debt under NONE.
CRASH = Scenario(
    specs=("adl-pnl", "socialize-tiers", "none-rate-limited"),
    vault_usd=3_000_000,
    insurance_usd=0,
    collateral=(usdc("20000.123456"), usdc("300000.5"), usdc("35000.000001"), usdc(60_000), usdc("10000.25")),
    openings=(
        ("open", 0, 0, 1, 95, "cross", 0, 0, 123_456_789),  # 9.5x long BTC: liquidated with equity left
        ("open", 3, 0, 1, 60, "matched", 1, 40, 987_654_321),  # 6x long BTC from trader 1: ADL'd
        ("open", 1, 1, -1, 5, "cross", 0, 0, 3),  # a short ETH for the socialised loss to land on
        ("open", 2, 1, 1, 140, "isolated", 0, 0, 55_555),  # 14x isolated long ETH: socialised
        ("open", 4, 2, 1, 45, "isolated", 0, 0, 7),  # 4.5x isolated long SOL: bad debt
    ),
    steps=(
        (3_600, [(9_350, 12_345), (9_900, 678), (9_800, 91_011)], [None, None, None], [("funding", 3, 0)]),
        (30, [(7_000, 999_999), (8_000, 1), (6_500, 424_242)], [0, None, 5], []),
        (61, [None, (11_000, 17), None], [10, None, None], [("close", 1, 1, False, 2)]),
    ),
)


# LEVERAGE_DRAIN with several winners of different leverage, run every time (random books almost
# never reach one: the mutant leverage-drain-keeps-by-size survived them): BTC -20% with its book
# pulled sends two 9x longs to ADL; the shorts (trader 2 at 1.9x, trader 1 at 1.5x, trader 3 at
# 1.1x against the vault) are all above the first one's level, drained in proportion to value.
DRAIN = Scenario(
    specs=("adl-leverage-drain", "adl-pnl"),
    vault_usd=3_000_000,
    insurance_usd=0,
    collateral=(usdc(20_000), usdc("60000.5"), usdc("30000.25"), usdc(100_000), usdc(15_000)),
    openings=(
        ("open", 0, 0, 1, 90, "matched", 1, 0, 111_111),  # 9x long BTC from trader 1
        ("open", 4, 0, 1, 90, "matched", 2, 0, 222_222),  # 9x long BTC from trader 2
        ("open", 3, 0, -1, 20, "cross", 0, 0, 333_333),  # 2x short BTC against the vault
    ),
    steps=((30, [(8_000, 4_321), None], [0, None], []),),
)


@DIFFERENTIAL
@example(scenario=CRASH)
@example(scenario=DRAIN)
# The same book under the other rankings of the last session (their mutants survived the random
# books): QUEUE's rest to the vault, CAPPED_PRO_RATA's prices, HYPERLIQUID's and MIN_OVERSHOOT's order.
@example(scenario=replace(DRAIN, specs=("adl-queue", "adl-pnl")))
@example(scenario=replace(DRAIN, specs=("adl-capped-pro-rata", "adl-pnl")))
@example(scenario=replace(DRAIN, specs=("adl-hyperliquid", "adl-pnl")))
@example(scenario=replace(DRAIN, specs=("adl-min-overshoot", "adl-pnl")))
@given(scenario=scenarios())
def test_books_and_shocks_agree(env, chain, scenario):
    with isolated(chain):
        run_scenario(env, scenario)


# ================================================================================================
# Several transactions in one block: the book's consumption accumulates, setDepth rescales it
# ================================================================================================


@settings(DIFFERENTIAL, max_examples=examples(10))
@given(case=block_scenarios())
def test_blocks_of_several_transactions_agree(env, chain, case):
    """Trades, closes, depth requotes, liquidations and price answers mined together: consumption
    accumulates within the block, setDepth rescales it (PerpEngine.setDepth), later transactions
    see the earlier ones' prices and fills."""
    scenario, blocks = case
    with isolated(chain):
        twin = Twin(env)
        traders = setup_book(twin, scenario)
        for op in scenario.openings:
            apply_user_op(twin, traders, op)
        for k, ops in enumerate(blocks):
            txs = block_txs(twin, traders, ops)
            if txs:
                twin.same_block(f"block {k}", txs, seconds=k % 2)
        twin.run_keepers()


# --- pinned cases: boundaries random books almost never reach ----------------------------------




def test_an_account_exactly_at_maintenance_margin_is_not_liquidatable(env, chain):
    """Liquidatable means AV < MM, strictly: an account whose value equals its maintenance margin to
    the wei is refused on both sides; one oracle unit (1e-8 USD) lower, both liquidate it. Random
    books almost never land on the boundary, so it is pinned here (mutant `liquidatable-at-mm`)."""
    with isolated(chain):
        twin = one_market(env, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok  # alice long 1 BTC, IM $10,000
        # At $94,000: AV = 10,700 - 6,000 = 4,700 = 5% of 94,000 = MM.
        twin.set_price(0, oracle_answer(94_000), seconds=1)
        alice_id = int(alice.address, 16)
        assert twin.health(alice_id)[:2] == (wad(4_700), wad(4_700))
        refused = twin.liquidate(alice_id, 0)
        assert not refused.ok and refused.error.name == "NotLiquidatable"
        twin.set_price(0, oracle_answer(94_000) - 1, seconds=1)
        assert twin.liquidate(alice_id, 0).ok


def test_a_penalty_takes_no_more_than_the_equity_left(env, chain):
    """A full close that leaves less equity than the 1% fee: the penalty is that equity, the account
    ends at zero and the fund pays nothing (LiquidationMath.penalty; mutant `penalty-not-capped`)."""
    with isolated(chain):
        twin = one_market(env, insurance_usd=5_000, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(89_800), seconds=1)  # AV $500, MM $4,490
        alice_id = int(alice.address, 16)
        outcome = twin.liquidate(alice_id, 0)
        [event] = outcome.named("Liquidation")
        fee = wad(89_800) // 100
        assert 0 < event["penalty"] < fee and event["fundPaid"] == 0 and event["badDebt"] == 0
        assert twin.model.collateral_of(alice_id) == 0 and twin.model.market_mask_of(alice_id) == 0


def test_a_partial_penalty_takes_no_more_than_the_slice_gained(env, chain):
    """A slice whose 1% fee exceeds what it improved the account's health (AV - MM; MM is also 1%
    here and the fill walks the book): the penalty is that gain, so AV - MM ends exactly where it
    was (LiquidationEngine._penalty; mutant `partial-penalty-not-capped-by-gain`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, imr="0.02", mmr="0.01", liquidation_fee="0.01", depth2pct=1_000_000,
                          slice_threshold=50_000, slice_fraction="0.2", heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=2_000, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(98_950), seconds=1)  # AV $950 < MM $989.50
        alice_id = int(alice.address, 16)
        value, mm, _ = twin.health(alice_id)
        outcome = twin.liquidate(alice_id, 0)
        [event] = outcome.named("Liquidation")
        assert event["sizeClosed"] == -WAD // 5  # a slice, not the whole position
        fee = wad(98_950) // 5 // 100
        assert 0 < event["penalty"] < fee
        value_after, mm_after, _ = twin.health(alice_id)
        assert value_after - mm_after == value - mm


def test_pro_rata_adl_hands_out_the_rounding_remainder(env, chain):
    """PRO_RATA: three winners hold 2 BTC against a bankrupt 1 BTC long; their pro-rata takes round
    down to 1 wei short of it, and the wei goes to the first winner with room, so the position
    closes exactly (LiquidationEngine._proRataTakes; mutant `pro-rata-remainder-dropped`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.PRO_RATA, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=50_000, erin=50_000, frank=100_000)
        alice, bob, carol, _, erin, frank = env.traders[:6]
        third = 3 * WAD // 10 + 1
        assert twin.matched(alice, bob, 0, third, wad(100_000)).ok
        assert twin.matched(alice, carol, 0, WAD - third, wad(100_000)).ok
        assert twin.matched(frank, erin, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $4,300 under water, no fund
        alice_id = int(alice.address, 16)
        outcome = twin.keeper_act(alice_id, 0)
        fills = outcome.named("AdlFill")
        takes = {f["counterpartyId"]: -f["size"] for f in fills}
        bob_id, carol_id, erin_id = (int(a.address, 16) for a in (bob, carol, erin))
        assert set(takes) == {bob_id, carol_id, erin_id} and sum(takes.values()) == WAD
        floors = {bob_id: third // 2, carol_id: (WAD - third) // 2, erin_id: WAD // 2}
        assert sum(floors.values()) == WAD - 1  # one wei to hand out
        assert sum(takes[i] - floors[i] for i in takes) == 1 and all(takes[i] >= floors[i] for i in takes)
        assert twin.model.position_of(alice_id, 0)[0] == 0


@pytest.mark.parametrize("ranking", list(AdlRanking), ids=lambda r: r.name)
def test_a_partial_adl_agrees_and_the_rest_follows(env, chain, ranking):
    """A bankrupt 1 BTC long against two 0.5 BTC winners, deleveraged one winner a call: under the
    rankings that take partial ADLs the first call closes that winner whole and half the position
    (Twin.deleverage checks the fills, `Deleveraged.size` and what stays open, on both sides), the
    second the rest; under the others the first call reverts `AdlInsufficient` in both
    (mutant `partial-adl-reports-whole-size`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=ranking, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=60_000)
        alice, bob, carol = env.traders[:3]
        assert twin.matched(alice, bob, 0, WAD // 2, wad(100_000)).ok
        assert twin.matched(alice, carol, 0, WAD // 2, wad(100_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $4,300 under water, no fund
        alice_id = int(alice.address, 16)
        ranked, _ = twin.model.adl_ranking(0, WAD)
        first = twin.deleverage(alice_id, 0, ranked[:1])
        if not ranking.partial:
            assert not first.ok and first.error.name == "AdlInsufficient"
            return
        assert first.ok and [e["size"] for e in first.named("Deleveraged")] == [WAD // 2]
        assert twin.model.position_of(alice_id, 0)[0] == WAD // 2
        assert twin.deleverage(alice_id, 0, ranked[1:]).ok
        assert twin.model.position_of(alice_id, 0)[0] == 0


@pytest.mark.parametrize("below", [0, 1], ids=["at-the-level", "one-unit-above"])
def test_leverage_drain_lists_only_winners_above_the_level(env, chain, below):
    """LEVERAGE_DRAIN at its boundary (`_drainTakes`: the last listed winner must keep less than
    its size): alice's 0.5 BTC long is deleveraged against three 0.5 BTC shorts worth $17,500,
    $27,500 and $45,000 at $85,000. Bob and carol alone keep 1 - 0.5 = 0.5 BTC on $45,000; erin's
    0.5 BTC on $45,000 is exactly that level, so listed third she would keep all of it
    (`AdlNotAboveLevel(2, 0.5, 0.5)`) and the keepers stop before her. With one token unit less
    (1e12 wei of value) she is above the level: the keepers list her and she gives up a few units.
    Chain and model alike (mutants `leverage-drain-level-unchecked`, `leverage-drain-at-level-accepted`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.LEVERAGE_DRAIN,
                          heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=5_350, bob=10_000, carol=20_000, frank=1_000_000)
        alice, bob, carol, _, erin, frank = env.traders[:6]
        assert twin.deposit(erin, usdc(37_500) - below).ok
        assert twin.matched(alice, bob, 0, WAD // 2, wad(100_000)).ok
        assert twin.matched(frank, carol, 0, WAD // 2, wad(100_000)).ok
        assert twin.matched(frank, erin, 0, WAD // 2, wad(100_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $2,150 under water, no fund
        alice_id, bob_id, carol_id, erin_id = (int(a.address, 16) for a in (alice, bob, carol, erin))
        assert [twin.model.health(w)[0] for w in (bob_id, carol_id, erin_id)] == \
            [wad(17_500), wad(27_500), wad(45_000) - below * 10**12]
        ranking = twin.adl_ranking(0, WAD // 2)[0]
        assert list(ranking) == [bob_id, carol_id, erin_id]  # leverage 2.43, 1.55, 0.94
        chosen = twin.canonical_counterparties(0, alice_id, ranking)
        if not below:
            assert chosen == [bob_id, carol_id]
            refused = twin.deleverage(alice_id, 0, [bob_id, carol_id, erin_id])
            assert not refused.ok and refused.error.key() == (
                "AdlNotAboveLevel", (("index", 2), ("retained", WAD // 2), ("size", WAD // 2)))
        else:
            assert chosen == [bob_id, carol_id, erin_id]
        outcome = twin.deleverage(alice_id, 0, chosen)
        assert outcome.ok
        takes = {f["counterpartyId"]: -f["size"] for f in outcome.named("AdlFill")}
        assert sum(takes.values()) == WAD // 2 and twin.model.position_of(alice_id, 0)[0] == 0
        if below:
            assert 0 < takes[erin_id] < 10**7  # 0.5 BTC * 1e12 / $90,000 of value: about 5.6e6 wei


def test_pro_rata_adl_passes_over_a_dust_winner(env, chain):
    """PRO_RATA: a winner holding 1 wei, listed after the real winner (higher id), gets a share of 0
    and no rounding unit; it gives up nothing and the ADL goes through (it reverted `ZeroAmount`
    and stalled, issue 17)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.PRO_RATA, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=50_000, erin=50_000, frank=50_000)
        alice = env.traders[0]
        others = sorted((env.traders[TRADER_NAMES.index(n)] for n in ("bob", "carol", "erin", "frank")),
                        key=lambda a: int(a.address, 16))
        winner, dust_long, dust = others[0], others[1], others[-1]
        assert twin.matched(alice, winner, 0, WAD, wad(100_000)).ok
        assert twin.matched(dust_long, dust, 0, 1, wad(100_000)).ok  # a 1-wei short
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $4,300 under water, no fund
        alice_id, dust_id = int(alice.address, 16), int(dust.address, 16)
        outcome = twin.keeper_act(alice_id, 0)
        [deleveraged] = outcome.named("Deleveraged")
        assert deleveraged["counterparties"] == 2  # the whole ranking, the dust winner included
        fills = {f["counterpartyId"]: -f["size"] for f in outcome.named("AdlFill")}
        assert fills == {int(winner.address, 16): WAD}
        assert twin.model.position_of(alice_id, 0)[0] == 0 and twin.model.position_of(dust_id, 0)[0] == -1


# The issue-17 counterexample: traders 2-7 hold 1-wei shorts on 1e-6 USDC, trader 1 the real winner.
_DUST_ABOVE_THE_WINNER = DustRanking(
    ranking=int(AdlRanking.PRO_RATA), bankrupt=0,
    roles=(("idle", 0, 0), ("winner", WAD, usdc(50_000))) + (("dust", 1, 1),) * 6, crash_usd=85_000,
)


@settings(DIFFERENTIAL, max_examples=examples(10))
@example(case=_DUST_ABOVE_THE_WINNER)
@example(case=replace(_DUST_ABOVE_THE_WINNER, ranking=int(AdlRanking.PNL_LEVERAGE)))
@example(case=replace(_DUST_ABOVE_THE_WINNER, ranking=int(AdlRanking.LEVERAGE_DRAIN)))
@given(case=dust_rankings())
def test_fuzz_deleverage_dustWinnersAnywhereInTheRanking(env, chain, case):
    """While ADL is required, `deleverage` with the canonical list (the keepers' choice: the whole
    ranking under PRO_RATA, its covering prefix under PNL_LEVERAGE, the prefix the draining reaches
    under LEVERAGE_DRAIN) never reverts, wherever winners
    of a few wei on a dust deposit sit in the ranking, and chain and model agree on every fill
    (issue 17: a dust winner's pro-rata share of 0 made `adlFill` revert `ZeroAmount`)."""
    with isolated(chain):
        twin, bankrupt_id = dust_ranking_book(env, case)
        side = twin.model.position_of(bankrupt_id, 0)[0]
        assert side > 0 and twin.adl_required(bankrupt_id, 0)
        ranking = twin.adl_ranking(0, side)[0]
        dust_ids = {int(who.address, 16) for who, role in zip(env.traders, case.roles) if role[0] == "dust"}
        assert dust_ids <= set(ranking)  # every dust winner is a candidate
        counterparties = twin.canonical_counterparties(0, bankrupt_id, ranking)
        outcome = twin.deleverage(bankrupt_id, 0, counterparties)
        assert outcome.ok, f"deleverage({counterparties}) reverted: {outcome.error}"
        assert twin.model.position_of(bankrupt_id, 0)[0] == 0
        assert not twin.adl_required(bankrupt_id, 0)


@pytest.mark.parametrize("short_by", [0, 1])
def test_liquidate_deficitExactlyTheFund(env, chain, short_by):
    """Invariant 7 at its boundary (`_plan`: ADL only when the deficit is greater than the fund):
    a fund of exactly the deficit pays it all and no ADL happens; a fund one token unit (1e12 wei)
    short sends the position to ADL. The book's depth makes the deficit a whole number of token
    units ($85M of depth: the close of 1 BTC at $85,000 fills at $84,999.15). Mutant
    `adl-when-fund-exactly-covers`."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=85_000_000, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        alice_id = int(alice.address, 16)
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)
        probe = copy.deepcopy(twin.model)
        with pytest.raises(ModelRevert) as refused:
            probe.liquidate_account(alice_id, 0, 2**256 - 1, keeper=twin.keeper_id)
        assert type(refused.value).__name__ == "UseDeleverage"
        deficit = refused.value.inputs["shortfall"]  # the deficit the close would leave
        assert deficit == wad("4300.85")
        twin.deposit_insurance(Decimal(deficit) / WAD - Decimal(short_by) / 10**6)
        outcome = twin.liquidate(alice_id, 0)
        if short_by:
            assert not outcome.ok and outcome.error.name == "UseDeleverage"
        else:
            [liquidation] = outcome.named("Liquidation")
            assert liquidation["fundPaid"] == deficit and twin.model.insurance_fund == 0


def test_minimums_refuse_dust_alike(env, chain):
    """The minimum collateral and the minimum position notional (issue 17) on both sides of each
    boundary: chain and model refuse the same credits and trades with the same arguments, and accept
    the same ones (a credit exactly at the minimum, a position exactly at it, a full close)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, heartbeat=HEARTBEAT, min_position_notional=100)
        twin = one_market(env, spec, alice=1_000)
        alice, bob = env.traders[:2]
        assert twin.set_min_collateral(wad(10)).ok
        refused = twin.deposit(bob, usdc(10) - 1)
        assert not refused.ok and refused.error.name == "CollateralBelowMinimum"
        assert twin.deposit(bob, usdc(10)).ok
        refused = twin.transfer_margin(alice, 0, wad(10) - 1)
        assert not refused.ok and refused.error.name == "CollateralBelowMinimum"
        assert twin.transfer_margin(alice, 0, wad(10)).ok
        at_minimum = WAD // 1_000  # $100 at $100,000: the market's minimum
        refused = twin.open(alice, 0, at_minimum - 1)
        assert not refused.ok and refused.error.name == "PositionBelowMinimum"
        assert twin.open(alice, 0, at_minimum).ok
        refused = twin.open(alice, 0, -1)
        assert not refused.ok and refused.error.name == "PositionBelowMinimum"
        refused = twin.matched(bob, alice, 0, 1, wad(100_000))
        assert not refused.ok and refused.error.name == "PositionBelowMinimum"
        assert twin.open(alice, 0, -at_minimum).ok


def test_an_answer_exactly_one_heartbeat_old_is_fresh(env, chain):
    """The router serves an answer up to its heartbeat's age and refuses it one second later:
    chain and model agree on both sides of the boundary (OracleRouter._classify; mutant
    `stale-at-heartbeat`). The random machines almost never land on the exact second."""
    with isolated(chain):
        twin = one_market(env, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.configure_oracle(0, 600, 0, 0, seconds=1)
        twin.submit_price(0, oracle_answer(100_000), seconds=1)
        submitted = twin.model.timestamp
        twin.deposit(bob, usdc(1), seconds=600)  # a block exactly one heartbeat later
        assert twin.model.timestamp - submitted == 600
        served = twin.price(0)
        assert served == wad(100_000)
        twin.deposit(bob, usdc(1), seconds=1)
        stale = twin.price(0)
        assert isinstance(stale, Reverted) and stale.name == "StalePrice"


def test_a_tripped_breaker_refuses_prices_until_its_cooldown_ends(env, chain):
    """A 20% jump trips a 10% breaker with a 120 s cooldown: the price, and so alice's health, is
    refused a minute later, and served again once the cooldown is over (OracleRouter._classify;
    mutant `breaker-cooldown-ignored`)."""
    with isolated(chain):
        twin = one_market(env, alice=20_000, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.configure_oracle(0, HEARTBEAT, wad("0.1"), 120, seconds=1)
        twin.set_price(0, oracle_answer(120_000), seconds=1)  # trips: price refused from here
        alice_id = int(alice.address, 16)
        for seconds in (60, 59):  # 60 s and 119 s into the cooldown
            twin.deposit(bob, usdc(1), seconds=seconds)
            tripped = twin.price(0)
            assert isinstance(tripped, Reverted) and tripped.name == "BreakerTripped"
            refused = twin.view("health(alice)", ("engine", "health", alice_id), lambda: twin.model.health(alice_id))
            assert isinstance(refused, Reverted) and refused.name == "BreakerTripped"
        twin.update_price(0, seconds=1)  # the cooldown is over: the jump is accepted
        assert twin.price(0) == wad(120_000)
