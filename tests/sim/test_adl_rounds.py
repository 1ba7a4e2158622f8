"""simulator.metrics.adl_rounds (docs/design.md §6.8): how a block's ADL events group into rounds and
what each figure sums. The contracts' side of it is tests/test_adl_rounds.py."""

from __future__ import annotations

from simulator.exchange import ActionResult, Deleverage
from simulator.metrics import Metrics, adl_rounds
from simulator.units import WAD, wad


def _deleveraged(market, size, oracle, bankruptcy):
    return {"event": "Deleveraged", "accountId": 1, "marketId": market, "size": size, "bankruptcyPrice": bankruptcy,
            "oraclePrice": oracle, "valueBefore": 0, "counterparties": 1}


def _fill(market, counterparty, size, price, oracle, upnl):
    return {"event": "AdlFill", "accountId": 1, "counterpartyId": counterparty, "marketId": market, "size": size,
            "price": price, "oraclePrice": oracle, "counterpartyUpnl": upnl}


def test_rounds_split_by_market_and_side_and_sum_each_winner():
    events = [
        # Market 0, a long of 2 deleveraged at $110 (oracle $100): D = $20; winner 5 in two fills.
        _deleveraged(0, 2 * WAD, wad(100), wad(110)),
        _fill(0, 5, -WAD, wad(110), wad(100), wad(15)),
        _fill(0, 5, -WAD, wad(110), wad(100), wad(15)),  # x_5 = min(15, 20) = 15: $5 undershoot
        # Market 0, a short of 1 at $90 (oracle $100): D = $10, two winners, one without profit.
        _deleveraged(0, -WAD, wad(100), wad(90)),
        _fill(0, 6, WAD // 2, wad(90), wad(100), wad(20)),  # gives up $5 of $20
        _fill(0, 7, WAD // 2, wad(90), wad(100), None),  # u unknown: counts 0
        # Market 1: a winner closed at a price better for it than the oracle (g < 0).
        _deleveraged(1, WAD, wad(100), wad(99)),
        _fill(1, 8, -WAD, wad(99), wad(100), wad(3)),
    ]
    rounds = adl_rounds(4, events)
    assert [(r["marketId"], r["side"]) for r in rounds] == [(0, 1), (0, -1), (1, 1)]
    long0, short0, long1 = rounds
    assert long0 == {"step": 4, "event": "AdlRound", "marketId": 0, "side": 1, "deleveraged": 1, "winners": 1,
                     "deficit": wad(20), "haircut": wad(15), "overshoot": 0, "undershoot": wad(5),
                     "notionalClosed": wad(200), "fairness": WAD}
    assert (short0["deficit"], short0["haircut"], short0["undershoot"], short0["winners"]) == (wad(10), wad(5), wad(5), 2)
    assert short0["fairness"] == WAD // 4 and short0["notionalClosed"] == wad(100)
    assert (long1["deficit"], long1["haircut"], long1["fairness"]) == (0, 0, 0)


def test_a_whole_position_queue_overshoots_and_the_run_sums_it():
    """A bankrupt long of 3 at $110 (oracle $100): D = $30. Winner 1 gives 2, winner 2 gives 1 to it
    and its rest of 1 to the vault (QUEUE): H = $40, overshoot $10, fairness max(20/40, 20/50)."""
    vault = 99
    events = [("AdlFill", {"accountId": 1, "counterpartyId": 11, "marketId": 0, "size": -2 * WAD, "price": wad(110),
                           "oraclePrice": wad(100)}),
              ("AdlFill", {"accountId": 1, "counterpartyId": 12, "marketId": 0, "size": -WAD, "price": wad(110),
                           "oraclePrice": wad(100)}),
              ("AdlFill", {"accountId": vault, "counterpartyId": 12, "marketId": 0, "size": -WAD, "price": wad(110),
                           "oraclePrice": wad(100)}),
              ("Deleveraged", {"accountId": 1, "marketId": 0, "size": 3 * WAD, "bankruptcyPrice": wad(110),
                               "oraclePrice": wad(100), "valueBefore": -wad(30), "counterparties": 2})]
    upnl = {11: wad(40), 12: wad(50)}

    def extra(name, args):
        if name == "AdlFill":
            return {"counterpartyPnl": 0, "counterpartyUpnl": upnl[args["counterpartyId"]]}
        return {"accountValueBefore": args["valueBefore"]}

    metrics = Metrics(["BTC"])
    metrics.record_results(3, [ActionResult(Deleverage(1, 0, (11, 12)), True, events)], extra)
    [record] = [e for e in metrics.events if e["event"] == "AdlRound"]
    assert (record["deficit"], record["haircut"], record["overshoot"], record["undershoot"]) == (
        wad(30), wad(40), wad(10), 0)
    assert record["notionalClosed"] == wad(400) and record["fairness"] == WAD // 2 and record["winners"] == 2
    summary = metrics.summary(scenario="x", seed=0, mode="model", accounts=2, steps=4, final=None, wall_seconds=0)
    assert summary["adl_rounds"] == 1 and summary["adl_overshoot_usd"] == 10.0
    assert summary["adl_winner_notional_closed_usd"] == 400.0 and summary["adl_fairness_max"] == 0.5
