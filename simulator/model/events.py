"""Events of the model: the Solidity events of IPerpEngine and ILiquidationEngine, same names, same
fields in the same order (camelCase, as Ape decodes them), so a model log and a chain log compare
field by field. Address fields (`from`, `to`, `keeper`, `by`, `owner`, `vault`) are ints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    # IPerpEngine
    "MarketCreated": ("marketId", "name", "params"),
    "MarketParamsSet": ("marketId", "params"),
    "TiersSet": ("marketId", "floors", "mmrs"),
    "DepthSet": ("marketId", "depth2pct", "by"),
    "VaultSet": ("vault",),
    "MinCollateralSet": ("minCollateral",),
    "AccountRegistered": ("accountId", "index"),
    "Deposit": ("accountId", "from", "amount"),
    "Withdrawal": ("accountId", "to", "amount"),
    "MarginTransferred": ("owner", "marketId", "amount"),
    "PositionChanged": (
        "accountId", "marketId", "sizeDelta", "fillPrice", "newSize", "newOpenNotional", "realizedPnl"
    ),
    "FundingSettled": ("accountId", "marketId", "amount"),
    "FundingAccrued": ("marketId", "index", "rate"),
    "SocialLossSettled": ("accountId", "marketId", "amount"),
    "InsuranceFundDeposit": ("from", "amount"),
    "PenaltyCharged": ("accountId", "keeper", "toKeeper", "toFund"),
    "InsuranceFundPayment": ("accountId", "marketId", "amount"),
    "InsuranceFundReserved": ("accountId", "marketId", "amount", "total"),
    "InsuranceFundReleased": ("accountId", "marketId", "amount", "total"),
    "LossSocialized": ("marketId", "accountId", "amount", "indexDelta"),
    "BadDebtRecorded": ("accountId", "marketId", "amount"),
    # ILiquidationEngine
    "LiquidationParamsSet": ("marketId", "params"),
    "Liquidation": (
        "accountId", "marketId", "keeper", "sizeClosed", "fillPrice", "oraclePrice", "penalty",
        "keeperReward", "fundPaid", "socialized", "badDebt",
    ),
    "AdlFill": ("accountId", "counterpartyId", "marketId", "size", "price", "oraclePrice"),
    "Deleveraged": (
        "accountId", "marketId", "size", "bankruptcyPrice", "oraclePrice", "valueBefore", "counterparties"
    ),
    # PriceFeed and OracleRouter (the model's router: simulator/model/oracle_router.py)
    "AnswerUpdated": ("current", "roundId", "updatedAt"),
    "CircuitBreakerTripped": ("marketId", "lastAccepted", "answer", "until"),
    "BreakerReset": ("marketId", "answer"),
}


@dataclass(frozen=True)
class Event:
    """One emitted event. Fields read as attributes (``event.fillPrice``) or items (``event["from"]``)."""

    event_name: str
    args: Mapping[str, Any]
    block_number: int
    timestamp: int

    def __getattr__(self, name: str) -> Any:
        try:
            args = object.__getattribute__(self, "args")
        except AttributeError:  # during copy / unpickling, before the fields exist
            raise AttributeError(name) from None
        try:
            return args[name]
        except KeyError:
            raise AttributeError(f"{self.event_name} has no field {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return self.args[name]


# The oracle's events: emitted only by a model built with the router (simulator/model/oracle_router.py).
ORACLE_EVENTS = ("AnswerUpdated", "CircuitBreakerTripped", "BreakerReset")


def make_event(name: str, values: tuple, block_number: int, timestamp: int) -> Event:
    fields = EVENT_FIELDS[name]
    if len(values) != len(fields):
        raise TypeError(f"event {name} has fields {fields}, got {len(values)} values")
    return Event(name, dict(zip(fields, values)), block_number, timestamp)
