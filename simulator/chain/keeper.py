"""The reference keeper over Ape (simulator/agents/reference_keeper.py's loop with the contracts as
its backend): finds liquidatable accounts, liquidates them, and sends the canonical ADL ranking
when the waterfall needs ADL. One Ape call per transaction: right for tests and scripts; the
simulator's hot loop batches JSON-RPC instead."""

from __future__ import annotations

from ape.exceptions import ContractLogicError

from simulator.agents import reference_keeper
from simulator.agents.reference_keeper import MAX_UINT, KeeperReport
from simulator.chain.deploy import AdlRanking

__all__ = ["MAX_UINT", "ApeKeeper", "KeeperReport", "canonical_counterparties", "open_positions", "run_keepers"]


class ApeKeeper:
    """The deployed contracts (a `System`) as a keeper backend; transactions are sent by `keeper`."""

    reverts = (ContractLogicError,)

    def __init__(self, system, keeper=None):
        self.system, self.keeper = system, keeper
        self.engine, self.liquidator = system.engine, system.liquidator

    def error_name(self, exc: BaseException) -> str:
        return exc.message

    def open_positions(self) -> list[tuple[int, int]]:
        """(account id, market id) of every open position, the vault excluded, in registration order."""
        engine = self.engine
        vault_id = int(self.system.vault.address, 16)
        found = []
        for index in range(engine.accountCount()):
            account_id = engine.accountIds(index)
            if account_id == vault_id:
                continue
            mask = engine.marketMaskOf(account_id)
            found += [(account_id, m) for m in range(engine.marketCount()) if mask >> m & 1]
        return found

    def is_liquidatable(self, account_id: int) -> bool:
        return self.engine.isAccountLiquidatable(account_id)

    def position_size(self, account_id: int, market_id: int) -> int:
        return self.engine.positionOf(account_id, market_id)[0]

    def adl_required(self, account_id: int, market_id: int) -> bool:
        return self.liquidator.adlRequired(account_id, market_id)

    def adl_ranking(self, market_id: int, side: int) -> list[int]:
        ranking, _ = self.liquidator.adlRanking(market_id, side)
        return ranking

    def pro_rata(self, market_id: int) -> bool:
        return AdlRanking(self.liquidator.liquidationParams(market_id).ranking).whole_ranking

    def leverage_drain(self, market_id: int) -> bool:
        return AdlRanking(self.liquidator.liquidationParams(market_id).ranking) is AdlRanking.LEVERAGE_DRAIN

    def account_value(self, account_id: int) -> int:
        return self.engine.health(account_id)[0]

    def liquidate(self, account_id: int, market_id: int) -> str | None:
        try:
            self.liquidator.liquidateAccount(account_id, market_id, MAX_UINT, sender=self.keeper)
        except ContractLogicError as exc:
            return self.error_name(exc)
        return None

    def deleverage(self, account_id: int, market_id: int, counterparties: list[int]) -> str | None:
        try:
            self.liquidator.deleverageAccount(account_id, market_id, counterparties, sender=self.keeper)
        except ContractLogicError as exc:
            return self.error_name(exc)
        return None


def open_positions(system) -> list[tuple[int, int]]:
    """(account id, market id) of every open position, the vault excluded."""
    return ApeKeeper(system).open_positions()


def run_keepers(system, keeper, max_rounds: int = 50) -> KeeperReport:
    """Liquidates until nothing liquidatable is left that can be acted on."""
    return reference_keeper.run_keepers(ApeKeeper(system, keeper), max_rounds)


def canonical_counterparties(system, market_id: int, account_id: int, ranking) -> list[int]:
    """The prefix of the canonical ranking that covers the bankrupt position (PNL_LEVERAGE), the
    prefix the draining reaches (LEVERAGE_DRAIN), or all of it (PRO_RATA)."""
    return reference_keeper.canonical_counterparties(ApeKeeper(system), market_id, account_id, ranking)
