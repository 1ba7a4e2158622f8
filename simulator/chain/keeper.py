"""A reference keeper over Ape: finds liquidatable accounts, liquidates them, and sends the
canonical ADL ranking when the waterfall needs ADL. One Ape call per transaction: right for tests
and scripts; the simulator's hot loop batches JSON-RPC instead."""

from __future__ import annotations

from dataclasses import dataclass, field

from ape.exceptions import ContractLogicError

from simulator.agents.keepers import adl_counterparties
from simulator.chain.deploy import AdlRanking

MAX_UINT = 2**256 - 1


@dataclass
class KeeperReport:
    liquidations: int = 0
    adl_calls: int = 0
    stalled: list = field(default_factory=list)  # (account id, market id, error name)
    rounds: int = 0


def open_positions(system) -> list[tuple[int, int]]:
    """(account id, market id) of every open position, the vault excluded."""
    engine = system.engine
    vault_id = int(system.vault.address, 16)
    found = []
    for index in range(engine.accountCount()):
        account_id = engine.accountIds(index)
        if account_id == vault_id:
            continue
        mask = engine.marketMaskOf(account_id)
        found += [(account_id, m) for m in range(engine.marketCount()) if mask >> m & 1]
    return found


def run_keepers(system, keeper, max_rounds: int = 50) -> KeeperReport:
    """Liquidates until nothing liquidatable is left that can be acted on."""
    report = KeeperReport()
    engine, liquidator = system.engine, system.liquidator
    for report.rounds in range(1, max_rounds + 1):
        progressed = False
        report.stalled = []
        for account_id, market_id in open_positions(system):
            if not engine.isAccountLiquidatable(account_id):
                continue
            if engine.positionOf(account_id, market_id)[0] == 0:
                continue
            try:
                if liquidator.adlRequired(account_id, market_id):
                    side = engine.positionOf(account_id, market_id)[0]
                    ranking, _ = liquidator.adlRanking(market_id, side)
                    counterparties = canonical_counterparties(system, market_id, account_id, ranking)
                    liquidator.deleverageAccount(account_id, market_id, counterparties, sender=keeper)
                    report.adl_calls += 1
                else:
                    liquidator.liquidateAccount(account_id, market_id, MAX_UINT, sender=keeper)
                    report.liquidations += 1
                progressed = True
            except ContractLogicError as exc:
                # Rate limits, liquidity voids, no ADL counterparty: the position waits.
                report.stalled.append((account_id, market_id, exc.message))
        if not progressed:
            break
    return report


def canonical_counterparties(system, market_id: int, account_id: int, ranking) -> list[int]:
    """The prefix of the canonical ranking that covers the bankrupt position (PNL_LEVERAGE), or all
    of it (PRO_RATA)."""
    engine = system.engine
    size = abs(engine.positionOf(account_id, market_id)[0])
    pro_rata = system.liquidator.liquidationParams(market_id).ranking == AdlRanking.PRO_RATA
    sizes = [] if pro_rata else [engine.positionOf(c, market_id)[0] for c in ranking]
    return adl_counterparties(list(ranking), sizes, size, pro_rata)
