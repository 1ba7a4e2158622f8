"""The storage of the engine's accounts, as the model keeps it: the form differs from the
contract's mappings, never the content (simulator/model/perp_engine.py mirrors the functions).

- Accounts and positions live in numpy object-dtype arrays, one row per account id ever written
  (``_collateral[row]``, ``_size[row, market]``, ...), so the model's vectorised views compute every
  account's health at once. `_account(id)` and `_position(id, market)` return storage references
  that read and write those arrays, so the mirror reads like the Solidity
  (``position.size = new_size``); a read of an id never written is 0, as in a mapping.
- A transaction (state.py) journals each row before its first write; a revert puts the rows back
  and drops the rows it created.
"""

from __future__ import annotations

import numpy as np

from simulator.model.state import ChainState


def _array_field(array_name: str, doc: str) -> property:
    """A field of a storage reference backed by column `_market` (or the row) of an engine array.

    The reference keeps the account's row once it has one (rows never move; a reverted transaction
    drops the rows it created, and no reference outlives the call that made it)."""

    def get(ref):
        row = ref._row
        if row is None:
            row = ref._row = ref._engine._rows.get(ref._id)
            if row is None:
                return 0
        array = ref._engine.__dict__[array_name]
        return array[row] if ref._market is None else array[row, ref._market]

    def set(ref, value):  # noqa: A001 - property setter
        row = ref._row = ref._engine._writable_row(ref._id)
        array = ref._engine.__dict__[array_name]
        if ref._market is None:
            array[row] = value
        else:
            array[row, ref._market] = value

    return property(get, set, doc=doc)


class PositionRef:
    """``positions[id][marketId]``: reads default to 0, the first write creates the account's row."""

    __slots__ = ("_engine", "_id", "_market", "_row")

    def __init__(self, engine: "PerpEngine", account_id: int, market_id: int):
        self._engine, self._id, self._market = engine, account_id, market_id
        self._row = engine._rows.get(account_id)

    size = _array_field("_size", "int256 size")
    open_notional = _array_field("_open_notional", "int256 openNotional")
    funding_index = _array_field("_funding_index", "int256 fundingIndex")
    social_loss_index = _array_field("_social_loss_index", "uint256 socialLossIndex")


class AccountRef:
    """``accounts[id]``: collateral and registration (the market mask is derived from the sizes)."""

    __slots__ = ("_engine", "_id", "_market", "_row")

    def __init__(self, engine: "PerpEngine", account_id: int):
        self._engine, self._id, self._market = engine, account_id, None
        self._row = engine._rows.get(account_id)

    collateral = _array_field("_collateral", "int256 collateral")

    @property
    def registered(self) -> bool:
        row = self._engine._rows.get(self._id)
        return row is not None and bool(self._engine._registered[row])

    @property
    def market_mask(self) -> int:
        return self._engine.market_mask_of(self._id)


class AccountStorage(ChainState):
    """Rows of account arrays, their references and their journal; the engine (perp_engine.py)
    derives from it and says how many markets exist (`_market_count`)."""

    _POSITION_ARRAYS = ("_size", "_open_notional", "_funding_index", "_social_loss_index")

    def __init__(self, **chain):
        super().__init__(**chain)
        # Rows of the account arrays: one per account id ever written (registered or not).
        self._rows: dict[int, int] = {}
        self._row_ids: list[int] = []
        capacity = 16
        self._collateral = np.zeros(capacity, dtype=object)
        self._registered = np.zeros(capacity, dtype=bool)
        self._size = np.zeros((capacity, 0), dtype=object)
        self._open_notional = np.zeros((capacity, 0), dtype=object)
        self._funding_index = np.zeros((capacity, 0), dtype=object)
        self._social_loss_index = np.zeros((capacity, 0), dtype=object)

    def _market_count(self) -> int:
        raise NotImplementedError

    def _account(self, account_id: int) -> AccountRef:
        return AccountRef(self, account_id)

    def _position(self, account_id: int, market_id: int) -> PositionRef:
        return PositionRef(self, account_id, market_id)

    def _writable_row(self, account_id: int) -> int:
        """The account's row, created if new, journaled before its first write in a transaction."""
        row = self._rows.get(account_id)
        if row is None:
            row = len(self._row_ids)
            if row == len(self._collateral):
                self._grow_rows(2 * row)
            self._collateral[row] = 0
            self._registered[row] = False
            for name in self._POSITION_ARRAYS:
                getattr(self, name)[row, :] = 0
            self._rows[account_id] = row
            self._row_ids.append(account_id)
        elif self._journal is not None and row not in self._journal:
            self._journal[row] = (
                self._collateral[row],
                self._registered[row],
                self._size[row].tolist(),
                self._open_notional[row].tolist(),
                self._funding_index[row].tolist(),
                self._social_loss_index[row].tolist(),
            )
        return row

    def _open_markets(self, row: int) -> list[int]:
        """The markets where the account of `row` holds a position: the bits of its market mask."""
        return [m for m, size in enumerate(self._size[row].tolist()) if size != 0]

    def _grow_rows(self, capacity: int) -> None:
        def grown(array):
            bigger = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
            bigger[: len(array)] = array
            return bigger

        self._collateral = grown(self._collateral)
        self._registered = grown(self._registered)
        for name in self._POSITION_ARRAYS:
            setattr(self, name, grown(getattr(self, name)))

    def _add_market_column(self) -> None:
        for name in self._POSITION_ARRAYS:
            array = getattr(self, name)
            setattr(self, name, np.hstack([array, np.zeros((len(array), 1), dtype=object)]))

    def _snapshot(self) -> dict:
        snapshot = super()._snapshot()
        snapshot["rows"] = len(self._row_ids)
        return snapshot

    def _restore(self, snapshot: dict) -> None:
        super()._restore(snapshot)
        markets = self._market_count()
        for name in self._POSITION_ARRAYS:
            array = getattr(self, name)
            if array.shape[1] > markets:
                setattr(self, name, array[:, :markets].copy())
        for row, saved in (self._journal or {}).items():
            self._collateral[row], self._registered[row] = saved[0], saved[1]
            for name, values in zip(self._POSITION_ARRAYS, saved[2:]):
                getattr(self, name)[row, : len(values)] = values[:markets]
        for account_id in self._row_ids[snapshot["rows"]:]:
            del self._rows[account_id]
        del self._row_ids[snapshot["rows"]:]
