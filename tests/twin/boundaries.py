"""Books for the pinned boundary cases of the liquidation decisions (tests/test_boundaries.py;
INVARIANTS.md, "Boundaries of the liquidation decisions"). Each puts one comparison of
LiquidationEngine's `_plan`, `_penalty`, `_rateRoom` or ADL checks exactly at its threshold, with
chain and model in lockstep (the Twin), so that flipping the comparison (`<` for `<=`, `>` for
`>=`) changes an outcome the twin compares.

Where a threshold cannot be set directly (a depth, a fill price), the value that reaches it was
found once on the model and is written here with how; the tests assert that the boundary is hit."""

from __future__ import annotations

import copy

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.model import fixed_point as fp
from simulator.model import liquidation as LiquidationMath
from simulator.units import WAD, oracle_answer, wad
from tests.twin.harness import TRADER_NAMES, Twin, one_market
from tests.twin.oracle import HEARTBEAT

MAX_UINT = 2**256 - 1


def trader(env, name: str):
    """The Ape account of a named trader (alice is env.traders[0], bob [1], ...)."""
    return env.traders[TRADER_NAMES.index(name)]


def trader_id(env, name: str) -> int:
    return int(trader(env, name).address, 16)


def by_id(env, *names: str) -> list[str]:
    """`names` in increasing account id (the order PRO_RATA lists and ranking ties follow)."""
    return sorted(names, key=lambda name: trader_id(env, name))


# --- liquidation: one long in a thin book -------------------------------------------------------


def thin_book(**overrides) -> MarketSpec:
    """BTC at $100,000 with a 1% MM (so a slice into a thin book can worsen health), slices of 20%
    above $50,000 of notional, the policy NONE (a void book reverts `LiquidityVoid` instead of
    going to ADL); `overrides` change any field."""
    fields = dict(imr="0.1", mmr="0.01", depth2pct=8_500, max_impact="0.3", slice_threshold=50_000,
                  policy=BadDebtPolicy.NONE, heartbeat=HEARTBEAT)
    return MarketSpec("BTC", 100_000, **{**fields, **overrides})


def liquidatable_long(env, spec: MarketSpec, price_usd, entry: int = wad(100_000), alice_usd=10_700,
                      insurance_usd=0) -> tuple[Twin, int]:
    """alice long 1 BTC from bob at `entry` (WAD) on `alice_usd`, then the oracle at `price_usd`:
    returns the twin and alice's id."""
    twin = one_market(env, spec, insurance_usd=insurance_usd, alice=alice_usd, bob=200_000)
    assert twin.matched(trader(env, "alice"), trader(env, "bob"), 0, WAD, entry).ok
    twin.set_price(0, oracle_answer(price_usd), seconds=1)
    return twin, trader_id(env, "alice")


def preview(twin: Twin, account_id: int, size_delta: int) -> tuple[int, int, int]:
    """previewLiquidationFill on both sides (compared): (fill price, AV after, MM after)."""
    return twin.view(f"previewLiquidationFill({account_id:#x}, 0, {size_delta})",
                     ("engine", "previewLiquidationFill", account_id, 0, size_delta),
                     lambda: twin.model.preview_liquidation_fill(account_id, 0, size_delta))


# Found on the model (a bisection of the depth, then of alice's entry): with a book of this depth
# (maxImpact 30%) and alice long 1 BTC from $100,000 + 16,000 wei on $10,700, a 20% slice at
# $90,000 leaves her account at exactly zero value, and the book cannot take the whole position.
ZERO_VALUE_DEPTH = "4628.571428571428677225"
ZERO_VALUE_ENTRY = wad(100_000) + 16_000


def two_market_long(env) -> tuple[Twin, int]:
    """alice long 1 BTC (MM 1%, fee 2%, deep book) and 10 ETH (MM 5%) on $6,000; BTC falls to
    $96,000: AV $2,000 < MM $2,960, and closing the whole BTC position frees less margin ($960 less
    the impact) than its 2% penalty ($1,920)."""
    btc = MarketSpec("BTC", 100_000, imr="0.02", mmr="0.01", liquidation_fee="0.02", depth2pct=10_000_000,
                     heartbeat=HEARTBEAT)
    twin = one_market(env, btc, alice=6_000, bob=200_000, carol=200_000)
    twin.configure_market(1, MarketSpec("ETH", 4_000, imr="0.1", mmr="0.05", depth2pct=10_000_000,
                                        heartbeat=HEARTBEAT))
    alice = trader(env, "alice")
    assert twin.matched(alice, trader(env, "bob"), 0, WAD, wad(100_000)).ok
    assert twin.matched(alice, trader(env, "carol"), 1, 10 * WAD, wad(4_000)).ok
    twin.set_price(0, oracle_answer(96_000), seconds=1)
    return twin, trader_id(env, "alice")


def rate_limited_longs(env) -> tuple[Twin, int, int]:
    """alice and carol each long 1 BTC from bob on $10,700, BTC at $90,000 (both liquidatable, a
    deep book); the rate limit lets $90,000 (1 BTC) be liquidated per 60 s. Returns the twin and
    the two ids."""
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, rate_limit_notional=90_000, rate_limit_window=60,
                      heartbeat=HEARTBEAT)
    twin = one_market(env, spec, alice=10_700, bob=200_000, carol=10_700)
    bob = trader(env, "bob")
    for name in ("alice", "carol"):
        assert twin.matched(trader(env, name), bob, 0, WAD, wad(100_000)).ok
    twin.set_price(0, oracle_answer(90_000), seconds=1)
    return twin, trader_id(env, "alice"), trader_id(env, "carol")


# --- ADL: alice long, under water after a crash, no insurance fund ------------------------------


def adl_book(env, ranking: AdlRanking, shorts: dict[str, int], others: tuple = (), crash_usd=85_000,
             deposit_usd=50_000) -> tuple[Twin, int]:
    """alice long the sum of `shorts` (name: size in wei) from those traders at $100,000, on $10,700
    a BTC; `others`: more matched fills (buyer, seller, size) at $100,000 between traders; then BTC
    at `crash_usd` (alice under water, no fund: ADL). Every other trader named holds
    `deposit_usd`. Returns the twin and alice's id."""
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=ranking, heartbeat=HEARTBEAT)
    names = dict.fromkeys([*shorts, *(name for buyer, seller, _ in others for name in (buyer, seller))])
    total = sum(shorts.values())
    twin = one_market(env, spec, alice=-(-total * 10_700 // WAD), **{name: deposit_usd for name in names})
    alice = trader(env, "alice")
    for name, size in shorts.items():
        assert twin.matched(alice, trader(env, name), 0, size, wad(100_000)).ok
    for buyer, seller, size in others:
        assert twin.matched(trader(env, buyer), trader(env, seller), 0, size, wad(100_000)).ok
    twin.set_price(0, oracle_answer(crash_usd), seconds=1)
    return twin, trader_id(env, "alice")


def zero_value_winner(env, ranking: AdlRanking, entry_offset: int) -> tuple[Twin, int, int]:
    """alice long 1 BTC on $10,700 from bob, whose short opens at $100,000 + `entry_offset` wei; bob
    is also long 10 ETH from carol at $4,000 (ETH keeps the slot's default parameters) on $14,001.
    BTC falls to $85,000 (alice under water: ADL) and ETH to $1,099.90: bob's BTC short is $15,000
    in profit while his account is worth exactly `entry_offset` wei. Returns the twin, alice's and
    bob's ids."""
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=ranking, heartbeat=HEARTBEAT)
    twin = one_market(env, spec, alice=10_700, bob=14_001, carol=50_000)
    alice, bob, carol = (trader(env, name) for name in ("alice", "bob", "carol"))
    assert twin.matched(alice, bob, 0, WAD, wad(100_000) + entry_offset).ok
    assert twin.matched(bob, carol, 1, 10 * WAD, wad(4_000)).ok
    twin.set_price(0, oracle_answer(85_000), seconds=1)
    twin.set_price(1, oracle_answer("1099.9"))
    return twin, trader_id(env, "alice"), trader_id(env, "bob")


def haircut_distance(deficit: int, upnls: list[int], takes: list[int], k: int) -> int:
    """CAPPED_PRO_RATA: how far from the oracle price winner `k` fills (docs/design.md §6.7),
    ceil(ceil(D * u_k / U) * WAD / take_k), computed here from its definition."""
    share = -(-deficit * upnls[k] // sum(upnls))
    return -(-share * WAD // takes[k])


def haircut_book(env) -> tuple[Twin, int, int]:
    """CAPPED_PRO_RATA against a bankrupt short: carol long 11 BTC from dave at $160,400 (BTC at
    $160,000), then alice short 1 BTC to bob (BTC at $100,000), BTC at $200,000. bob's profit per
    BTC is far above the winners' average, so his haircut distance is about the oracle price;
    alice's entry is chosen (a bisection on copies of the model) so that it is exactly the price.
    Returns the twin, alice's entry and bob's id; BTC is at $100,000 and alice's position not yet
    opened."""
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.CAPPED_PRO_RATA, heartbeat=HEARTBEAT)
    twin = one_market(env, spec, alice=10_700, bob=50_000, carol=200_000, dave=1_000_000)
    twin.set_price(0, oracle_answer(160_000), seconds=1)
    assert twin.matched(trader(env, "carol"), trader(env, "dave"), 0, 11 * WAD, wad(160_400)).ok
    twin.set_price(0, oracle_answer(100_000), seconds=1)
    alice_id, bob_id, carol_id = (trader_id(env, name) for name in ("alice", "bob", "carol"))
    price = wad(200_000)

    def share_and_target(entry: int) -> tuple[int, int]:
        """(ceil(D * u_bob / U), the share whose distance is exactly the price) on a copy."""
        probe = copy.deepcopy(twin.model)
        probe.settle_matched_fill(bob_id, alice_id, 0, WAD, entry)
        probe.prices[0] = price
        lp = probe.liquidation_params(0)
        plan = probe.liquidator._plan(alice_id, 0, MAX_UINT, lp)
        winners = sorted((bob_id, carol_id))
        takes = probe.liquidator._pro_rata_takes(alice_id, 0, plan, winners, WAD, lp.ranking)
        upnls = [int(probe.liquidator._candidate(w, 0, plan.position_size, price, lp.ranking)[2]) for w in winners]
        deficit = LiquidationMath.adl_deficit(plan.position_size, price, probe.bankruptcy_price_of(alice_id, 0))
        k = winners.index(bob_id)
        return fp.mul_div_up(deficit, upnls[k], sum(upnls)), price * takes[k] // WAD

    low, high = wad(99_500), wad(100_500)  # the share falls as the entry rises (within the match band)
    while high - low > 1:
        middle = (low + high) // 2
        share, target = share_and_target(middle)
        low, high = (middle, high) if share > target else (low, middle)
    return twin, high, bob_id
