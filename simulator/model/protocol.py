"""The whole protocol in one object: the engine (perp_engine.PerpEngine) with the chain it carries
(state.ChainState: blocks, time, oracle prices, events, atomic transactions), and the contracts
deployed beside it on that chain: the liquidation engine (liquidation_engine.LiquidationEngine,
`liquidator`, as `simulator.chain.deploy.System.liquidator`), which holds the engine and calls it,
and, with ``oracle_router=True``, the oracle router (``oracle``) and its feeds.

`Protocol` is the engine (its functions and storage are the protocol's own); the liquidation
engine's external functions are forwarded to `liquidator` by name, each listed in the class body
(`liquidate`, `deleverage_account`, `adl_ranking`, ...), so that callers drive the whole system
through one object. Its storage and internals are read on `liquidator` itself.

State, by where it lives on chain:

- PerpEngine: ``account_ids`` (registration order), collateral and positions (object arrays over
  [account row, market]: size, open notional, funding index, social-loss index), ``markets`` (params,
  funding index, last funding time, open interest, book block and consumption, social-loss index),
  ``tiers``, ``insurance_fund``, ``bad_debt``, ``vault``, ``token_balance``.
- LiquidationEngine (``liquidator``): liquidation params per market (``liquidation_params``),
  ``configured``, ``rate_windows``, ``owner``.
- OracleRouter and PriceFeed (oracle_router, when built with ``oracle_router=True``): ``oracle``
  (per market the feed, heartbeat, breaker and its state) and ``feeds``.
- ChainState: ``prices`` (without a router: what the engine reads, set by ``set_price``),
  ``block_number``, ``timestamp``, ``events``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from simulator.market_spec import MarketSpec
from simulator.model.liquidation_engine import LiquidationEngine, LiquidationParams
from simulator.model.oracle_router import OracleRouter, PriceFeed
from simulator.model.perp_engine import MarketParams, PerpEngine
from simulator.units import ORACLE_DECIMALS, Number, oracle_answer, usdc, wad

# Default addresses of the model's actors (any int below 2**160 works).
DEPLOYER = 0xDE9107E4
VAULT = 0x7A0017


def _on_liquidator(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` of LiquidationEngine, called on the protocol's liquidation engine (`liquidator`)."""

    @functools.wraps(function)
    def call(self: "Protocol", *args, **kwargs):
        return function(self.liquidator, *args, **kwargs)

    return call


class Protocol(PerpEngine):
    """PerpEngine (with the chain it carries) + the LiquidationEngine over it + the oracle router. See
    the module docstring."""

    # The liquidation engine's external functions (ILiquidationEngine), forwarded to `liquidator`.
    set_liquidation_params = _on_liquidator(LiquidationEngine.set_liquidation_params)
    liquidation_params = _on_liquidator(LiquidationEngine.liquidation_params)
    liquidate = _on_liquidator(LiquidationEngine.liquidate)
    liquidate_isolated = _on_liquidator(LiquidationEngine.liquidate_isolated)
    liquidate_account = _on_liquidator(LiquidationEngine.liquidate_account)
    deleverage = _on_liquidator(LiquidationEngine.deleverage)
    deleverage_account = _on_liquidator(LiquidationEngine.deleverage_account)
    adl_required = _on_liquidator(LiquidationEngine.adl_required)
    adl_ranking = _on_liquidator(LiquidationEngine.adl_ranking)
    adl_required_many = _on_liquidator(LiquidationEngine.adl_required_many)
    position_sizes = _on_liquidator(LiquidationEngine.position_sizes)
    market_masks_and_reserves = _on_liquidator(LiquidationEngine.market_masks_and_reserves)
    unrealized_pnls = _on_liquidator(LiquidationEngine.unrealized_pnls)

    def __init__(
        self,
        *,
        deployer: int = DEPLOYER,
        token_decimals: int = 6,
        block_number: int | None = None,
        timestamp: int | None = None,
        auto_mine: bool = False,
        block_time: int = 1,
    ):
        chain = {"auto_mine": auto_mine, "block_time": block_time}
        if block_number is not None:
            chain["block_number"] = block_number
        if timestamp is not None:
            chain["timestamp"] = timestamp
        super().__init__(token_decimals=token_decimals, deployer=deployer, **chain)
        self.deployer = deployer
        self.liquidator = LiquidationEngine(self, owner=deployer)
        self.feeds: list[PriceFeed] = []  # with an oracle router: each market's feed

    @classmethod
    def from_specs(
        cls,
        markets: Sequence[MarketSpec],
        *,
        vault: int = VAULT,
        vault_collateral_usd: Number = 10_000_000,
        insurance_fund_usd: Number = 0,
        oracle_router: bool = False,
        **options,
    ) -> "Protocol":
        """The model of `simulator.chain.deploy.deploy_system`: markets with their prices, tiers and
        liquidation rules, the vault set and funded, the insurance fund funded. With
        `oracle_router`, each market's price comes from a feed through the router's mirror (its
        heartbeat, breaker and cooldown from the spec), as on chain; without, from `set_price`."""
        protocol = cls(**options)
        if oracle_router:
            protocol.oracle = OracleRouter(protocol, owner=protocol.deployer)
        for spec in markets:
            protocol.add_market(spec)
        protocol.set_vault(vault)
        if vault_collateral_usd:
            protocol.fund(vault, vault_collateral_usd)
        if insurance_fund_usd:
            protocol.fund_insurance(insurance_fund_usd)
        return protocol

    def add_market(self, spec: MarketSpec) -> int:
        """createMarket + setTiers + setLiquidationParams from a MarketSpec, and its first price (as
        the router serves an 8-decimal answer: scaled exactly to WAD)."""
        market_id = self.create_market(spec.name, MarketParams.from_spec(spec))
        if not isinstance(self.oracle, OracleRouter):
            self.set_price(market_id, oracle_answer(spec.price) * 10 ** (18 - ORACLE_DECIMALS))
        else:
            feed = PriceFeed(self, ORACLE_DECIMALS, f"{spec.name} / USD", owner=self.deployer)
            feed.submit(oracle_answer(spec.price), sender=self.deployer)
            self.oracle.set_market(market_id, feed, spec.heartbeat, wad(spec.max_deviation), spec.cooldown,
                                   sender=self.deployer)
            self.feeds.append(feed)
        if spec.tiers:
            floors = [0] + [wad(floor) for floor, _ in spec.tiers]
            mmrs = [wad(spec.mmr)] + [wad(mmr) for _, mmr in spec.tiers]
            self.set_tiers(market_id, floors, mmrs)
        self.set_liquidation_params(market_id, LiquidationParams.from_spec(spec))
        return market_id

    def set_price(self, market_id: int, price: int) -> None:
        """Sets the WAD price of `market_id`: without an oracle router, the price the engine reads;
        with one, the feed's new answer (8 decimals: `price` must be a whole answer) and the
        router's `update`, as the oracle's keeper does (the breaker may refuse it)."""
        if not isinstance(self.oracle, OracleRouter):
            super().set_price(market_id, price)
            return
        answer, rest = divmod(int(price), 10 ** (18 - ORACLE_DECIMALS))
        if rest or answer <= 0:
            raise ValueError(f"price {price} is not a positive {ORACLE_DECIMALS}-decimal oracle answer in WAD")
        self.feeds[market_id].submit(answer, sender=self.deployer)
        self.oracle.update(market_id)

    def fund(self, account: int, amount_usd: Number) -> None:
        """Deposits `amount_usd` dollars into `account`'s cross account (System.fund)."""
        self.deposit(account, usdc(amount_usd))

    def fund_insurance(self, amount_usd: Number) -> None:
        """Adds `amount_usd` dollars to the insurance fund (System.fund_insurance)."""
        self.deposit_insurance(usdc(amount_usd), sender=self.deployer)
