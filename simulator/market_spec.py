"""The market specification and the policy enums: what a scenario declares and both exchanges
(the contracts on anvil and the numpy model) build their markets from. Neutral ground: chain, model
and schema import it; it imports neither."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

from simulator.units import Number, wad


class BadDebtPolicy(IntEnum):
    """Mirrors the Solidity enum of contracts/interfaces/ILiquidationEngine.sol."""

    ADL = 0
    SOCIALIZE = 1
    NONE = 2


class AdlRanking(IntEnum):
    """enum AdlRanking (ILiquidationEngine.sol): docs/design.md §6.7."""

    PNL_LEVERAGE = 0
    PRO_RATA = 1
    QUEUE = 2
    CAPPED_PRO_RATA = 3
    HYPERLIQUID = 4
    MIN_OVERSHOOT = 5
    LEVERAGE_DRAIN = 6

    @property
    def whole_ranking(self) -> bool:
        """`deleverage` takes every eligible winner, listed by id (else a prefix of the ranking by score)."""
        return self in (AdlRanking.PRO_RATA, AdlRanking.CAPPED_PRO_RATA)

    @property
    def partial(self) -> bool:
        """`deleverage` takes a list whose winners hold less than the position (a partial ADL): the
        rankings by score but LEVERAGE_DRAIN, whose shares, as PRO_RATA's, are of the whole position."""
        return not self.whole_ranking and self is not AdlRanking.LEVERAGE_DRAIN


@dataclass(frozen=True)
class MarketSpec:
    """A market and its oracle feed. Ratios are fractions (0.1 = 10%); USD amounts in dollars."""

    name: str
    price: Number
    imr: Number = "0.1"
    mmr: Number = "0.05"
    liquidation_fee: Number = "0.01"
    keeper_share: Number = "0.1"
    depth2pct: Number = 370_000
    max_impact: Number = "0.1"
    max_open_interest: Number = 0
    max_funding_rate: Number = 0
    skew_scale: Number = 0
    match_band: Number = "0.01"
    # Smallest open position a user trade may leave, in USD at the oracle price (0 = none)
    min_position_notional: Number = 0
    heartbeat: int = 3600
    max_deviation: Number = 0
    cooldown: int = 0
    # Extra tiers above the first: (notional floor in USD, mmr)
    tiers: Sequence[tuple[Number, Number]] = ()
    # Liquidation rules (LiquidationEngine)
    slice_threshold: Number = 1_000_000
    slice_fraction: Number = "0.2"
    rate_limit_notional: Number = 0
    rate_limit_window: int = 0
    policy: BadDebtPolicy = BadDebtPolicy.ADL
    ranking: AdlRanking = AdlRanking.PNL_LEVERAGE

    def params(self) -> tuple:
        """MarketParams as the engine's struct tuple."""
        return (
            wad(self.imr),
            wad(self.mmr),
            wad(self.liquidation_fee),
            wad(self.keeper_share),
            wad(self.depth2pct),
            wad(self.max_impact),
            wad(self.max_open_interest),
            wad(self.max_funding_rate),
            wad(self.skew_scale),
            wad(self.match_band),
            wad(self.min_position_notional),
        )

    def liquidation_params(self) -> tuple:
        """LiquidationParams as the liquidation engine's struct tuple."""
        return (
            wad(self.slice_threshold),
            wad(self.slice_fraction),
            wad(self.rate_limit_notional),
            self.rate_limit_window,
            int(self.policy),
            int(self.ranking),
        )
