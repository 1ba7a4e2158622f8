"""What a run measures: per-step time series per market, an event log, and the summary
(docs/design.md §10). Computed from the contracts' own events, so the chain and the model are
measured the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

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
SERIES_FIELDS = (
    "step", "market", "fundamental", "external_price", "oracle_price", "oracle_status", "depth2pct_usd",
    "depth_factor", "long_oi", "short_oi", "vault_size", "liquidations", "liquidated_notional_usd",
    "adl_notional_usd", "insurance_fund_usd", "insurance_fund_reserved_usd", "bad_debt_usd", "vault_value_usd",
    "socialized_usd",
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
    adl_overshoot: int = 0
    socialized: int = 0
    first_liquidation_step: int | None = None
    first_adl_step: int | None = None
    insurance_fund_start: int = 0
    vault_value_start: int | None = None

    def record_results(self, step: int, results: list[ActionResult]) -> dict[str, np.ndarray]:
        """Counts a step's events; returns per-market liquidation and taker flow for the external
        market (signed: + when longs were sold, or takers sold) and per-market counters for the
        series."""
        n = len(self.market_names)
        flow = {
            "signed_notional": np.zeros(n),
            "taker_signed_notional": np.zeros(n),
            "liquidations": np.zeros(n, dtype=int),
            "liquidated": np.zeros(n),
            "adl": np.zeros(n),
            "socialized": np.zeros(n),
        }
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
                elif name == "Deleveraged":
                    # Profit the winners gave up against the oracle price, beyond the deficit covered.
                    taken = args["size"] * (args["bankruptcyPrice"] - args["oraclePrice"]) // WAD
                    deficit = max(0, -args["valueBefore"])
                    self.adl_overshoot += max(0, taken - deficit)
        return flow

    def record_step(self, step: int, fundamentals, external, snapshot: Snapshot, flow: dict) -> None:
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
            "adl_overshoot_usd": usd(self.adl_overshoot),
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


def _plain(value):
    """JSON-friendly: ints stay exact ints, bytes become hex."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def _usd_or_none(value: int | None) -> float | None:
    return None if value is None else usd(value)
