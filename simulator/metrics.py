"""What a run measures: per-step time series per market, an event log, and the summary
(docs/design.md §10). Computed from the contracts' own events, so the chain and the model are
measured the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from simulator.exchange import ActionResult, Deleverage, Liquidate, Snapshot, Trade
from simulator.units import WAD

# Events that go to the event log, with the fields kept.
LOGGED_EVENTS = {
    "Liquidation": ("accountId", "marketId", "sizeClosed", "fillPrice", "oraclePrice", "penalty", "fundPaid", "socialized", "badDebt"),
    "AdlFill": ("accountId", "counterpartyId", "marketId", "size", "price", "oraclePrice"),
    "Deleveraged": ("accountId", "marketId", "size", "bankruptcyPrice", "oraclePrice", "valueBefore", "counterparties"),
    "CircuitBreakerTripped": ("marketId", "lastAccepted", "answer", "until"),
    "BreakerReset": ("marketId", "answer"),
    "BadDebtRecorded": ("accountId", "marketId", "amount"),
    "LossSocialized": ("marketId", "accountId", "amount", "indexDelta"),
    "InsuranceFundPayment": ("accountId", "marketId", "amount"),
    "InsuranceFundReserved": ("accountId", "marketId", "amount", "total"),
    "InsuranceFundReleased": ("accountId", "marketId", "amount", "total"),
}
# Fields the simulator adds to logged events (WAD; computed off chain from the keepers' position
# index, the same in both modes; docs/design.md §10.4): the account's value at the oracle prices of
# the block, before the block's fills, an ADL counterparty's realised profit on the closed part, and
# its whole position's uPnL at the fill's oracle price before the block (u_i of the ADL round).
EXTRA_FIELDS = {
    "Liquidation": ("accountValueBefore",),
    "Deleveraged": ("accountValueBefore",),
    "AdlFill": ("counterpartyPnl", "counterpartyUpnl"),
}
# An ADL round's record in the event log (docs/design.md §6.8): WAD integers, fairness a WAD ratio.
ADL_ROUND_FIELDS = ("marketId", "side", "deleveraged", "winners", "deficit", "haircut", "overshoot", "undershoot",
                    "notionalClosed", "fairness")
SERIES_FIELDS = (
    "step", "market", "fundamental", "external_price", "oracle_price", "oracle_status", "depth2pct_usd",
    "depth_factor", "long_oi", "short_oi", "vault_size", "liquidations", "liquidated_notional_usd",
    "adl_notional_usd", "insurance_fund_usd", "insurance_fund_reserved_usd", "bad_debt_usd", "vault_value_usd",
    "socialized_usd", "accounts_at_risk",
)


def usd(value: int) -> float:
    return value / WAD


@dataclass
class Metrics:
    market_names: list[str]
    series: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    failed_actions: list[dict] = field(default_factory=list)
    liquidations: int = 0
    liquidated_notional: int = 0  # WAD USD
    adl_fills: int = 0
    adl_notional: int = 0
    adl_rounds: int = 0
    adl_deficit: int = 0
    adl_haircut: int = 0
    adl_overshoot: int = 0
    adl_undershoot: int = 0
    adl_winner_notional: int = 0
    adl_fairness_max: int | None = None  # WAD
    socialized: int = 0
    first_liquidation_step: int | None = None
    first_adl_step: int | None = None
    insurance_fund_start: int = 0
    vault_value_start: int | None = None

    def record_results(self, step: int, results: list[ActionResult], extra=None) -> dict[str, np.ndarray]:
        """Counts a step's events; returns per-market liquidation and taker flow for the external
        market (signed: + when longs were sold, or takers sold) and per-market counters for the
        series. `extra(name, args)`, when given, returns fields the simulator adds to a logged event
        (accountValueBefore, counterpartyPnl: see EXTRA_FIELDS)."""
        n = len(self.market_names)
        flow = {
            "signed_notional": np.zeros(n),
            "taker_signed_notional": np.zeros(n),
            "liquidations": np.zeros(n, dtype=int),
            "liquidated": np.zeros(n),
            "adl": np.zeros(n),
            "socialized": np.zeros(n),
        }
        first_event = len(self.events)
        for result in results:
            if not result.ok and isinstance(result.action, (Liquidate, Deleverage)):
                self.failed_actions.append({"step": step, "action": type(result.action).__name__,
                                            "account": hex(result.action.account_id), "market": result.action.market,
                                            "error": result.error})
            if result.ok and isinstance(result.action, Trade):
                trade = result.action
                # The taker's own fill (the vault's has the opposite sign).
                price = next(args["fillPrice"] for name, args in result.events
                             if name == "PositionChanged" and args["sizeDelta"] == trade.size_delta)
                notional = usd(abs(trade.size_delta) * price // WAD)
                flow["taker_signed_notional"][trade.market] += notional * (1 if trade.size_delta < 0 else -1)
            for name, args in result.events:
                if name in LOGGED_EVENTS:
                    row = {"step": step, "event": name}
                    row.update({k: _plain(args[k]) for k in LOGGED_EVENTS[name]})
                    if extra is not None and name in EXTRA_FIELDS:
                        row.update(extra(name, args))
                    self.events.append(row)
                if name == "Liquidation":
                    m = args["marketId"]
                    notional = abs(args["sizeClosed"]) * args["fillPrice"] // WAD
                    self.liquidations += 1
                    self.liquidated_notional += notional
                    flow["liquidations"][m] += 1
                    flow["liquidated"][m] += usd(notional)
                    flow["signed_notional"][m] += usd(notional) * (1 if args["sizeClosed"] < 0 else -1)
                    self.socialized += args["socialized"]
                    flow["socialized"][m] += usd(args["socialized"])
                    if self.first_liquidation_step is None:
                        self.first_liquidation_step = step
                elif name == "AdlFill":
                    notional = abs(args["size"]) * args["price"] // WAD
                    self.adl_fills += 1
                    self.adl_notional += notional
                    flow["adl"][args["marketId"]] += usd(notional)
                    if self.first_adl_step is None:
                        self.first_adl_step = step
        for record in adl_rounds(step, self.events[first_event:]):
            self.events.append(record)
            self.adl_rounds += 1
            self.adl_deficit += record["deficit"]
            self.adl_haircut += record["haircut"]
            self.adl_overshoot += record["overshoot"]
            self.adl_undershoot += record["undershoot"]
            self.adl_winner_notional += record["notionalClosed"]
            if record["fairness"] is not None:
                self.adl_fairness_max = max(record["fairness"], self.adl_fairness_max or 0)
        return flow

    def record_step(self, step: int, fundamentals, external, snapshot: Snapshot, flow: dict,
                    at_risk: Sequence[int] | None = None) -> None:
        """One row per market; `at_risk`: per market, the accounts holding it below 1.25 x their
        maintenance margin at the keepers' last screen (None: not known, an empty cell)."""
        for m, name in enumerate(self.market_names):
            self.series.append({
                "step": step,
                "market": name,
                "fundamental": float(fundamentals[m]),
                "external_price": float(external.prices[m]),
                "oracle_price": usd(snapshot.prices[m]),
                "oracle_status": snapshot.price_status[m],
                "depth2pct_usd": usd(snapshot.depth2pct[m]),
                "depth_factor": float(external.depth_factors[m]),
                "long_oi": usd(snapshot.long_open_interest[m]),
                "short_oi": usd(snapshot.short_open_interest[m]),
                "vault_size": usd(snapshot.vault_size[m]),
                "liquidations": int(flow["liquidations"][m]),
                "liquidated_notional_usd": float(flow["liquidated"][m]),
                "adl_notional_usd": float(flow["adl"][m]),
                "insurance_fund_usd": usd(snapshot.insurance_fund),
                "insurance_fund_reserved_usd": usd(snapshot.insurance_fund_reserved),
                "bad_debt_usd": usd(snapshot.bad_debt),
                "vault_value_usd": _usd_or_none(snapshot.vault_value),
                "socialized_usd": float(flow["socialized"][m]),
                "accounts_at_risk": None if at_risk is None else int(at_risk[m]),
            })

    def summary(self, *, scenario: str, seed: int, mode: str, accounts: int, steps: int, final: Snapshot | None,
                wall_seconds: float, status: str = "completed", error: str | None = None, extra: dict | None = None) -> dict:
        bad_debt = final.bad_debt if final else 0
        vault_end = final.vault_value if final else None
        result = {
            "scenario": scenario,
            "seed": seed,
            "mode": mode,
            "accounts": accounts,
            "steps": steps,
            "status": status,
            "liquidations": self.liquidations,
            "liquidated_notional_usd": usd(self.liquidated_notional),
            "insurance_fund_start_usd": usd(self.insurance_fund_start),
            "insurance_fund_end_usd": usd(final.insurance_fund) if final else None,
            "insurance_fund_reserved_end_usd": usd(final.insurance_fund_reserved) if final else None,
            "bad_debt_usd": usd(bad_debt),
            "insolvent": bad_debt > 0,
            "adl_fills": self.adl_fills,
            "adl_notional_usd": usd(self.adl_notional),
            "adl_rounds": self.adl_rounds,
            "adl_deficit_usd": usd(self.adl_deficit),
            "adl_haircut_usd": usd(self.adl_haircut),
            "adl_overshoot_usd": usd(self.adl_overshoot),
            "adl_undershoot_usd": usd(self.adl_undershoot),
            "adl_winner_notional_closed_usd": usd(self.adl_winner_notional),
            "adl_fairness_max": None if self.adl_fairness_max is None else self.adl_fairness_max / WAD,
            "socialized_loss_usd": usd(self.socialized),
            "vault_value_start_usd": _usd_or_none(self.vault_value_start),
            "vault_value_end_usd": _usd_or_none(vault_end),
            "vault_pnl_usd": _usd_or_none(None if vault_end is None or self.vault_value_start is None
                                          else vault_end - self.vault_value_start),
            "first_liquidation_step": self.first_liquidation_step,
            "first_adl_step": self.first_adl_step,
            "failed_keeper_actions": len(self.failed_actions),
            "wall_seconds": round(wall_seconds, 3),
        }
        if error:
            result["error"] = error
        if extra:
            result.update(extra)
        return result


def adl_deficit(size: int, oracle_price: int, bankruptcy_price: int) -> int:
    """D of one `Deleveraged` (LiquidationMath.adlDeficit): |size| * |P_bk - P| rounded down, what
    closing at the bankruptcy price takes from the winners; 0 when that price is on their side."""
    gap = (bankruptcy_price - oracle_price) if size > 0 else (oracle_price - bankruptcy_price)
    return abs(size) * gap // WAD if gap > 0 else 0


def adl_rounds(step: int, events: list[dict]) -> list[dict]:
    """The ADL rounds of one block (docs/design.md §6.8) from its logged `Deleveraged` and `AdlFill`
    records: one per market and bankrupt side (+1 long, -1 short), in order of first appearance.

    D = Σ adlDeficit over the round's `Deleveraged`; per winner i, g_i = Σ |size| * (price - P) * side
    over its fills (profit given up against the oracle price P), u_i = max(0, counterpartyUpnl) and
    x_i = min(u_i, max(0, g_i)); H = Σ x_i, overshoot = max(0, H - D), undershoot = max(0, D - H),
    notionalClosed = Σ |size| * P over the fills, fairness = max_i x_i / u_i (WAD, down; None
    without a winner in profit)."""
    rounds: dict[tuple[int, int], dict] = {}
    winners: dict[tuple[int, int], dict[int, list[int]]] = {}

    def round_of(market: int, side: int) -> dict:
        key = (market, side)
        if key not in rounds:
            rounds[key] = {"step": step, "event": "AdlRound", "marketId": market, "side": side, "deleveraged": 0,
                           "deficit": 0, "notionalClosed": 0}
            winners[key] = {}
        return rounds[key]

    for event in events:
        if event["event"] == "Deleveraged":
            record = round_of(event["marketId"], 1 if event["size"] > 0 else -1)
            record["deleveraged"] += 1
            record["deficit"] += adl_deficit(event["size"], event["oraclePrice"], event["bankruptcyPrice"])
        elif event["event"] == "AdlFill":
            side = 1 if event["size"] < 0 else -1  # the bankrupt side closes: a long sells
            record = round_of(event["marketId"], side)
            size, price, oracle = abs(event["size"]), event["price"], event["oraclePrice"]
            record["notionalClosed"] += size * oracle // WAD
            winner = winners[(event["marketId"], side)].setdefault(event["counterpartyId"], [0, 0])
            winner[0] += size * (price - oracle) * side // WAD  # g_i
            winner[1] = max(0, event.get("counterpartyUpnl") or 0)  # u_i, before the block
    out = []
    for key, record in rounds.items():
        haircuts = [(min(u, max(0, g)), u) for g, u in winners[key].values()]
        haircut = sum(x for x, _ in haircuts)
        ratios = [x * WAD // u for x, u in haircuts if u > 0]
        record.update(winners=len(haircuts), haircut=haircut, overshoot=max(0, haircut - record["deficit"]),
                      undershoot=max(0, record["deficit"] - haircut), fairness=max(ratios) if ratios else None)
        out.append({k: record[k] for k in ("step", "event", *ADL_ROUND_FIELDS)})
    return out


def _plain(value):
    """JSON-friendly: ints stay exact ints, bytes become hex."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def _usd_or_none(value: int | None) -> float | None:
    return None if value is None else usd(value)
