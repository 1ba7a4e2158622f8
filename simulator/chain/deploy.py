"""Deployment of the perpsim contracts through Ape: one place, used by tests, ape scripts and the
simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from simulator.market_spec import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.units import Number, oracle_answer, usdc, wad

__all__ = ["AdlRanking", "BadDebtPolicy", "MarketSpec", "System", "deploy_system"]


@dataclass
class System:
    deployer: Any
    vault: Any
    usdc: Any
    router: Any
    engine: Any
    liquidator: Any
    feeds: list = field(default_factory=list)
    markets: list = field(default_factory=list)

    def set_price(self, market_id: int, price: Number, sender=None) -> None:
        """Submits a new oracle answer and lets the router record it (breaker trips included)."""
        self.feeds[market_id].submit(oracle_answer(price), sender=sender or self.deployer)
        self.router.update(market_id, sender=sender or self.deployer)

    def fund_insurance(self, amount_usd: Number) -> None:
        amount = usdc(amount_usd)
        self.usdc.mint(self.deployer, amount, sender=self.deployer)
        self.usdc.approve(self.engine, amount, sender=self.deployer)
        self.engine.depositInsurance(amount, sender=self.deployer)

    def fund(self, account, amount_usd: Number) -> None:
        """Mints collateral to `account` and deposits it into its cross account."""
        amount = usdc(amount_usd)
        self.usdc.mint(account, amount, sender=self.deployer)
        self.usdc.approve(self.engine, amount, sender=account)
        self.engine.deposit(amount, sender=account)


def deploy_system(
    project,
    deployer,
    vault,
    markets: Sequence[MarketSpec],
    vault_collateral_usd: Number = 10_000_000,
    insurance_fund_usd: Number = 0,
) -> System:
    """Deploys token, feeds, router, engine and liquidation engine; creates the markets; funds the
    vault and the insurance fund.

    The deployer is owner of everything, updater of every feed, operator and market maker."""
    token = deployer.deploy(project.MockUSDC)
    router = deployer.deploy(project.OracleRouter)
    engine = deployer.deploy(project.PerpEngine, token, router)
    liquidator = deployer.deploy(project.LiquidationEngine, engine)
    engine.setRole(engine.LIQUIDATOR_ROLE(), liquidator, True, sender=deployer)
    system = System(deployer=deployer, vault=vault, usdc=token, router=router, engine=engine, liquidator=liquidator)
    for market_id, spec in enumerate(markets):
        feed = deployer.deploy(project.PriceFeed, 8, f"{spec.name} / USD")
        feed.setUpdater(deployer, True, sender=deployer)
        feed.submit(oracle_answer(spec.price), sender=deployer)
        router.setMarket(market_id, feed, spec.heartbeat, wad(spec.max_deviation), spec.cooldown, sender=deployer)
        engine.createMarket(spec.name.encode().ljust(32, b"\0"), spec.params(), sender=deployer)
        if spec.tiers:
            floors = [0] + [wad(floor) for floor, _ in spec.tiers]
            mmrs = [wad(spec.mmr)] + [wad(mmr) for _, mmr in spec.tiers]
            engine.setTiers(market_id, floors, mmrs, sender=deployer)
        liquidator.setLiquidationParams(market_id, spec.liquidation_params(), sender=deployer)
        system.feeds.append(feed)
        system.markets.append(spec)
    engine.setRole(engine.OPERATOR_ROLE(), deployer, True, sender=deployer)
    engine.setRole(engine.MARKET_MAKER_ROLE(), deployer, True, sender=deployer)
    engine.setVault(vault, sender=deployer)
    if vault_collateral_usd:
        system.fund(vault, vault_collateral_usd)
    if insurance_fund_usd:
        system.fund_insurance(insurance_fund_usd)
    return system
