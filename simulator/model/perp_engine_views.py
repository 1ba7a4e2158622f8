"""Mirror of contracts/engine/PerpEngineViews.sol: the engine's batch views (many accounts or
markets in one call), which PerpEngine inherits, and, apart, the model's own vectorised views
(every account's health in one array expression) that keepers and tests use in model mode.
NatSpec of the public interface lives in contracts/interfaces/IPerpEngine.sol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from simulator.model import fixed_point as fp
from simulator.model import funding as FundingMath
from simulator.model import liquidation as LiquidationMath
from simulator.model import margin as MarginMath
from simulator.model.storage import AccountStorage


@dataclass(frozen=True)
class MarketView:
    """struct MarketView (IPerpEngine.sol), same fields in the same order."""

    market_id: int
    long_open_interest: int
    short_open_interest: int
    vault_size: int
    funding_index: int
    funding_rate: int
    depth2pct: int
    book_consumed: int
    book_block: int
    social_loss_index: int
    last_funding_time: int


class PerpEngineViews(AccountStorage):
    """The batch views over the engine's storage; `_health`, `_funding_rate`, `_price_of` and the
    storage itself come from PerpEngine (perp_engine.py), as the Solidity's virtual functions do."""

    # ==========================================================================================
    # ACCOUNTS
    # ==========================================================================================

    def health_of(self, account_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """healthOf: (values, mms, ims) of many accounts, vectorised (object arrays)."""
        ids = list(account_ids)
        known = np.array([account_id in self._rows for account_id in ids], dtype=bool)
        rows = np.array([self._rows.get(account_id, 0) for account_id in ids], dtype=np.intp)
        values, mms, ims = self._health_rows(rows)
        # Ids without a row have nothing: zero value and margins.
        return values * known, mms * known, ims * known

    def health_range(self, start: int, count: int) -> tuple[list[int], np.ndarray, np.ndarray]:
        """healthRange: (ids, values, mms) of the registered accounts [start, start + count)."""
        n = min(count, len(self.account_ids) - start) if start < len(self.account_ids) else 0
        ids = self.account_ids[start : start + n]
        values, mms, _ = self._health_rows(np.asarray(self._registered_rows[start : start + n], dtype=np.intp))
        return ids, values, mms

    def account_ids_from(self, start: int, count: int) -> list[int]:
        """accountIdsFrom: the registered ids [start, start + count), in registration order."""
        return self.account_ids[start : start + count] if start < len(self.account_ids) else []

    def account_states(self, account_ids: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
        """accountStates: collaterals, fund reserves, and per market (row-major, i * market count +
        m) sizes, open notionals, funding and social-loss indices; zeros where no position is open."""
        n = len(self.markets)
        collaterals, reserves = [], []
        columns = [[0] * (len(account_ids) * n) for _ in self._POSITION_ARRAYS]
        for i, account_id in enumerate(account_ids):
            collaterals.append(self._account(account_id).collateral)
            reserves.append(self.fund_reserve.get(account_id, 0))
            row = self._rows.get(account_id)
            if row is None:
                continue
            for m in self._open_markets(row):  # the market mask's bits
                for column, name in zip(columns, self._POSITION_ARRAYS):
                    column[i * n + m] = getattr(self, name)[row, m]
        return (collaterals, reserves, *columns)

    # ==========================================================================================
    # MARKETS
    # ==========================================================================================

    def market_view(self, market_id: int) -> MarketView:
        """marketView."""
        market = self._market(market_id)
        return MarketView(
            market_id=market_id,
            long_open_interest=market.long_open_interest,
            short_open_interest=market.short_open_interest,
            vault_size=self._position(self._cross_id(self.vault), market_id).size,
            funding_index=market.funding_index,
            funding_rate=self._funding_rate(market_id),
            depth2pct=market.params.depth2pct,
            book_consumed=market.book_consumed if market.book_block == self.block_number else 0,
            book_block=market.book_block,
            social_loss_index=market.social_loss_index,
            last_funding_time=market.last_funding_time,
        )

    def market_views(self) -> list[MarketView]:
        """marketViews."""
        return [self.market_view(m) for m in range(len(self.markets))]

    # ==========================================================================================
    # SOLVENCY
    # ==========================================================================================

    def balance_sheet(self) -> tuple[int, int, int]:
        """balanceSheet: (tokens, claims, fund), WAD. claims = sum over registered accounts of
        collateral - openNotional - funding owed at the stored index - pending socialised loss."""
        tokens = self.token_balance * self.token_scale
        rows = np.asarray(self._registered_rows, dtype=np.intp)
        claims = int(self._collateral[rows].sum()) if len(rows) else 0
        for m, market in enumerate(self.markets):
            size = self._size[rows, m]
            claims -= int(self._open_notional[rows, m].sum())
            claims -= int(FundingMath.owed(size, market.funding_index, self._funding_index[rows, m]).sum())
            pending = LiquidationMath.social_loss_owed(size, market.social_loss_index, self._social_loss_index[rows, m])
            claims -= int(fp.to_int(pending).sum())
        return tokens, claims, self.insurance_fund + self.insurance_fund_reserved

    # ==========================================================================================
    # MODEL ONLY: every account at once, in array expressions (no Solidity counterpart)
    # ==========================================================================================

    def health_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, values, mms, ims) of every registered account, in registration order, computed with
        array operations over all accounts at once (model only; `health` of each, vectorised)."""
        ids = np.array(self.account_ids, dtype=object)
        values, mms, ims = self._health_rows(np.asarray(self._registered_rows, dtype=np.intp))
        return ids, values, mms, ims

    def liquidatable_accounts(self) -> list[int]:
        """Registered ids that `is_account_liquidatable` (a position and AV < MM), vectorised."""
        rows = np.asarray(self._registered_rows, dtype=np.intp)
        values, mms, _ = self._health_rows(rows)
        holds = (self._size[rows] != 0).any(axis=1) if len(rows) else np.zeros(0, dtype=bool)
        flagged = np.flatnonzero(holds & (values < mms).astype(bool))
        return [self.account_ids[i] for i in flagged.tolist()]

    def _health_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_health` of the accounts in `rows` at once: one array expression per market.

        Markets where an account holds nothing add exactly 0 (size 0 implies openNotional 0, owed 0,
        social loss 0, notional 0 and MM 0), so no mask is needed."""
        values = self._collateral[rows].copy()
        mms = np.zeros(len(rows), dtype=object)
        ims = np.zeros(len(rows), dtype=object)
        for m, market in enumerate(self.markets):
            size = self._size[rows, m]
            if not (size != 0).any():
                continue
            price = self._price_of(m)
            values += (
                MarginMath.unrealized_pnl(size, self._open_notional[rows, m], price)
                - FundingMath.owed(size, self._current_funding_index(m, price), self._funding_index[rows, m])
                - fp.to_int(self._pending_social_loss_rows(size, rows, m, market))
            )
            position_notional = MarginMath.notional(size, price)
            position_mm = MarginMath.maintenance_margin(position_notional, self.tiers[m])
            mms += position_mm
            ims += MarginMath.initial_margin(position_notional, market.params.imr, position_mm)
        return values, mms, ims

    def _pending_social_loss_rows(self, size: np.ndarray, rows: np.ndarray, market_id: int, market):
        """`_pending_social_loss` of the positions of `rows` in `market_id`."""
        return LiquidationMath.social_loss_owed(
            size, market.social_loss_index, self._social_loss_index[rows, market_id]
        )
