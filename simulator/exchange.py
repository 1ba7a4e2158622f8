"""The seam between the run loop and the two executions of the protocol: the contracts on anvil
(`simulator.chain.exchange.ChainExchange`) and the numpy model (`simulator.model.exchange.ModelExchange`).

The run loop speaks in actions; each backend executes a step's actions in order as one block and
answers with results carrying the contracts' own event names and fields, so metrics are computed
the same way from both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union

import numpy as np

MAX_UINT = 2**256 - 1


# -- the opening book -- #


@dataclass(frozen=True)
class TraderSeed:
    """One account to open before the run: its collateral and positions (sizes in WAD units)."""

    address: str
    collateral: int  # token units (6 decimals)
    positions: dict[int, int]  # market id -> signed size (WAD)
    isolated_market: int | None = None  # an isolated bucket holds exactly this one market


@dataclass(frozen=True)
class BookSeed:
    traders: Sequence[TraderSeed]
    vault_collateral: int  # token units
    insurance_fund: int  # token units


@dataclass
class SetupReport:
    accounts: int
    positions_opened: int
    positions_rejected: list = field(default_factory=list)  # (address, market, reason)


# -- actions -- #


@dataclass(frozen=True)
class PushPrice:
    market: int
    answer: int  # 8-decimal oracle answer


@dataclass(frozen=True)
class SetDepth:
    market: int
    depth2pct: int  # WAD USD


@dataclass(frozen=True)
class Liquidate:
    account_id: int
    market: int


@dataclass(frozen=True)
class Deleverage:
    account_id: int
    market: int
    counterparties: tuple[int, ...]


@dataclass(frozen=True)
class AddMargin:
    address: str
    amount: int  # token units


@dataclass(frozen=True)
class Trade:
    """A taker trade against the vault (cross account, or the isolated bucket when `isolated`)."""

    address: str
    market: int
    size_delta: int  # WAD, signed
    isolated: bool = False


Action = Union[PushPrice, SetDepth, Liquidate, Deleverage, AddMargin, Trade]


@dataclass
class ActionResult:
    action: Action
    ok: bool
    events: list = field(default_factory=list)  # (event name, {field: value}) in emission order
    error: str | None = None


# -- reads -- #


@dataclass
class HealthScan:
    """Every registered account but the vault: ids, account values and maintenance margins (WAD)."""

    ids: list[int]
    values: np.ndarray  # object dtype (exact ints)
    mms: np.ndarray

    def liquidatable(self) -> list[int]:
        return [i for i, v, m in zip(self.ids, self.values, self.mms) if m > 0 and v < m]


@dataclass
class Snapshot:
    """State the metrics record each step (WAD)."""

    prices: list[int]  # oracle price per market, 0 when unusable (stale, tripped, ...)
    price_status: list[int]  # OracleRouter status codes (0 = usable)
    depth2pct: list[int]
    long_open_interest: list[int]
    short_open_interest: list[int]
    vault_size: list[int]
    insurance_fund: int  # free to pay new losses
    insurance_fund_reserved: int  # earmarked for deficits of accounts still holding positions
    bad_debt: int
    vault_value: int | None = None  # the vault's account value; None while a price it needs is refused


class Exchange(Protocol):
    """What the run loop needs from a backend."""

    def open_book(self, book: BookSeed, timestamp: int) -> SetupReport: ...

    def execute(self, actions: Sequence[Action], timestamp: int) -> list[ActionResult]: ...

    def scan(self) -> HealthScan: ...

    def open_markets(self, account_ids: Sequence[int]) -> list[list[int]]: ...

    def positions(self, account_ids: Sequence[int], market: int) -> list[int]: ...

    def adl_required(self, pairs: Sequence[tuple[int, int]]) -> list[bool]: ...

    def unrealized_pnls(self, pairs: Sequence[tuple[int, int]]) -> list[int]: ...

    def fund_reserves(self, account_ids: Sequence[int]) -> list[int]: ...

    def adl_ranking(self, market: int, bankrupt_side: int) -> list[int]: ...

    def snapshot(self) -> Snapshot: ...

    def close(self) -> None: ...


def position_sizes(exchange: Exchange, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Position sizes of (account, market) pairs, one batched read per market."""
    sizes: dict[tuple[int, int], int] = {}
    for market in sorted({m for _, m in pairs}):
        accounts = [a for a, m in pairs if m == market]
        sizes.update(((a, market), s) for a, s in zip(accounts, exchange.positions(accounts, market)))
    return sizes
