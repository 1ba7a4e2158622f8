"""Trader populations: N accounts drawn from a scenario's distributions, and the vault and
insurance fund sized for them.

How an account is drawn (all vectorised, in this order, from one generator
``Generator(PCG64(SeedSequence(seed, spawn_key=(POPULATION_STREAM,))))``):

1. margin mode: cross with probability ``cross_fraction``, else isolated (one market);
2. number of markets: cross accounts 1..``markets_per_account`` uniformly (at least 2 when
   hedged); a cross account is hedged with probability ``hedged_fraction``;
3. which markets: drawn without replacement with probability proportional to ``market_weights``
   (Gumbel top-k); the first drawn is the account's main market;
4. side: long with probability ``long_fraction``;
5. gross notional: lognormal(median, sigma), clipped to [min, max], then times
   ``reference_accounts`` / N when the spec sets ``reference_accounts``; with ``whales``, the first
   ``whales.count`` accounts are resized to hold ``whales.notional_share`` of the whole gross
   notional together (equal sizes, not clipped), the first floor(count x ``long_fraction``) of
   them long and the others short (their side drawn in 4 is replaced);
6. split: in proportion to the weights of the markets held, all on the account's side; a hedged
   account puts half on its main market and the other half, opposite, on the others;
7. leverage (gross notional / collateral): lognormal(median, sigma), clipped to [1, cap], cap =
   ``max_fraction_of_limit`` / (notional-weighted imr of the markets held), and ``max``;
8. collateral = gross notional / leverage.

So every account opens within its initial margin: sum |notional| * imr <= collateral.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from simulator.scenarios.schema import Market, Momentum, PopulationSpec, Scenario
from simulator.units import portable_exp, portable_log

# Distinguish the population's random streams from other uses of the same scenario seed.
POPULATION_STREAM = 2
MOMENTUM_STREAM = 6


@dataclass(frozen=True)
class Population:
    """Accounts as arrays: index a is an account, index m a market (scenario order)."""

    markets: tuple[str, ...]
    collateral_usd: np.ndarray  # (accounts,)
    notional_usd: np.ndarray  # (accounts, markets), signed: long > 0, short < 0
    isolated: np.ndarray  # (accounts,) bool: one isolated position instead of a cross account
    hedged: np.ndarray  # (accounts,) bool: long some markets, short others
    leverage: np.ndarray  # (accounts,) gross notional / collateral at opening
    seed: int

    @property
    def n_accounts(self) -> int:
        return self.collateral_usd.shape[0]

    @property
    def gross_notional_usd(self) -> np.ndarray:
        """Per account, sum of |notional| over its markets."""
        return np.abs(self.notional_usd).sum(axis=1)

    @property
    def long_notional_usd(self) -> np.ndarray:
        """Per market, notional of long positions."""
        return np.clip(self.notional_usd, 0, None).sum(axis=0)

    @property
    def short_notional_usd(self) -> np.ndarray:
        """Per market, notional of short positions (positive)."""
        return -np.clip(self.notional_usd, None, 0).sum(axis=0)

    @property
    def net_notional_usd(self) -> np.ndarray:
        """Per market, the traders' net position; the vault holds the opposite."""
        return self.notional_usd.sum(axis=0)

    @property
    def long_share(self) -> float:
        """Share of all traders' notional that is long (0.87 = the book is 87% long)."""
        longs = self.long_notional_usd.sum()
        return float(longs / (longs + self.short_notional_usd.sum()))

    def markets_held(self) -> np.ndarray:
        """(accounts, markets) bool: the account has a position in the market."""
        return self.notional_usd != 0

    def sizes(self, prices: Sequence[float]) -> np.ndarray:
        """Signed position sizes in units of the asset at `prices` (one per market)."""
        return self.notional_usd / np.asarray(prices, dtype=float)


@dataclass(frozen=True)
class BackstopFunds:
    """USD to deposit for the vault (counterparty of the population) and the insurance fund."""

    vault_collateral_usd: float
    insurance_fund_usd: float


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * portable_exp(sigma * rng.standard_normal(n))


def generate_population(
    spec: PopulationSpec, markets: Sequence[Market], n: Optional[int] = None, seed: int = 0
) -> Population:
    """Draws `n` accounts (default ``spec.accounts``) over `markets`; the same seed gives the
    same arrays."""
    n = spec.accounts if n is None else n
    if n < 1:
        raise ValueError(f"a population needs at least one account, got {n}")
    names = tuple(market.name for market in markets)
    n_markets = len(names)
    imr = np.array([market.imr for market in markets], dtype=float)
    weights = np.array(
        [(spec.market_weights or {}).get(name, 0.0 if spec.market_weights else 1.0) for name in names], dtype=float
    )
    if not np.any(weights > 0):
        raise ValueError("population.market_weights gives no weight to any market of the scenario")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(POPULATION_STREAM,))))

    # 1-2. margin mode, number of markets, hedging
    isolated = rng.random(n) >= spec.cross_fraction
    most_markets = min(spec.markets_per_account, int(np.count_nonzero(weights)))
    market_count = rng.integers(1, most_markets + 1, size=n)
    hedged = ~isolated & (rng.random(n) < spec.hedged_fraction) & (most_markets >= 2)
    market_count = np.where(hedged, np.maximum(market_count, 2), market_count)
    market_count = np.where(isolated, 1, market_count)

    # 3. markets held: weighted sampling without replacement by the Gumbel top-k trick (the k
    # largest of log w + Gumbel noise), vectorised over accounts. Zero weights never get picked.
    with np.errstate(divide="ignore"):
        keys = portable_log(weights)[None, :] + rng.gumbel(size=(n, n_markets))
    order = np.argsort(-keys, axis=1)
    rank = np.argsort(order, axis=1)
    held = rank < market_count[:, None]
    main_market = order[:, 0]

    # 4-5. side and gross notional
    side = np.where(rng.random(n) < spec.long_fraction, 1.0, -1.0)
    notional_spec = spec.notional
    gross = np.clip(
        _lognormal(rng, notional_spec.median, notional_spec.sigma, n), notional_spec.min, notional_spec.max or np.inf
    )
    if spec.reference_accounts is not None:
        gross = gross * (spec.reference_accounts / n)
    whales = spec.whales
    if whales is not None:
        if n <= whales.count:
            raise ValueError(f"population.whales.count ({whales.count}) must be below the number of accounts ({n})")
        # The same share of the notional at any N: a tail that does not depend on how many draws reach it.
        share = whales.notional_share
        gross[:whales.count] = share / (whales.count * (1 - share)) * gross[whales.count:].sum()
        longs = math.floor(whales.count * spec.long_fraction)
        side[:whales.count] = np.where(np.arange(whales.count) < longs, 1.0, -1.0)

    # 6. split over the markets held
    held_weights = np.where(held, weights[None, :], 0.0)
    shares = held_weights / held_weights.sum(axis=1, keepdims=True)
    signs = np.repeat(side[:, None], n_markets, axis=1)
    if np.any(hedged):
        is_main = np.zeros((n, n_markets), dtype=bool)
        is_main[np.arange(n), main_market] = True
        hedge_legs = np.where(is_main, 0.0, held_weights)
        hedge_total = hedge_legs.sum(axis=1, keepdims=True)
        hedge_shares = 0.5 * hedge_legs / np.where(hedge_total > 0, hedge_total, 1.0)  # unhedged rows: unused
        hedged_shares = np.where(is_main, 0.5, hedge_shares)
        shares = np.where(hedged[:, None], hedged_shares, shares)
        signs = np.where(hedged[:, None] & ~is_main, -signs, signs)

    # 7-8. leverage within the initial margin, and the collateral that gives it
    effective_imr = (shares * imr[None, :]).sum(axis=1)
    leverage_spec = spec.leverage
    cap = leverage_spec.max_fraction_of_limit / effective_imr
    if leverage_spec.max is not None:
        cap = np.minimum(cap, leverage_spec.max)
    leverage = np.clip(_lognormal(rng, leverage_spec.median, leverage_spec.sigma, n), 1.0, np.maximum(cap, 1.0))
    collateral = gross / leverage

    return Population(
        markets=names,
        collateral_usd=collateral,
        notional_usd=np.where(held, signs * shares * gross[:, None], 0.0),  # no -0.0 where nothing is held
        isolated=isolated,
        hedged=hedged,
        leverage=leverage,
        seed=seed,
    )


@dataclass(frozen=True)
class MomentumGroup:
    """Accounts that open one position each during the run (`agents.momentum`), as arrays."""

    market: np.ndarray  # (accounts,) market index
    notional_usd: np.ndarray  # (accounts,) signed: long > 0, short < 0
    collateral_usd: np.ndarray  # (accounts,)
    step: np.ndarray  # (accounts,) the step each opens at

    @property
    def n_accounts(self) -> int:
        return self.market.shape[0]


def generate_momentum(momentum: Momentum, spec: PopulationSpec, markets: Sequence[Market], n: int,
                      seed: int = 0) -> MomentumGroup:
    """round(`momentum.fraction` x `n`) accounts, for a population of `n` (its own random stream,
    so the population's draws do not change): market by the population's weights, notional from
    its distribution (scaled like it), collateral for `momentum.leverage` within the market's
    initial margin, and a step uniform in the window."""
    count = int(round(momentum.fraction * n))
    names = [market.name for market in markets]
    imr = np.array([market.imr for market in markets], dtype=float)
    weights = np.array([(spec.market_weights or {}).get(name, 0.0 if spec.market_weights else 1.0) for name in names])
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(MOMENTUM_STREAM,))))
    market = rng.choice(len(names), size=count, p=weights / weights.sum())
    gross = np.clip(_lognormal(rng, spec.notional.median, spec.notional.sigma, count), spec.notional.min,
                    spec.notional.max or np.inf)
    if spec.reference_accounts is not None:
        gross = gross * (spec.reference_accounts / n)
    leverage = np.minimum(momentum.leverage, spec.leverage.max_fraction_of_limit / imr[market])
    step = rng.integers(momentum.start_step, momentum.end_step, size=count)
    side = 1.0 if momentum.side == "long" else -1.0
    return MomentumGroup(market=market, notional_usd=side * gross, collateral_usd=gross / np.maximum(leverage, 1.0),
                         step=step)


def size_vault_and_insurance_fund(
    population: Population, spec: PopulationSpec, markets: Sequence[Market]
) -> BackstopFunds:
    """The vault's collateral and the insurance fund for `population`.

    Unless the scenario fixes them: the vault gets ``margin_multiple`` times the initial margin of
    the position it takes against the traders (``sum |net notional| * imr``), at least
    ``min_usd``; the insurance fund gets ``fraction_of_notional`` of the traders' gross notional."""
    imr = np.array([market.imr for market in markets], dtype=float)
    vault = spec.vault
    if vault.collateral_usd is not None:
        vault_usd = vault.collateral_usd
    else:
        vault_margin = float((np.abs(population.net_notional_usd) * imr).sum())
        vault_usd = max(vault.min_usd, vault.margin_multiple * vault_margin)
    fund = spec.insurance_fund
    if fund.usd is not None:
        insurance_usd = fund.usd
    else:
        insurance_usd = fund.fraction_of_notional * float(population.gross_notional_usd.sum())
    # Whole cents: the deposits go through a 6-decimal token.
    return BackstopFunds(vault_collateral_usd=round(vault_usd, 2), insurance_fund_usd=round(insurance_usd, 2))


def population_for_scenario(
    scenario: Scenario, seed: Optional[int] = None, accounts: Optional[int] = None
) -> Population:
    """The population of a scenario: its spec, markets, account count and seed (overridable)."""
    return generate_population(
        scenario.population,
        scenario.markets,
        n=scenario.account_count if accounts is None else accounts,
        seed=scenario.seed if seed is None else seed,
    )
