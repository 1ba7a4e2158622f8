"""The keepers' off-chain position index, as a production keeper keeps one.

Every registered account but the vault has a row: its collateral, the fund's earmark for it, and per
market the position's size, open notional and the funding and social-loss indices it was last
settled at, exactly (Python ints) and as float64 for the screen. The index follows the engine's
events, never a scan of all accounts: each block's events name the accounts it changed (any
`accountId` or `counterpartyId`, the owner and bucket of a `MarginTransferred`) and those rows are
read again in one batched `accountStates` call; an `AccountRegistered` adds a row in registry order.
Market state (funding index, rate and time, social-loss index, price) comes from the snapshot the
run loop reads anyway.

`screen` computes every account's value and maintenance margin in float64 at once and flags those
within a conservative margin of a threshold; only flagged accounts are confirmed exactly (on chain
with one batched `healthOf`, in the model with its exact integer math). `reconcile` compares every
row with the backend and names the first account and field that differ.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulator.errors import PerpsimError
from simulator.exchange import ActionResult, Exchange, HealthScan, Snapshot
from simulator.model import funding as FundingMath

# Relative size of the screen's margin: float64 carries about 1e-16 of each term; every term's
# magnitude is counted, so 1e-9 of their sum covers the float error many times over, and the wei
# roundings of the exact math (a few wei per term) far below it.
SCREEN_TOLERANCE = 1e-9
# An absolute floor for the margin, WAD (a millionth of a dollar).
SCREEN_FLOOR = 1e12
FIELDS = ("collateral", "fund_reserve", "size", "open_notional", "funding_index", "social_loss_index")


class IndexMismatch(PerpsimError):
    def __init__(self, account_id: int, field: str, index_value, backend_value):
        super().__init__(f"position index out of step with the exchange: account {account_id:#x}, {field}: "
                         f"index {index_value}, exchange {backend_value}")


def _address_id(address) -> int:
    """The cross account id of an address (checksummed hex on chain, an int in the model)."""
    return int(address, 16) if isinstance(address, str) else int(address)


class PositionIndex:
    def __init__(self, exchange: Exchange, n_markets: int, vault_id: int):
        self.exchange = exchange
        self.n_markets = n_markets
        self.vault_id = vault_id
        self.ids: list[int] = []
        self.row_of: dict[int, int] = {}
        capacity = 16
        self._exact = {name: np.zeros((capacity, n_markets) if name not in ("collateral", "fund_reserve") else capacity,
                                      dtype=object) for name in FIELDS}
        self._float = {name: np.zeros((capacity, n_markets) if name not in ("collateral", "fund_reserve") else capacity)
                       for name in FIELDS}
        self._dirty: set[int] = set()
        self._ids_view: list[int] | None = None
        self.tiers = [tuple(np.array(part, dtype=float) for part in exchange.tiers(m)) for m in range(n_markets)]
        self.rows_read = 0  # account rows read back from the exchange, over the run
        self.confirmed = 0  # accounts whose health was asked exactly, over the run

    # -- following the exchange -- #

    def bootstrap(self, ids: Sequence[int]) -> None:
        """Rows for the registered accounts `ids` (registry order), read once, in full."""
        for account_id in ids:
            self._add(account_id)
        self.refresh()

    def apply(self, results: Sequence[ActionResult]) -> None:
        """Notes what a block's events changed: new accounts get rows, changed ones are read again
        at the next `refresh`."""
        for result in results:
            for name, args in result.events:
                if name == "AccountRegistered":
                    self._add(args["accountId"])
                elif name == "MarginTransferred":
                    owner = _address_id(args["owner"])
                    self._touch(owner)
                    self._touch(owner | (args["marketId"] + 1) << 160)
                elif name == "PenaltyCharged":  # the keeper's reward lands in its cross account
                    self._touch(args["accountId"])
                    self._touch(_address_id(args["keeper"]))
                else:
                    for key in ("accountId", "counterpartyId"):
                        if key in args:
                            self._touch(args[key])

    def refresh(self) -> None:
        """Reads the changed rows back from the exchange (one batched call)."""
        if not self._dirty:
            return
        ids = sorted(self._dirty, key=self.row_of.__getitem__)
        self._dirty.clear()
        self._store(ids, self.exchange.account_states(ids))
        self.rows_read += len(ids)

    def _add(self, account_id: int) -> None:
        if account_id == self.vault_id or account_id in self.row_of:
            return
        row = len(self.ids)
        if row == len(self._exact["collateral"]):
            for table in (self._exact, self._float):
                for name, array in table.items():
                    bigger = np.zeros((2 * row,) + array.shape[1:], dtype=array.dtype)
                    bigger[:row] = array
                    table[name] = bigger
        self.ids.append(account_id)
        self.row_of[account_id] = row
        self._dirty.add(account_id)

    def _touch(self, account_id: int) -> None:
        if account_id in self.row_of:
            self._dirty.add(account_id)

    def _store(self, ids: list[int], states) -> None:
        collaterals, reserves, sizes, notionals, funding, social = states
        rows = np.fromiter((self.row_of[i] for i in ids), dtype=np.intp, count=len(ids))
        n = self.n_markets
        for name, values in (("collateral", collaterals), ("fund_reserve", reserves)):
            self._exact[name][rows] = np.array(values, dtype=object)
            self._float[name][rows] = np.array(values, dtype=float)
        for name, values in (("size", sizes), ("open_notional", notionals), ("funding_index", funding),
                             ("social_loss_index", social)):
            exact = np.array(values, dtype=object).reshape(len(ids), n)
            self._exact[name][rows] = exact
            self._float[name][rows] = exact.astype(float)

    # -- reading it -- #

    def row_values(self, account_id: int, field: str):
        """The exact value(s) of one account's field (per market for position fields)."""
        return self._exact[field][self.row_of[account_id]]

    def position(self, account_id: int, market: int) -> int:
        """The exact size of one position."""
        return int(self._exact["size"][self.row_of[account_id], market])

    def screen(self, snapshot: Snapshot, timestamp: int) -> HealthScan:
        """Every account's value and maintenance margin in float64 (WAD units), with the margin
        each is known to within; accounts holding a market whose price is refused are left out, as
        the chain's health views refuse them."""
        self.refresh()
        n = len(self.ids)
        f = self._float
        size, notional_open = f["size"][:n], f["open_notional"][:n]
        value = f["collateral"][:n].copy()
        magnitude = np.abs(value)
        mm = np.zeros(n)
        held = size != 0
        included = np.ones(n, dtype=bool)
        for m in range(self.n_markets):
            if not held[:, m].any():
                continue
            price = snapshot.prices[m]
            if price == 0:  # refused: accounts holding it cannot be judged now
                included &= ~held[:, m]
                continue
            s = size[:, m]
            abs_s = np.abs(s)
            index_now = FundingMath.accrue(snapshot.funding_index[m], snapshot.funding_rate[m], price,
                                           timestamp - snapshot.last_funding_time[m])
            funding_gap = float(index_now) - f["funding_index"][:n, m]
            social_gap = float(snapshot.social_loss_index[m]) - f["social_loss_index"][:n, m]
            notional = abs_s * (price / 1e18)
            value += (s * (price / 1e18) - notional_open[:, m]) - s * funding_gap / 1e18 - abs_s * social_gap / 1e18
            magnitude += (notional + np.abs(notional_open[:, m]) + abs_s * np.abs(funding_gap) / 1e18
                          + abs_s * np.abs(social_gap) / 1e18 + abs_s * float(index_now) / 1e18)
            floors, mmrs, deductions = self.tiers[m]
            tier = np.searchsorted(floors, notional, side="right") - 1
            mm += np.where(held[:, m], notional * mmrs[np.maximum(tier, 0)] / 1e18 - deductions[np.maximum(tier, 0)], 0.0)
            magnitude += notional * mmrs.max() / 1e18 + deductions.max()
        margin = SCREEN_TOLERANCE * magnitude + SCREEN_FLOOR
        keep = np.flatnonzero(included)
        ids = [self.ids[i] for i in keep.tolist()] if len(keep) != n else self._all_ids()
        return HealthScan(ids=ids, values=value[keep], mms=mm[keep], margins=margin[keep],
                          holds=held[keep].any(axis=1), confirm=self._confirm)

    def _confirm(self, account_ids: list[int]) -> tuple[list[int], list[int]]:
        self.confirmed += len(account_ids)
        return self.exchange.health_of(account_ids)

    def _all_ids(self) -> list[int]:
        """Every row's id; the same list object while no account registers (callers cache on it)."""
        if self._ids_view is None or len(self._ids_view) != len(self.ids):
            self._ids_view = list(self.ids)
        return self._ids_view

    # -- checking it -- #

    def reconcile(self) -> int:
        """Compares every row with the exchange; raises IndexMismatch on the first difference.
        Returns the number of rows compared."""
        self.refresh()
        registered = [i for i in self.exchange.account_ids() if i != self.vault_id]
        if registered != self.ids:
            missing = next((i for i in registered if i not in self.row_of), None)
            account = missing if missing is not None else next(i for i in self.ids if i not in set(registered))
            raise IndexMismatch(account, "registry", "absent" if missing is not None else "present",
                                "present" if missing is not None else "absent")
        states = self.exchange.account_states(self.ids)
        n = len(self.ids)
        for name, values in zip(FIELDS, states):
            backend = np.array(values, dtype=object)
            if name not in ("collateral", "fund_reserve"):
                backend = backend.reshape(n, self.n_markets)
            differ = np.flatnonzero((self._exact[name][:n] != backend).reshape(n, -1).any(axis=1))
            if len(differ):
                row = int(differ[0])
                raise IndexMismatch(self.ids[row], name, self._exact[name][row], backend[row])
        return n
