"""The numpy model as the simulator's exchange: the same actions as the chain backend, executed on
`Protocol` in the same blocks at the same timestamps, answering with the same events and errors.

Prices go through the oracle router's mirror (simulator/model/oracle_router.py: its feeds,
heartbeat, deviation breaker and cooldown), as they go through the router on chain, so runs whose
scenario trips a breaker or lets a price go stale agree too."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from simulator.exchange import (
    MAX_UINT,
    RUN_START,
    SCAN_CHUNK,
    Action,
    ActionResult,
    AddMargin,
    BookSeed,
    Deleverage,
    HealthScan,
    Liquidate,
    OpeningCall,
    PushPrice,
    SetDepth,
    SetupReport,
    Snapshot,
    Trade,
    open_book,
)
from simulator.market_spec import MarketSpec
from simulator.model import liquidation_views
from simulator.model import protocol as protocol_module
from simulator.model.errors import ModelRevert
from simulator.model.opening import OpeningTrades
from simulator.model.protocol import Protocol

VAULT = 0x7A0017
KEEPER = 0x4EE9E2


class ModelExchange:
    def __init__(self, markets: Sequence[MarketSpec], timestamp: int = RUN_START - 1):
        """`timestamp`: the time of the last block before the run, as on the chain exchange (so the
        run's first block, the opening's, is at RUN_START in both)."""
        self.protocol = Protocol.from_specs(markets, vault=VAULT, vault_collateral_usd=0, timestamp=timestamp,
                                            oracle_router=True)
        self._opening = OpeningTrades(self.protocol)  # the opening's fast path (simulator/model/opening.py)
        self.n_markets = len(markets)
        self.vault = self.vault_id = VAULT
        self.timestamp = timestamp

    # -- set-up: simulator.exchange.open_book -- #

    def open_book(self, book: BookSeed, timestamp: int) -> SetupReport:
        p = self.protocol
        p.logging = False  # nothing reads the opening's events (the chain's are not read either)
        try:
            return open_book(self, book, timestamp)
        finally:
            p.logging = True
            p.events.clear()

    def fund_operator(self, book: BookSeed, timestamp: int) -> None:
        """The model's engine takes deposits without a token: the chain's first block (mint and
        approve) changes nothing here."""

    def setup_block(self, calls: Sequence[OpeningCall], timestamp: int) -> list[str | None]:
        """The opening's deposits and trades go through the model's fast path beside the mirror
        (simulator/model/opening.py: the same state, or the mirror's own revert)."""
        p = self.protocol
        self._mine(timestamp)
        outcomes: list[str | None] = []
        for call in calls:
            sender = p.deployer if call.sender is None else int(call.sender, 16)
            try:
                if call.function == "depositFor":
                    account, amount = call.args
                    self._opening.deposit_for(account if isinstance(account, int) else int(account, 16), amount, sender)
                elif call.function == "depositInsurance":
                    p.deposit_insurance(*call.args, sender=sender)
                elif call.function == "setDepth":
                    p.set_depth(*call.args)
                elif call.function == "transferMargin":
                    p.transfer_margin(sender, *call.args)
                elif call.function == "openPosition":
                    self._opening.open_position(sender, *call.args)
                elif call.function == "openIsolatedPosition":
                    self._opening.open_isolated_position(sender, *call.args)
                else:
                    raise TypeError(f"the opening sends no {call.function}")
                outcomes.append(None)
            except ModelRevert as exc:
                outcomes.append(_error_text(exc))
        self.timestamp = timestamp
        return outcomes

    def _mine(self, timestamp: int) -> None:
        self.protocol.advance(timestamp - self.protocol.timestamp, 1)

    # -- the opened-book cache -- #

    def code_fingerprint(self) -> str:
        """The model's source: the numpy mirror of the contracts."""
        digest = hashlib.sha256()
        for path in sorted(Path(protocol_module.__file__).parent.glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
        return digest.hexdigest()

    def dump_state(self) -> bytes:
        return pickle.dumps(self.protocol, protocol=pickle.HIGHEST_PROTOCOL)

    def load_state(self, data: bytes, timestamp: int) -> None:
        """The protocol pickled by `dump_state` (a file of the checkout's own cache, never one
        received from elsewhere: unpickling runs code)."""
        protocol = pickle.loads(data)
        if not isinstance(protocol, Protocol):
            raise TypeError(f"a cached model state holds a {type(protocol).__name__}, not a Protocol")
        self.protocol = protocol
        self._opening = OpeningTrades(protocol)
        self.timestamp = timestamp

    # -- a step -- #

    def execute(self, actions: Sequence[Action], timestamp: int) -> list[ActionResult]:
        self._mine(timestamp)
        self.timestamp = timestamp
        results = []
        for action in actions:
            before = len(self.protocol.events)
            try:
                self._apply(action)
                events = [(e.event_name, dict(e.args)) for e in self.protocol.events[before:]]
                results.append(ActionResult(action=action, ok=True, events=events))
            except ModelRevert as exc:
                results.append(ActionResult(action=action, ok=False, error=_error_text(exc)))
        self.protocol.events.clear()  # what matters was copied; the log would only grow
        return results

    def _apply(self, action: Action) -> None:
        p = self.protocol
        if isinstance(action, PushPrice):
            # The feed takes the answer; the router's update records what it decides (its breaker).
            p.feeds[action.market].submit(action.answer, sender=p.deployer)
            p.oracle.update(action.market)
        elif isinstance(action, SetDepth):
            p.set_depth(action.market, action.depth2pct)
        elif isinstance(action, Liquidate):
            p.liquidate_account(action.account_id, action.market, MAX_UINT, keeper=KEEPER)
        elif isinstance(action, Deleverage):
            p.deleverage_account(action.account_id, action.market, list(action.counterparties))
        elif isinstance(action, AddMargin):
            p.deposit_for(int(action.address, 16), action.amount, sender=p.deployer)
        elif isinstance(action, Trade):
            owner = int(action.address, 16)
            if action.isolated:
                p.open_isolated_position(owner, action.market, action.size_delta, _limit(action.size_delta))
            else:
                p.open_position(owner, action.market, action.size_delta, _limit(action.size_delta))
        else:
            raise TypeError(f"unknown action {action!r}")

    # -- reads -- #

    def scan(self) -> HealthScan:
        try:
            ids, values, mms, _ = self.protocol.health_all()
        except ModelRevert:
            # A refused price (breaker, staleness): as on chain, the accounts whose health can be
            # computed now, one by one; those holding the refused market are left out.
            rows = []
            for account in self.protocol.account_ids:
                try:
                    rows.append((account, *self.protocol.health(account)[:2]))
                except ModelRevert:
                    continue
            ids = [row[0] for row in rows]
            values, mms = [row[1] for row in rows], [row[2] for row in rows]
        keep = [i for i, account in enumerate(ids) if account != VAULT]
        return HealthScan(ids=[int(ids[i]) for i in keep], values=np.asarray(values, dtype=object)[keep],
                          mms=np.asarray(mms, dtype=object)[keep])

    def account_ids(self) -> list[int]:
        return self.protocol.account_ids_from(0, self.protocol.account_count())

    def account_states(self, account_ids: Sequence[int]) -> tuple[list[int], ...]:
        return self.protocol.account_states(account_ids)

    def health_of(self, account_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        values, mms, _ = self.protocol.health_of(account_ids)
        return list(values), list(mms)

    def tiers(self, market: int) -> tuple[list[int], list[int], list[int]]:
        return self.protocol.tiers_of(market)

    def open_markets(self, account_ids: Sequence[int]) -> list[list[int]]:
        masks, _ = self.protocol.market_masks_and_reserves(account_ids)
        return [[m for m in range(self.n_markets) if mask >> m & 1] for mask in masks]

    def positions(self, account_ids: Sequence[int], market: int) -> list[int]:
        return self.protocol.position_sizes(account_ids, market)

    def unrealized_pnls(self, pairs: Sequence[tuple[int, int]]) -> list[int]:
        return self.protocol.unrealized_pnls([a for a, _ in pairs], [m for _, m in pairs])

    def adl_required(self, pairs: Sequence[tuple[int, int]]) -> list[bool]:
        """adlRequiredMany per chunk of pairs, as the chain exchange asks it: a refused price fails
        its chunk's call, which answers False for every pair of the chunk."""
        answers = []
        for start in range(0, len(pairs), SCAN_CHUNK):
            chunk = pairs[start : start + SCAN_CHUNK]
            try:
                answers += liquidation_views.adl_required_many(
                    self.protocol.liquidator, [a for a, _ in chunk], [m for _, m in chunk]
                )
            except ModelRevert:
                answers += [False] * len(chunk)
        return answers

    def fund_reserves(self, account_ids: Sequence[int]) -> list[int]:
        return self.protocol.market_masks_and_reserves(account_ids)[1]

    def adl_ranking(self, market: int, bankrupt_side: int) -> list[int]:
        return list(liquidation_views.adl_ranking(self.protocol.liquidator, market, bankrupt_side)[0])

    def snapshot(self) -> Snapshot:
        views = self.protocol.market_views()
        prices, status = self.protocol.oracle.prices(list(range(self.n_markets)))
        try:
            vault_value = self.protocol.health(VAULT)[0]
        except ModelRevert:  # a refused price: the chain's health view reverts too
            vault_value = None
        return Snapshot(
            prices=prices,
            price_status=status,
            depth2pct=[v.depth2pct for v in views],
            long_open_interest=[v.long_open_interest for v in views],
            short_open_interest=[v.short_open_interest for v in views],
            vault_size=[v.vault_size for v in views],
            insurance_fund=self.protocol.insurance_fund,
            insurance_fund_reserved=self.protocol.insurance_fund_reserved,
            bad_debt=self.protocol.bad_debt,
            vault_value=vault_value,
            funding_index=[v.funding_index for v in views],
            funding_rate=[v.funding_rate for v in views],
            last_funding_time=[v.last_funding_time for v in views],
            social_loss_index=[v.social_loss_index for v in views],
            book_consumed=[v.book_consumed for v in views],
        )

    def balance_sheet(self) -> tuple[int, int, int]:
        return tuple(self.protocol.balance_sheet())

    def close(self) -> None:
        pass


def _limit(size: int) -> int:
    return MAX_UINT if size > 0 else 0


def _error_text(exc: ModelRevert) -> str:
    """The chain backend's form: `Name(arg=value, ...)`."""
    return f"{type(exc).__name__}({', '.join(f'{k}={v}' for k, v in exc.inputs.items())})"
