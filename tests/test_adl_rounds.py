"""One ADL round built by hand, under every ADL ranking, on the contracts and the model in lockstep
(the twin compares every event and every observable to the wei), and the round's figures
(simulator/metrics.adl_rounds, docs/design.md §6.8) checked against values computed here.

The round: alice is long 1 BTC, bought at $100,000 from bob (0.5) and erin (0.5); at $95,000 carol
sells frank 0.75 BTC; at $85,000 alice is $4,300 under water with no insurance fund, so she is
deleveraged. Her winners, all short:

| winner | size | entry   | u_i     | collateral | PNL_LEVERAGE score                          |
| erin   | 0.5  | 100,000 | $7,500  | $20,000    | 0.15 * 42,500 / 27,500  = 0.232 (first)     |
| carol  | 0.75 | 95,000  | $7,500  | $30,000    | 0.105 * 63,750 / 37,500 = 0.179 (second)    |
| bob    | 0.5  | 100,000 | $7,500  | $50,000    | 0.15 * 42,500 / 57,500  = 0.111 (third)     |

The queue (PNL_LEVERAGE) takes erin's 0.5 and 0.5 of carol's 0.75; QUEUE closes carol whole, the
0.25 beyond alice's size against the vault, so it takes 0.25 * $4,300 more than the deficit: the
baseline's overshoot. PRO_RATA takes 1/1.75 of each at the bankruptcy price; CAPPED_PRO_RATA the
same sizes, each winner at its own price giving up D / 3 (their uPnLs are equal).

LEVERAGE_DRAIN ranks them by leverage, notional / AV: carol 63,750 / 37,500 = 1.7, erin 42,500 /
27,500 = 1.55, bob 42,500 / 57,500 = 0.74. Carol and erin alone (1.25 BTC) would keep 0.25 BTC,
a leverage of 0.25 * 85,000 / 65,000 = 0.33, below bob's 0.74: the draining reaches bob too. The
three keep 1.75 - 1 = 0.75 BTC in proportion to their values (of $122,500), each at a leverage of
0.75 * 85,000 / 122,500 = 0.52; carol, the most levered, gives up the most: 0.75 * 85,000 /
122,500 = 0.52 BTC.
"""

from __future__ import annotations

import pytest

from simulator.chain.deploy import AdlRanking, MarketSpec
from simulator.metrics import adl_rounds
from simulator.units import WAD, oracle_answer, wad
from tests.isolation import isolated
from tests.twin.harness import TRADER_NAMES, build_env, one_market
from tests.twin.oracle import HEARTBEAT


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


def _mul_div_up(x: int, y: int, d: int) -> int:
    return -(-x * y // d)


def _expected_fills(ranking: AdlRanking, winners: dict[int, tuple[int, int]], ranked: list[int], size: int,
                    price: int, bankruptcy: int, vault: int, values: dict[int, int]) -> list[tuple[int, int, int]]:
    """(counterparty, size closed, fill price) for each winner's fills, computed from the rules of
    docs/design.md §6.7 (not from the contracts)."""
    deficit = size * (bankruptcy - price) // WAD
    if ranking is AdlRanking.LEVERAGE_DRAIN:
        # Water-filling: winners by leverage while the size is not covered or the next one's
        # leverage is above the level of those before it; they keep the rest in proportion to value.
        chosen, held, equity = [], 0, 0
        for w in ranked:
            if held >= size and -winners[w][0] * equity <= (held - size) * values[w]:
                break
            chosen, held, equity = chosen + [w], held - winners[w][0], equity + values[w]
        kept = {w: (held - size) * values[w] // equity for w in chosen}
        left = held - size - sum(kept.values())  # the rounding, back to the first
        takes = []
        for w in chosen:
            take = -winners[w][0] - kept[w]
            back, left = min(left, take), left - min(left, take)
            takes.append((w, take - back, bankruptcy))
        return takes
    if not ranking.whole_ranking:
        fills, remaining = [], size
        for w in ranked:
            if remaining == 0:
                break
            held = -winners[w][0]
            take = min(held, remaining)
            remaining -= take
            fills.append((w, take, bankruptcy))
            if ranking is AdlRanking.QUEUE and take < held:
                fills.append((w, held - take, bankruptcy))  # against the vault
        return fills
    by_id = sorted(winners)
    held = [-winners[w][0] for w in by_id]
    takes = [size * h // sum(held) for h in held]
    for i in range(len(takes)):  # the remainder, one unit each
        if sum(takes) < size and takes[i] < held[i]:
            takes[i] += 1
    if ranking is AdlRanking.PRO_RATA:
        return [(w, t, bankruptcy) for w, t in zip(by_id, takes)]
    upnls = [winners[w][1] for w in by_id]
    return [(w, t, price + _mul_div_up(_mul_div_up(deficit, u, sum(upnls)), WAD, t))
            for w, t, u in zip(by_id, takes, upnls)]


@pytest.mark.parametrize("ranking", list(AdlRanking), ids=lambda r: r.name)
def test_one_adl_round_by_hand(env, chain, ranking):
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=ranking, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=30_000, erin=20_000, frank=50_000)
        alice, bob, carol, _, erin, frank = env.traders[:6]
        assert twin.matched(alice, bob, 0, WAD // 2, wad(100_000)).ok
        assert twin.matched(alice, erin, 0, WAD // 2, wad(100_000)).ok
        twin.set_price(0, oracle_answer(95_000), seconds=1)
        assert twin.matched(frank, carol, 0, 3 * WAD // 4, wad(95_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)
        model, price = twin.model, wad(85_000)
        alice_id, bob_id, carol_id, erin_id = (int(a.address, 16) for a in (alice, bob, carol, erin))

        # Before the round: alice's deficit, the bankruptcy price, each winner's uPnL (by hand).
        value, _, _ = model.health(alice_id)
        assert value == wad(10_700) - wad(15_000) and model.insurance_fund == 0
        bankruptcy = price - (value - 1)  # |size| = 1 BTC: P - (V - 1) (LiquidationMath.bankruptcyPrice)
        assert model.bankruptcy_price_of(alice_id, 0) == bankruptcy
        winners = {bob_id: (-WAD // 2, wad(7_500)), erin_id: (-WAD // 2, wad(7_500)),
                   carol_id: (-3 * WAD // 4, wad(7_500))}
        values = {bob_id: wad(57_500), erin_id: wad(27_500), carol_id: wad(37_500)}  # collateral + u_i
        for w, (size, upnl) in winners.items():
            held, open_notional, _ = model.position_of(w, 0)
            assert (held, held * price // WAD - open_notional) == (size, upnl)
            assert model.health(w)[0] == values[w]
        # Hyperliquid's score puts carol first: entry / mark = 95 / 85 with leverage 63,750 / 37,500 =
        # 1.9, against erin's 100 / 85 * 42,500 / 27,500 = 1.82 and bob's 100 / 85 * 42,500 / 57,500.
        # MIN_OVERSHOOT: the largest first, carol's $63,750, then bob and erin's $42,500 by id.
        # LEVERAGE_DRAIN: carol's 1.7, erin's 1.55, bob's 0.74.
        ranked = {AdlRanking.HYPERLIQUID: [carol_id, erin_id, bob_id],
                  AdlRanking.MIN_OVERSHOOT: [carol_id, bob_id, erin_id],
                  AdlRanking.LEVERAGE_DRAIN: [carol_id, erin_id, bob_id]}.get(ranking, [erin_id, carol_id, bob_id])
        assert bob_id < erin_id
        assert list(model.adl_ranking(0, 1)[0]) == (sorted(winners) if ranking.whole_ranking else ranked)

        outcome = twin.keeper_act(alice_id, 0)
        assert outcome is not None and outcome.ok  # the twin compared chain and model to the wei
        fills = outcome.named("AdlFill")
        expected = _expected_fills(ranking, winners, ranked, WAD, price, bankruptcy, model.vault, values)
        assert [(f["counterpartyId"], -f["size"], f["price"]) for f in fills] == expected
        if ranking is AdlRanking.QUEUE:
            assert fills[-1]["accountId"] == model.vault and model.position_of(carol_id, 0)[0] == 0
        if ranking is AdlRanking.LEVERAGE_DRAIN:
            # All three drained, each left at the leverage 0.75 * 85,000 / 122,500 (to a unit of size).
            assert [f["counterpartyId"] for f in fills] == [carol_id, erin_id, bob_id]
            for w in winners:
                kept = -model.position_of(w, 0)[0]
                assert abs(kept - 3 * WAD // 4 * values[w] // wad(122_500)) <= 1
                leverage = kept * price // WAD * WAD // values[w]
                assert abs(leverage - 3 * WAD // 4 * 85_000 // 122_500) <= WAD // 10**12
        assert model.position_of(alice_id, 0)[0] == 0 and model.bad_debt == 0

        # The round's figures, from the logged events with u_i added as the simulator adds it.
        logged = [{"event": "Deleveraged", **d} for d in outcome.named("Deleveraged")]
        logged += [{"event": "AdlFill", **f, "counterpartyUpnl": winners[f["counterpartyId"]][1]} for f in fills]
        [record] = adl_rounds(7, logged)

        deficit = bankruptcy - price  # 1 BTC * (P_bk - P)
        given: dict[int, int] = {}
        for w, size, fill_price in expected:
            given[w] = given.get(w, 0) + size * (fill_price - price) // WAD
        haircuts = {w: min(winners[w][1], max(0, g)) for w, g in given.items()}
        haircut = sum(haircuts.values())
        assert record == {
            "step": 7, "event": "AdlRound", "marketId": 0, "side": 1, "deleveraged": 1, "winners": len(given),
            "deficit": deficit, "haircut": haircut, "overshoot": max(0, haircut - deficit),
            "undershoot": max(0, deficit - haircut),
            "notionalClosed": sum(size * price // WAD for _, size, _ in expected),
            "fairness": max(x * WAD // winners[w][1] for w, x in haircuts.items()),
        }
        # By hand: D = $4,300 (and the wei held back); overshoot, notional closed and fairness of
        # each ranking, to a few wei.
        assert deficit == wad(4_300) + 1
        overshoot, notional, fairness = HAND[ranking]
        assert abs(record["overshoot"] - wad(overshoot)) <= 3
        assert record["notionalClosed"] == wad(notional)
        assert abs(record["fairness"] - int(fairness * WAD)) <= WAD // 10_000


# ranking: (overshoot $, winners' notional closed $ at $85,000, fairness max_i x_i / u_i)
HAND = {
    AdlRanking.PNL_LEVERAGE: (0, 85_000, 2_150 / 7_500),  # erin 0.5 and carol 0.5, $2,150 each
    AdlRanking.QUEUE: (1_075, 106_250, 3_225 / 7_500),  # carol's 0.75 whole: $3,225
    AdlRanking.PRO_RATA: (0, 85_000, 0.75 / 1.75 * 4_300 / 7_500),  # carol's 3/7 of the size
    AdlRanking.CAPPED_PRO_RATA: (0, 85_000, 4_300 / 22_500),  # D / U for everyone: the least max
    AdlRanking.HYPERLIQUID: (0, 85_000, 3_225 / 7_500),  # carol's 0.75 and erin's 0.25
    AdlRanking.MIN_OVERSHOOT: (0, 85_000, 3_225 / 7_500),  # carol's 0.75 and bob's 0.25: two winners
    # carol gives up 0.75 * 85,000 / 122,500 BTC (0.52) at $4,300: $2,238 of her $7,500
    AdlRanking.LEVERAGE_DRAIN: (0, 85_000, 0.75 * 85_000 / 122_500 * 4_300 / 7_500),
}
assert min(HAND.values(), key=lambda hand: hand[2]) is HAND[AdlRanking.CAPPED_PRO_RATA]
