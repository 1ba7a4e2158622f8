"""The chain around the contracts, as the model sees it: blocks and time, the oracle's prices, the
event log, and transactions that revert atomically.

- Time and blocks move only through `advance(seconds, blocks)`. A state-changing call is one
  transaction in the current block; calls between two `advance`s share the block (the book's
  consumption accumulates, funding does not accrue twice). With ``auto_mine=True`` every
  transaction is mined in a block of its own first (``advance(block_time, 1)``), like anvil's
  automine.
- A transaction that raises leaves the state exactly as it was (Solidity's revert): account rows
  are journaled on their first write, everything else is snapshotted when the transaction begins,
  the storage of every contract on the chain included (the engine's, and that of the contracts
  added with `add_contract`: the liquidation engine's). Calls made inside a transaction (the
  liquidation engine calling the engine's hooks) are part of it, as external calls between the two
  contracts are part of one Ethereum transaction.
- The oracle: either the router's mirror (`oracle`: simulator/model/oracle_router.py, with its
  feeds, heartbeat, deviation breaker and cooldown), as model-mode runs use it, or, without one,
  `UnguardedOracle`: `set_price(market_id, price_wad)` sets the price the engine reads, unguarded
  (tests that decide the guards themselves).

The model's engine (perp_engine.PerpEngine) is built on this class: the engine object carries the
chain's state, and the other contracts' mirrors hold it as their `chain` (the liquidation engine,
the oracle router and its feeds). `transaction` runs on `self.chain` (for the engine, itself).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from simulator.model.errors import InvalidPrice
from simulator.model.events import Event, make_event

F = TypeVar("F", bound=Callable[..., Any])

# Default start of the model's clock (an October 2025 timestamp) and block height.
GENESIS_TIMESTAMP = 1_760_000_000
GENESIS_BLOCK = 1


def transaction(method: F) -> F:
    """Runs `method` as one transaction: all or nothing. Nested calls join the outer transaction."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        chain = self.chain
        if chain._tx_depth:
            return method(self, *args, **kwargs)
        snapshot = chain._snapshot()
        chain._journal = {}
        chain._tx_depth = 1
        try:
            if chain.auto_mine:
                chain.advance(chain.block_time, 1)
            return method(self, *args, **kwargs)
        except BaseException:
            chain._restore(snapshot)
            raise
        finally:
            chain._tx_depth = 0
            chain._journal = None

    return run  # type: ignore[return-value]


class ChainState:
    """Block number, timestamp, oracle prices and the event log (see the module docstring)."""

    def __init__(
        self,
        block_number: int = GENESIS_BLOCK,
        timestamp: int = GENESIS_TIMESTAMP,
        auto_mine: bool = False,
        block_time: int = 1,
    ):
        self.block_number = block_number
        self.timestamp = timestamp
        self.auto_mine = auto_mine
        self.block_time = block_time
        # WAD price per market; 0 = never set (reading it raises InvalidPrice). Unused when the
        # chain has an oracle router (`oracle`, simulator/model/oracle_router.py): it serves them.
        self.prices: list[int] = []
        self.oracle: Any = UnguardedOracle(self)
        # The contracts on this chain besides the one built on it (see `add_contract`).
        self._contracts: list[Any] = []
        self.events: list[Event] = []
        # False while no one reads the log (a driver's set-up blocks): events are not built.
        self.logging = True
        self._tx_depth = 0
        # Row -> saved values, while a transaction runs (see PerpEngine._writable_row).
        self._journal: dict[int, tuple] | None = None

    @property
    def chain(self) -> "ChainState":
        """The chain a contract's transactions run on: for the contract built on it, itself."""
        return self

    def add_contract(self, contract: Any) -> None:
        """Puts `contract` on this chain: its storage (its `_snapshot` and `_restore`) is part of
        every transaction, so a revert anywhere restores it with the rest."""
        self._contracts.append(contract)

    # --- time -------------------------------------------------------------------------------

    def advance(self, seconds: int = 0, blocks: int = 1) -> None:
        """Mines `blocks` blocks and moves the clock forward `seconds` (both >= 0)."""
        if seconds < 0 or blocks < 0:
            raise ValueError(f"advance(seconds={seconds}, blocks={blocks}): time and blocks only move forward")
        self.timestamp += seconds
        self.block_number += blocks

    # --- oracle -----------------------------------------------------------------------------

    def set_price(self, market_id: int, price: int) -> None:
        """Sets the WAD price the engine reads for `market_id` when the chain has no oracle router
        (`UnguardedOracle` serves it)."""
        if not 0 <= market_id < len(self.prices):
            raise ValueError(f"no market {market_id}: create it first")
        if price <= 0:
            raise ValueError(f"price must be a positive WAD integer, got {price}")
        self.prices[market_id] = int(price)

    def _price_of(self, market_id: int) -> int:
        """_priceOf / oracle.price(marketId): the router's price when the chain has one (its
        refusal raises its error), else the price `set_price` gave."""
        return self.oracle.price(market_id)

    # --- events -----------------------------------------------------------------------------

    def _emit(self, name: str, *values: Any) -> None:
        if self.logging:
            self.events.append(make_event(name, values, self.block_number, self.timestamp))

    def events_named(self, name: str, since: int = 0) -> list[Event]:
        """Events called `name` in the log from index `since` on."""
        return [event for event in self.events[since:] if event.event_name == name]

    # --- transactions -----------------------------------------------------------------------

    def _snapshot(self) -> dict:
        return {
            "block_number": self.block_number,
            "timestamp": self.timestamp,
            "prices": list(self.prices),
            "events": len(self.events),
            "contracts": [contract._snapshot() for contract in self._contracts],
        }

    def _restore(self, snapshot: dict) -> None:
        self.block_number = snapshot["block_number"]
        self.timestamp = snapshot["timestamp"]
        self.prices[:] = snapshot["prices"]
        del self.events[snapshot["events"]:]
        for contract, saved in zip(self._contracts, snapshot["contracts"]):
            contract._restore(saved)


class UnguardedOracle:
    """The oracle of a chain without a router: `price` (as IOracleRouter.price) serves the price
    `set_price` gave, with none of the router's guards; a price never set is InvalidPrice."""

    def __init__(self, chain: ChainState):
        self.chain = chain

    def price(self, market_id: int) -> int:
        price = self.chain.prices[market_id]
        if price == 0:
            raise InvalidPrice(market_id, 0)
        return price
