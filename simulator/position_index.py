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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from simulator.errors import PerpsimError
from simulator.exchange import ActionResult, Exchange, HealthScan, Snapshot
from simulator.model import funding as FundingMath
from simulator.model import liquidation as LiquidationMath
from simulator.model import margin as MarginMath

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
        # Per row, the parts of the screen's sums that change only when the row does (`_store`):
        # the value's terms that do not move with the market, their magnitude, |size| and which
        # markets it holds. A screen adds what moves with prices and indices as matrix products.
        self._terms = {"base": np.zeros(capacity), "base_magnitude": np.zeros(capacity),
                       "abs_size": np.zeros((capacity, n_markets)), "held": np.zeros((capacity, n_markets), dtype=bool),
                       "holds": np.zeros(capacity, dtype=bool)}
        self._dirty: set[int] = set()
        self._ids_view: list[int] | None = None
        self._last_snapshot: Snapshot | None = None
        self._last_scan: HealthScan | None = None
        self._last_rows = np.zeros(0, dtype=np.intp)  # the index row of each of the last scan's accounts
        self._last_held = np.zeros((0, n_markets), dtype=bool)  # and the markets each of them holds
        self.tiers = [tuple(np.array(part, dtype=float) for part in exchange.tiers(m)) for m in range(n_markets)]
        self._first_mmr = np.array([mmrs[0] for _, mmrs, _ in self.tiers]) / 1e18
        self._max_mmr = np.array([mmrs.max() for _, mmrs, _ in self.tiers]) / 1e18
        self._max_deduction = np.array([deductions.max() for _, _, deductions in self.tiers])
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
            for table in (self._exact, self._float, self._terms):
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
        self._store_terms(rows)

    def _store_terms(self, rows: np.ndarray) -> None:
        """The screen's per-row terms of `rows`, from their float fields. An account's value is
        collateral + sum over markets of (size * (price - fundingIndexNow) - openNotional
        + size * fundingIndex - |size| * (socialLossIndexNow - socialLossIndex)) / WAD: `base`
        holds the terms without the market's price and indices, `base_magnitude` the sum of their
        magnitudes (for the margin)."""
        f = self._float
        size, funding, social = f["size"][rows], f["funding_index"][rows], f["social_loss_index"][rows]
        open_notional, collateral = f["open_notional"][rows], f["collateral"][rows]
        abs_size = np.abs(size)
        self._terms["base"][rows] = (collateral - open_notional.sum(axis=1) + (size * funding).sum(axis=1) / 1e18
                                     + (abs_size * social).sum(axis=1) / 1e18)
        self._terms["base_magnitude"][rows] = (np.abs(collateral) + np.abs(open_notional).sum(axis=1)
                                               + (abs_size * (np.abs(funding) + np.abs(social))).sum(axis=1) / 1e18)
        self._terms["abs_size"][rows] = abs_size
        self._terms["held"][rows] = size != 0
        self._terms["holds"][rows] = abs_size.sum(axis=1) != 0

    # -- exact reads for the agents: the state after the last block, as the exchange's views give it -- #

    def open_markets(self, account_ids: Sequence[int]) -> list[list[int]]:
        """The markets each account holds a position in (`marketMasksAndReserves`' masks)."""
        self.refresh()
        sizes = self._exact["size"]
        return [[m for m in range(self.n_markets) if sizes[self.row_of[a], m] != 0] for a in account_ids]

    def fund_reserves(self, account_ids: Sequence[int]) -> list[int]:
        """The fund's earmark for each account (`marketMasksAndReserves`' reserves)."""
        self.refresh()
        return [self._exact["fund_reserve"][self.row_of[a]] for a in account_ids]

    def positions(self, account_ids: Sequence[int], market: int) -> list[int]:
        """Each account's position size in `market` (`positionSizes`)."""
        self.refresh()
        return [self._exact["size"][self.row_of[a], market] for a in account_ids]

    # -- reading it -- #

    def screen(self, snapshot: Snapshot, timestamp: int) -> HealthScan:
        """Every account's value and maintenance margin in float64 (WAD units), with the margin
        each is known to within; accounts holding a market whose price is refused are left out, as
        the chain's health views refuse them.

        value = base + size @ (price - fundingIndexNow) / WAD - |size| @ socialLossIndexNow / WAD
        (`_store_terms`); MM = notional @ the first tier's rate, plus each tier above it for the few
        accounts whose notional reaches it. The margin is SCREEN_TOLERANCE times the sum of the
        magnitudes of every term (|fundingIndexNow - fundingIndex| bounded by the sum of both),
        plus SCREEN_FLOOR."""
        self.refresh()
        n = len(self.ids)
        terms = self._terms
        size, abs_size = self._float["size"][:n], terms["abs_size"][:n]
        holders = np.ones(n) @ abs_size > 0  # (matrix products: numpy's reductions along an axis are slower)
        prices = np.array([float(p) for p in snapshot.prices])
        refused = holders & (prices == 0)
        live = holders & (prices != 0)
        index_now = np.zeros(self.n_markets)
        for m in np.flatnonzero(live).tolist():
            index_now[m] = float(FundingMath.accrue(snapshot.funding_index[m], snapshot.funding_rate[m],
                                                    snapshot.prices[m], timestamp - snapshot.last_funding_time[m]))
        social = np.where(live, [float(x) for x in snapshot.social_loss_index], 0.0)
        price = np.where(live, prices, 0.0) / 1e18
        value = terms["base"][:n] + size @ (price - index_now / 1e18) - abs_size @ (social / 1e18)
        mm = abs_size @ (price * self._first_mmr)
        for m in np.flatnonzero(live).tolist():
            floors, mmrs, deductions = self.tiers[m]
            if len(floors) > 1:  # the accounts whose notional reaches a higher tier
                above = np.flatnonzero(abs_size[:, m] * price[m] >= floors[1])
                if len(above):
                    notional = abs_size[above, m] * price[m]
                    tier = np.searchsorted(floors, notional, side="right") - 1
                    mm[above] += notional * (mmrs[tier] / 1e18 - self._first_mmr[m]) - deductions[tier]
        weights = np.where(live, price * (1 + self._max_mmr) + (2 * np.abs(index_now) + np.abs(social)) / 1e18, 0.0)
        magnitude = terms["base_magnitude"][:n] + abs_size @ weights + self._max_deduction[live].sum()
        margin = SCREEN_TOLERANCE * magnitude + SCREEN_FLOOR
        held = terms["held"][:n]
        if refused.any():
            keep = np.flatnonzero(abs_size @ refused.astype(float) == 0)
            ids = [self.ids[i] for i in keep.tolist()]
            self._last_held = held[keep]
            value, mm, margin = value[keep], mm[keep], margin[keep]
        else:
            keep = np.arange(n)
            ids = self._all_ids()
            self._last_held = held.copy()  # which markets each screened account holds (`at_risk`)
        holds = terms["holds"][keep] if len(keep) != n else terms["holds"][:n].copy()
        self._last_snapshot = snapshot
        self._last_rows = keep
        self._last_scan = HealthScan(ids=ids, values=value, mms=mm, margins=margin, holds=holds,
                                     confirm=self._confirm)
        return self._last_scan

    def at_risk(self, scan: HealthScan, multiple: float) -> list[int]:
        """Per market, the accounts of `scan` (this index's last screen) that hold a position in it
        and whose value is below `multiple` times their maintenance margin: the screen's float64
        values (exact where the scan settled them), for the report's chart."""
        risky = np.asarray(scan.values) < multiple * np.asarray(scan.mms)
        # A product of 0/1 floats (exact below 2**53): numpy's count_nonzero along an axis is 15x slower.
        return (risky.astype(float) @ self._last_held.astype(float)).astype(np.int64).tolist()

    def _confirm(self, account_ids: list[int]) -> tuple[list[int], list[int]]:
        self.confirmed += len(account_ids)
        return self.exchange.health_of(account_ids)

    def _all_ids(self) -> list[int]:
        """Every row's id; the same list object while no account registers (callers cache on it)."""
        if self._ids_view is None or len(self._ids_view) != len(self.ids):
            self._ids_view = list(self.ids)
        return self._ids_view

    # -- what a block's events found (read before the index takes in the block) -- #

    def values_before(self, account_ids: Sequence[int], snapshot: Snapshot, timestamp: int) -> dict[int, int]:
        """Each account's value (WAD, float64 math as the screen's, rounded to an int) from its
        row as it stands (before `refresh` takes in the block just executed), at `snapshot`'s
        prices: what an account was worth at the oracle prices a block acted on, before the
        block's fills. Accounts without a row, or holding a market whose price is refused, are
        left out."""
        out = {}
        rows = [(a, self.row_of[a]) for a in dict.fromkeys(account_ids) if a in self.row_of]
        f = self._float
        for account_id, row in rows:
            value = f["collateral"][row]
            refused = False
            for m in range(self.n_markets):
                s = f["size"][row, m]
                if s == 0:
                    continue
                price = snapshot.prices[m]
                if price == 0:
                    refused = True
                    break
                index_now = FundingMath.accrue(snapshot.funding_index[m], snapshot.funding_rate[m], price,
                                               timestamp - snapshot.last_funding_time[m])
                funding_gap = float(index_now) - f["funding_index"][row, m]
                social_gap = float(snapshot.social_loss_index[m]) - f["social_loss_index"][row, m]
                value += (s * (price / 1e18) - f["open_notional"][row, m]) - s * funding_gap / 1e18 \
                    - abs(s) * social_gap / 1e18
            if not refused:
                out[account_id] = int(value)
        return out

    def position_before(self, account_id: int, market: int) -> tuple[int, int] | None:
        """(size, open notional) of the account's position in `market` from its row as it stands
        (exact); None without a row."""
        row = self.row_of.get(account_id)
        if row is None:
            return None
        return int(self._exact["size"][row, market]), int(self._exact["open_notional"][row, market])

    # -- ADL counterparties -- #

    def adl_ranking(self, market: int, bankrupt_side: int, by_score: bool,
                    hyperliquid: bool = False, largest: bool = False, drain: bool = False) -> "WinnerRanking":
        """The winners against a bankrupt position of sign `bankrupt_side`, in the order the
        contract's `adlRanking` gives (score desc then id asc; id asc under PRO_RATA), from the
        index at the last screen's state: eligibility (an opposite position with uPnL > 0 at the
        oracle price) exactly, and under PNL_LEVERAGE exact scores only for the prefix a
        deleverage reads (under HYPERLIQUID exact scores for every winner, confirmed in one call;
        under MIN_OVERSHOOT (`largest`) by exact notional; under LEVERAGE_DRAIN (`drain`) by exact
        leverage, every winner's value confirmed in one call and kept in the ranking's `values`).
        Empty where the contract's view reverts: the market's price refused, or
        an eligible winner holding a market whose price is."""
        snapshot = self._last_snapshot
        price = snapshot.prices[market]
        if price == 0:
            return WinnerRanking([], None, None, price, self._confirm)
        self.refresh()
        n = len(self.ids)
        # The vault is registered like any account and can be a winner; the index keeps no row for
        # it (no health screen), so it is read now, as row n.
        vault = self.exchange.account_states([self.vault_id])
        size_f = np.append(self._float["size"][:n, market], float(vault[2][market]))
        open_f = np.append(self._float["open_notional"][:n, market], float(vault[3][market]))

        def exact(row: int) -> tuple[int, int, int]:
            """(id, size, open notional) of a row, exactly."""
            if row == n:
                return self.vault_id, int(vault[2][market]), int(vault[3][market])
            return self.ids[row], int(self._exact["size"][row, market]), int(self._exact["open_notional"][row, market])

        upnl_f = size_f * (price / 1e18) - open_f
        margin = SCREEN_TOLERANCE * (np.abs(size_f) * (price / 1e18) + np.abs(open_f)) + SCREEN_FLOOR
        opposite = size_f < 0 if bankrupt_side > 0 else size_f > 0
        sure = opposite & (upnl_f > margin)
        unsure = np.flatnonzero(opposite & ~sure & (upnl_f > -margin))
        eligible = sure.copy()
        for row in unsure.tolist():
            _, size, open_notional = exact(row)
            eligible[row] = MarginMath.unrealized_pnl(size, open_notional, price) > 0
        rows = sorted(np.flatnonzero(eligible).tolist(), key=lambda row: exact(row)[0])
        refused = [m for m, p in enumerate(snapshot.prices) if p == 0]
        if refused:
            held = np.vstack([self._float["size"][:n] != 0, np.array(vault[2], dtype=object).reshape(1, -1) != 0])
            if held[rows][:, refused].any():
                return WinnerRanking([], None, None, price, self._confirm)
        winners = [Winner(*exact(row)) for row in rows]
        if not by_score:
            return WinnerRanking(winners, None, None, price, self._confirm)
        if largest:
            ranked = sorted(winners, key=lambda w: (-MarginMath.notional(w.size, price), w.account_id))
            return WinnerRanking(ranked, None, None, price, self._confirm)
        if drain:
            values, _ = self._confirm([w.account_id for w in winners]) if winners else ([], [])
            value_of = {w.account_id: int(value) for w, value in zip(winners, values)}
            ranked = sorted(winners, key=lambda w: (-LiquidationMath.leverage_score(
                MarginMath.notional(w.size, price), value_of[w.account_id]), w.account_id))
            return WinnerRanking(ranked, None, None, price, self._confirm, values=value_of)
        if hyperliquid:
            values, _ = self._confirm([w.account_id for w in winners]) if winners else ([], [])
            scores = {w.account_id: LiquidationMath.hyperliquid_score(
                w.size, w.open_notional, MarginMath.notional(w.size, price), int(value))
                for w, value in zip(winners, values)}
            ranked = sorted(winners, key=lambda w: (-scores[w.account_id], w.account_id))
            return WinnerRanking(ranked, None, None, price, self._confirm)
        notional_f = np.abs(size_f[rows]) * (price / 1e18)
        upnl_rows, open_rows = upnl_f[rows], np.abs(open_f[rows])
        # Bounds on each score from the last screen's value and its margin (settled values have a
        # zero margin); a row the screen left out (the vault, an account registered since) is
        # bounded by nothing. An account whose value may be at or below zero (or with no cost
        # basis) may rank first.
        scan = self._last_scan
        position = np.full(n + 1, -1, dtype=np.intp)
        position[self._last_rows] = np.arange(len(self._last_rows))
        at = position[rows]
        screened = at >= 0
        values, value_margins = np.zeros(len(rows)), np.full(len(rows), np.inf)
        values[screened], value_margins[screened] = scan.values[at[screened]], scan.margins[at[screened]]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            low_value, high_value = values - value_margins, values + value_margins
            ratio = np.where(open_rows > 0, upnl_rows / open_rows, 0.0) * notional_f
            # adlScore is the maximum with no cost basis or a value at or below zero.
            surely_max = (open_rows == 0) | (high_value <= 0)
            maybe_max = (open_rows == 0) | (low_value <= 0)
            high = np.where(maybe_max, np.inf, ratio / np.where(maybe_max, 1.0, low_value)) * (1 + 1e-9)
            low = np.where(surely_max, np.inf,
                           np.where(np.isfinite(high_value) & (high_value > 0), ratio / high_value, 0.0)) * (1 - 1e-9)
        return WinnerRanking(winners, low, high, price, self._confirm)

    # -- checking it -- #

    def check(self, scan: HealthScan) -> None:
        """Reconciles every row and compares the screen's liquidatable accounts with an exact scan
        of every account (tests: after every step)."""
        self.reconcile()
        exact = self.exchange.scan()
        if exact.ids != scan.ids:
            raise IndexMismatch(next((i for i in exact.ids if i not in set(scan.ids)), 0), "screened accounts",
                                len(scan.ids), len(exact.ids))
        screened, found = scan.liquidatable(), exact.liquidatable()
        if screened != found:
            account = next(iter(set(screened) ^ set(found)), found[0] if found else 0)
            raise IndexMismatch(account, "liquidatable", account in screened, account in found)

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


@dataclass(frozen=True)
class Winner:
    account_id: int
    size: int
    open_notional: int


class WinnerRanking:
    """The ranking as a sequence the keepers walk: by id (PRO_RATA), or by exact score for as long a
    prefix as is read (PNL_LEVERAGE: each extension confirms the values of the winners whose score
    bounds reach the prefix's, in one call, and sorts them exactly)."""

    def __init__(self, winners: list[Winner], low, high, price: int, confirm, values: dict[int, int] | None = None):
        self._winners, self._low, self._high, self._price, self._confirm = winners, low, high, price, confirm
        self._ordered: list[Winner] = list(winners) if low is None else []
        self._scores: dict[int, int] = {}
        self._values: dict[int, int] = dict(values or {})

    @property
    def values(self) -> dict[int, int]:
        """The exact account values confirmed so far, by id (every winner's under LEVERAGE_DRAIN)."""
        return self._values

    def __len__(self) -> int:
        return len(self._winners)

    def __getitem__(self, index: int) -> Winner:
        if index >= len(self._ordered) and index < len(self._winners):
            self._extend(max(2 * len(self._ordered), index + 1, 32))
        return self._ordered[index]

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    def _extend(self, wanted: int) -> None:
        """Makes the first `wanted` winners exact: every winner whose score may reach the
        `wanted`-th highest lower bound is scored exactly; the top `wanted` of those are the
        ranking's (no one left out can outrank them)."""
        wanted = min(wanted, len(self._winners))
        low = self._low.copy()
        threshold = -np.inf if wanted >= len(low) else np.sort(low)[::-1][wanted - 1]
        candidates = [i for i in np.flatnonzero(self._high >= threshold).tolist()]
        missing = [self._winners[i].account_id for i in candidates if self._winners[i].account_id not in self._scores]
        if missing:
            values, _ = self._confirm(missing)
            for account_id, value in zip(missing, values):
                self._values[account_id] = int(value)
        for i in candidates:
            winner = self._winners[i]
            if winner.account_id not in self._scores:
                upnl = MarginMath.unrealized_pnl(winner.size, winner.open_notional, self._price)
                notional = MarginMath.notional(winner.size, self._price)
                self._scores[winner.account_id] = LiquidationMath.adl_score(
                    upnl, winner.open_notional, notional, self._values[winner.account_id])
        ranked = sorted((self._winners[i] for i in candidates),
                        key=lambda w: (-self._scores[w.account_id], w.account_id))
        self._ordered = ranked[:wanted]
