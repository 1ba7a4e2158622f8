"""The reference keeper: one Python call per decision and per transaction, for tests and scripts
(the simulator's hot loop batches instead: simulator/agents/keepers.Keepers).

One loop (`run_keepers`) over a small backend protocol (`KeeperBackend`), with three backends:
the contracts through Ape (simulator/chain/keeper.ApeKeeper), the numpy model (`ModelKeeper`,
below) and the tests' Twin, which acts on both in lockstep and compares every read and outcome
(tests/twin/harness.TwinKeeper). Nothing here imports Ape.

A round goes through the backend's open positions in its order; for each one whose account is
still liquidatable and whose position is still open, it liquidates (the whole position, a slice at
a time as the contract allows), or deleverages against the canonical ranking when `adlRequired`.
Rounds repeat until one makes no progress; what reverted in the last round is `stalled`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as Interface
from typing import Sequence

from simulator.agents.keepers import adl_counterparties
from simulator.market_spec import AdlRanking
from simulator.model.errors import ModelRevert

MAX_UINT = 2**256 - 1


@dataclass
class KeeperReport:
    liquidations: int = 0
    adl_calls: int = 0
    stalled: list = field(default_factory=list)  # (account id, market id, error name) of the last round
    rounds: int = 0


@dataclass(frozen=True)
class Attempt:
    """One decision on (account, market) and what became of it."""

    account_id: int
    market_id: int
    adl: bool  # deleverageAccount was sent (False: liquidateAccount, or a read of the decision reverted)
    error: str | None = None  # the revert's error name; None: the transaction went through


class KeeperBackend(Interface):
    """What the loop needs of an exchange. Reads may raise one of `reverts` (a view the contract
    would revert, e.g. on a refused price); `liquidate` and `deleverage` send one transaction and
    return None when it went through, else the revert's error name."""

    reverts: tuple[type[BaseException], ...]

    def error_name(self, exc: BaseException) -> str: ...

    def open_positions(self) -> list[tuple[int, int]]:
        """(account id, market id) pairs a round goes through, in order, the vault excluded."""
        ...

    def is_liquidatable(self, account_id: int) -> bool: ...

    def position_size(self, account_id: int, market_id: int) -> int: ...

    def adl_required(self, account_id: int, market_id: int) -> bool: ...

    def adl_ranking(self, market_id: int, side: int) -> list[int]:
        """The canonical ranking's ids (adlRanking) of the winners against a bankrupt `side`."""
        ...

    def pro_rata(self, market_id: int) -> bool:
        """The market's ADL ranking takes every winner, by id (PRO_RATA, CAPPED_PRO_RATA; else a
        prefix of the ranking by score)."""
        ...

    def leverage_drain(self, market_id: int) -> bool:
        """The market's ADL ranking is LEVERAGE_DRAIN (its list's length needs the winners' values)."""
        ...

    def account_value(self, account_id: int) -> int:
        """The account's value at the oracle prices (engine.health's first field)."""
        ...

    def liquidate(self, account_id: int, market_id: int) -> str | None: ...

    def deleverage(self, account_id: int, market_id: int, counterparties: list[int]) -> str | None: ...


def canonical_counterparties(backend: KeeperBackend, market_id: int, account_id: int, ranking: Sequence[int]) -> list[int]:
    """The prefix of the canonical ranking that covers the bankrupt position (PNL_LEVERAGE), the
    prefix the draining reaches (LEVERAGE_DRAIN), or all of it (PRO_RATA)."""
    size = abs(backend.position_size(account_id, market_id))
    pro_rata = backend.pro_rata(market_id)
    sizes = [] if pro_rata else [backend.position_size(c, market_id) for c in ranking]
    values = [backend.account_value(c) for c in ranking] if backend.leverage_drain(market_id) else None
    return adl_counterparties(list(ranking), sizes, size, pro_rata, values)


def act(backend: KeeperBackend, account_id: int, market_id: int) -> Attempt | None:
    """One decision on (account, market) and its transaction; None when there is nothing to act on
    (the account is not liquidatable, or the position closed earlier in the round)."""
    if not backend.is_liquidatable(account_id):
        return None
    side = backend.position_size(account_id, market_id)
    if side == 0:
        return None
    adl = False
    try:
        if backend.adl_required(account_id, market_id):
            adl = True
            ranking = backend.adl_ranking(market_id, side)
            counterparties = canonical_counterparties(backend, market_id, account_id, ranking)
            error = backend.deleverage(account_id, market_id, counterparties)
        else:
            error = backend.liquidate(account_id, market_id)
    except backend.reverts as exc:
        error = backend.error_name(exc)
    return Attempt(account_id, market_id, adl, error)


def run_keepers(backend: KeeperBackend, max_rounds: int = 50) -> KeeperReport:
    """Liquidates until nothing liquidatable is left that can be acted on."""
    report = KeeperReport()
    for report.rounds in range(1, max_rounds + 1):
        progressed = False
        report.stalled = []
        for account_id, market_id in backend.open_positions():
            attempt = act(backend, account_id, market_id)
            if attempt is None:
                continue
            if attempt.error is not None:
                # Rate limits, liquidity voids, no ADL counterparty: the position waits.
                report.stalled.append((account_id, market_id, attempt.error))
                continue
            progressed = True
            if attempt.adl:
                report.adl_calls += 1
            else:
                report.liquidations += 1
        if not progressed:
            break
    return report


class ModelKeeper:
    """The model (`simulator.model.Protocol`) as a keeper backend. A round goes through the accounts
    the model's vectorised screen finds liquidatable at its start (`liquidatable_accounts`), each
    one's open positions in market order: an account that becomes liquidatable during a round waits
    for the next one (the contracts' backend goes through every open position)."""

    reverts = (ModelRevert,)

    def __init__(self, protocol, keeper: int | None = None):
        self.protocol = protocol
        self.keeper = keeper

    def error_name(self, exc: BaseException) -> str:
        return type(exc).__name__

    def open_positions(self) -> list[tuple[int, int]]:
        protocol = self.protocol
        found = []
        for account_id in protocol.liquidatable_accounts():
            if account_id == protocol.vault:
                continue
            mask = protocol.market_mask_of(account_id)
            found += [(account_id, m) for m in range(protocol.market_count()) if mask >> m & 1]
        return found

    def is_liquidatable(self, account_id: int) -> bool:
        return self.protocol.is_account_liquidatable(account_id)

    def position_size(self, account_id: int, market_id: int) -> int:
        return self.protocol.position_of(account_id, market_id)[0]

    def adl_required(self, account_id: int, market_id: int) -> bool:
        return self.protocol.adl_required(account_id, market_id)

    def adl_ranking(self, market_id: int, side: int) -> list[int]:
        return list(self.protocol.adl_ranking(market_id, side)[0])

    def pro_rata(self, market_id: int) -> bool:
        return AdlRanking(self.protocol.liquidation_params(market_id).ranking).whole_ranking

    def leverage_drain(self, market_id: int) -> bool:
        return self.protocol.liquidation_params(market_id).ranking == AdlRanking.LEVERAGE_DRAIN

    def account_value(self, account_id: int) -> int:
        return int(self.protocol.health(account_id)[0])

    def liquidate(self, account_id: int, market_id: int) -> str | None:
        try:
            self.protocol.liquidate_account(account_id, market_id, MAX_UINT, keeper=self.keeper)
        except self.reverts as exc:
            return self.error_name(exc)
        return None

    def deleverage(self, account_id: int, market_id: int, counterparties: list[int]) -> str | None:
        try:
            self.protocol.deleverage_account(account_id, market_id, counterparties)
        except self.reverts as exc:
            return self.error_name(exc)
        return None
