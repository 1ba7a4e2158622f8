"""The scenario file format: pydantic models of a scenario YAML file.

Every model forbids unknown keys and takes values strictly (``steps: "10"`` or ``steps: 10.0``
is an error, not 10), so a typo can never be silently ignored. Checks that need the whole file
(market names, the run's length) live in :meth:`Scenario._check_consistency`. Problems are raised
as pydantic custom errors of type ``perpsim`` whose context holds the human problem and the key
path below the failing model (``at``); :mod:`simulator.scenarios.loader` turns them into one
:class:`~simulator.scenarios.errors.ScenarioError` naming file, line and key path.

Conventions used throughout:

- steps are 0-based indices of the run (0 .. steps-1); the price path's row 0 is the initial price;
- windows (outages) are half-open, ``[start_step, end_step)``;
- volatilities and drifts are annualised (365-day year), ratios are fractions (0.1 = 10%);
- a relative move ``to: -0.12`` is measured from the market's initial ``price``, not compounded.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Optional, Union

import numpy as np
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from simulator.market_spec import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.scenarios.price_csv import PriceSeries, read_price_csv

PRICE_PATH_TYPES = ("scripted", "gbm", "bridge", "csv")

# On-chain defaults, read from MarketSpec so the file format and the deployment cannot drift apart.
_SPEC_DEFAULTS = {spec_field.name: spec_field.default for spec_field in dataclass_fields(MarketSpec)}


def _spec_default(name: str) -> float:
    """MarketSpec's default for a ratio or USD amount (given there as a string or int) as a float."""
    return float(Decimal(str(_SPEC_DEFAULTS[name])))


# ---------------------------------------------------------------------------------------------
# Error helpers


def fail(problem: str, *at: Union[str, int]) -> NoReturn:
    """Raises a validation problem `at` a key path relative to the model (or field) being checked."""
    raise PydanticCustomError("perpsim", "{problem}", {"problem": problem, "at": tuple(at)})


def did_you_mean(word: str, choices: list[str]) -> str:
    """`" (did you mean 'depth2pct'?)"` when a choice is close to `word`, else an empty string."""
    word, choices = str(word), [str(choice) for choice in choices]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        # A spelled-out or abbreviated key ("volatility" for "vol") is not "close" to difflib.
        close = [choice for choice in choices if min(len(choice), len(word)) >= 3
                 and (word.lower().startswith(choice.lower()) or choice.lower().startswith(word.lower()))]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_name(kind: str, name: str, known: list[str]) -> str:
    hint = did_you_mean(name, known)
    listing = ", ".join(known) if known else "none"
    return f"unknown {kind} '{name}'{hint}; known: {listing}"


# ---------------------------------------------------------------------------------------------
# What the contracts can represent

# The oracle answers with 8 decimals: a price below one unit of the last is 0, which the router refuses.
MIN_PRICE = 1e-8
# The oracle router's MAX_PRICE (type(uint128).max in WAD), in USD.
MAX_PRICE = (2**128 - 1) / 1e18
# The engine's MAX_DEPTH (1e36 WAD = 1e18 USD): the bound of a book's depth, and of every USD amount
# a scenario gives the engine (open-interest caps, tiers, liquidation thresholds, the population's
# sizes, the vault and the fund), so that products of two of them in WAD stay below 2^256.
MAX_USD = 1e18


def _price_problem(value: float) -> Optional[str]:
    """Why `value` (USD) cannot be a price on chain, or None."""
    if value < MIN_PRICE:
        return (f"must be at least {MIN_PRICE:g} USD (the oracle's resolution: 8 decimals; below it the "
                f"answer is 0), got {value:g}")
    if value > MAX_PRICE:
        return f"must be at most {MAX_PRICE:.4g} USD (the oracle router's MAX_PRICE), got {value:g}"
    return None


def _usd_problem(value: float) -> Optional[str]:
    if value > MAX_USD:
        return f"must be at most {MAX_USD:g} (the engine's bound on amounts, MAX_DEPTH: 1e36 in WAD), got {value:g}"
    return None


def _wad_problem(value: float) -> Optional[str]:
    """Why `value` cannot be sent to the contracts as an 18-decimal integer, or None."""
    exact = Decimal(repr(float(value))).scaleb(18)
    if exact != exact.to_integral_value():
        return f"has more than 18 decimals (the contracts' WAD), got {value!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Base model and value types

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
StepIndex = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class SchemaModel(BaseModel):
    """Base of every scenario model: unknown keys are errors (with a "did you mean"), values are
    taken strictly, NaN and infinity are refused, and instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # Checked here rather than left to extra="forbid" so the message can suggest the key the
        # author probably meant, and so one typo does not also report the key as missing.
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    hint = did_you_mean(key, known)
                    suffix = hint if hint else f"; expected one of: {', '.join(known)}"
                    fail(f"unknown key '{key}'{suffix}", str(key))
        return data


class StepWindow(SchemaModel):
    """Steps ``start_step <= t < end_step``."""

    start_step: StepIndex
    end_step: PositiveInt

    @model_validator(mode="after")
    def _ordered(self) -> "StepWindow":
        if self.end_step <= self.start_step:
            fail(f"must be after start_step ({self.start_step}), got {self.end_step}", "end_step")
        return self

    def contains(self, step: int) -> bool:
        return self.start_step <= step < self.end_step


# ---------------------------------------------------------------------------------------------
# Markets


class Market(SchemaModel):
    """A market and its oracle feed, as deployed on chain (see :class:`MarketSpec`).

    USD amounts in dollars, ratios as fractions; `heartbeat` and `cooldown` are the oracle
    router's (seconds of chain time), not the oracle agent's."""

    name: str = Field(min_length=1)
    price: PositiveFloat
    imr: float = Field(default=_spec_default("imr"), gt=0, le=1)
    mmr: float = Field(default=_spec_default("mmr"), ge=0)  # default imr / 2, see _default_mmr
    liquidation_fee: float = Field(default=_spec_default("liquidation_fee"), ge=0, lt=1)
    keeper_share: Fraction = _spec_default("keeper_share")
    depth2pct: PositiveFloat = _spec_default("depth2pct")
    max_impact: float = Field(default=_spec_default("max_impact"), gt=0, lt=1)
    max_open_interest: NonNegativeFloat = _spec_default("max_open_interest")
    max_funding_rate: float = Field(default=_spec_default("max_funding_rate"), ge=0, le=1)
    skew_scale: NonNegativeFloat = _spec_default("skew_scale")
    match_band: float = Field(default=_spec_default("match_band"), ge=0, lt=1)
    min_position_notional: NonNegativeFloat = _spec_default("min_position_notional")
    heartbeat: PositiveInt = _SPEC_DEFAULTS["heartbeat"]
    max_deviation: NonNegativeFloat = _spec_default("max_deviation")
    cooldown: StepIndex = _SPEC_DEFAULTS["cooldown"]
    tiers: list[list[float]] = Field(default_factory=list)
    slice_threshold: NonNegativeFloat = _spec_default("slice_threshold")
    slice_fraction: float = Field(default=_spec_default("slice_fraction"), gt=0, le=1)
    rate_limit_notional: NonNegativeFloat = _spec_default("rate_limit_notional")
    rate_limit_window: StepIndex = _SPEC_DEFAULTS["rate_limit_window"]
    policy: Literal["ADL", "SOCIALIZE", "NONE"] = _SPEC_DEFAULTS["policy"].name
    ranking: Literal["PNL_LEVERAGE", "PRO_RATA", "QUEUE", "CAPPED_PRO_RATA", "HYPERLIQUID", "MIN_OVERSHOOT",
                     "LEVERAGE_DRAIN"] = _SPEC_DEFAULTS["ranking"].name

    @model_validator(mode="before")
    @classmethod
    def _default_mmr(cls, data: Any) -> Any:
        # The maintenance ratio defaults to half the initial one; Decimal keeps 0.025 / 2 exact.
        if isinstance(data, dict) and "mmr" not in data:
            imr = data.get("imr")
            if isinstance(imr, (int, float)) and not isinstance(imr, bool) and math.isfinite(imr):
                data = {**data, "mmr": float(Decimal(repr(float(imr))) / 2)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Market":
        problem = _price_problem(self.price)
        if problem:
            fail(problem, "price")
        for key in ("depth2pct", "max_open_interest", "skew_scale", "min_position_notional", "slice_threshold",
                    "rate_limit_notional"):
            problem = _usd_problem(getattr(self, key))
            if problem:
                fail(problem, key)
        for key in ("imr", "mmr", "liquidation_fee", "keeper_share", "depth2pct", "max_impact", "max_open_interest",
                    "max_funding_rate", "skew_scale", "match_band", "min_position_notional", "max_deviation",
                    "slice_threshold",
                    "slice_fraction", "rate_limit_notional"):
            problem = _wad_problem(getattr(self, key))
            if problem:
                fail(problem, key)
        if len(self.name.encode()) > 32:
            fail(f"must fit in 32 bytes (it is stored as bytes32 on chain), got {len(self.name.encode())}", "name")
        if self.mmr > self.imr:
            fail(f"must not exceed imr ({self.imr}), got {self.mmr}", "mmr")
        if self.max_funding_rate > 0 and self.skew_scale == 0:
            fail("must be greater than 0 when max_funding_rate is set", "skew_scale")
        if self.rate_limit_notional > 0 and self.rate_limit_window == 0:
            fail("must be greater than 0 when rate_limit_notional is set", "rate_limit_window")
        previous_floor, previous_mmr = 0.0, self.mmr
        for index, tier in enumerate(self.tiers):
            if len(tier) != 2:
                fail(f"each tier is [notional floor in USD, mmr], got {tier}", "tiers", index)
            floor, mmr = tier
            if floor <= previous_floor:
                fail(f"floors must increase (and be above 0): {floor} is not above {previous_floor}", "tiers", index, 0)
            if not previous_mmr < mmr < 1:
                fail(f"tier mmr must increase and stay below 1: {mmr} is not in ({previous_mmr}, 1)", "tiers", index, 1)
            for position, value in enumerate(tier):
                problem = _usd_problem(value) if position == 0 else None
                problem = problem or _wad_problem(value)
                if problem:
                    fail(problem, "tiers", index, position)
            previous_floor, previous_mmr = floor, mmr
        return self

    @property
    def max_leverage(self) -> float:
        """The largest leverage the initial margin allows, 1 / imr."""
        return 1.0 / self.imr

    def to_market_spec(self) -> MarketSpec:
        """The on-chain market parameters (exact decimals: 0.025 is deployed as 0.025 WAD)."""

        def exact(value: float) -> Decimal:
            return Decimal(repr(float(value)))

        return MarketSpec(
            name=self.name,
            price=exact(self.price),
            imr=exact(self.imr),
            mmr=exact(self.mmr),
            liquidation_fee=exact(self.liquidation_fee),
            keeper_share=exact(self.keeper_share),
            depth2pct=exact(self.depth2pct),
            max_impact=exact(self.max_impact),
            max_open_interest=exact(self.max_open_interest),
            max_funding_rate=exact(self.max_funding_rate),
            skew_scale=exact(self.skew_scale),
            match_band=exact(self.match_band),
            min_position_notional=exact(self.min_position_notional),
            heartbeat=self.heartbeat,
            max_deviation=exact(self.max_deviation),
            cooldown=self.cooldown,
            tiers=tuple((exact(floor), exact(mmr)) for floor, mmr in self.tiers),
            slice_threshold=exact(self.slice_threshold),
            slice_fraction=exact(self.slice_fraction),
            rate_limit_notional=exact(self.rate_limit_notional),
            rate_limit_window=self.rate_limit_window,
            policy=BadDebtPolicy[self.policy],
            ranking=AdlRanking[self.ranking],
        )


# ---------------------------------------------------------------------------------------------
# Price paths


DRAW_KINDS = ("uniform", "normal", "choice")


class Draw(SchemaModel):
    """A shock size drawn afresh for every run (every path of a sweep) instead of a fixed number,
    so a Monte Carlo sweep samples a family of crashes:

    - ``{dist: uniform, low: -0.20, high: -0.08}``: uniform on [low, high];
    - ``{dist: normal, mean: -0.12, std: 0.03, low: -0.5, high: -0.01}``: normal, clipped to
      [low, high] (each bound optional unless the value needs it, e.g. `to` must stay above -1);
    - ``{dist: choice, values: [-0.08, -0.12, -0.31], weights: [0.5, 0.3, 0.2]}``: one of the
      values (weights optional, equal by default; they need not sum to 1).

    The draw is deterministic in the run's seed (see :func:`simulator.market.paths.sample_shocks`)."""

    dist: str
    low: Optional[float] = None
    high: Optional[float] = None
    mean: Optional[float] = None
    std: Optional[NonNegativeFloat] = None
    values: Optional[list[float]] = None
    weights: Optional[list[NonNegativeFloat]] = None

    @model_validator(mode="after")
    def _complete(self) -> "Draw":
        if self.dist not in DRAW_KINDS:
            fail(f"should be one of {', '.join(DRAW_KINDS)}, got {self.dist!r}{did_you_mean(self.dist, list(DRAW_KINDS))}",
                 "dist")
        allowed = {"uniform": {"low", "high"}, "normal": {"mean", "std", "low", "high"},
                   "choice": {"values", "weights"}}[self.dist]
        for key in ("low", "high", "mean", "std", "values", "weights"):
            if getattr(self, key) is not None and key not in allowed:
                fail(f"a {self.dist} draw takes {', '.join(sorted(allowed))}, not '{key}'", key)
        required = {"uniform": ("low", "high"), "normal": ("mean", "std"), "choice": ("values",)}[self.dist]
        for key in required:
            if getattr(self, key) is None:
                fail(f"a {self.dist} draw needs '{key}'")
        if self.low is not None and self.high is not None and not self.low < self.high:
            fail(f"must be above low ({self.low}), got {self.high}", "high")
        if self.dist == "normal" and self.mean is not None:
            if self.low is not None and self.mean < self.low or self.high is not None and self.mean > self.high:
                fail(f"the mean {self.mean} is outside [low, high] = [{self.low}, {self.high}]", "mean")
        if self.dist == "choice":
            if not self.values:
                fail("needs at least 1 value", "values")
            if self.weights is not None:
                if len(self.weights) != len(self.values):
                    fail(f"needs one weight per value ({len(self.values)}), got {len(self.weights)}", "weights")
                if sum(self.weights) <= 0:
                    fail("at least one weight must be above 0", "weights")
        return self

    def support(self) -> tuple[float, float]:
        """The smallest and largest value the draw can give (infinite for an unclipped normal)."""
        if self.dist == "choice":
            chosen = [v for v, w in zip(self.values, self.weights or [1.0] * len(self.values)) if w > 0]
            return min(chosen), max(chosen)
        if self.dist == "normal" and self.std == 0:
            return self.mean, self.mean
        return (self.low if self.low is not None else -math.inf, self.high if self.high is not None else math.inf)

    def sample(self, rng: np.random.Generator) -> float:
        if self.dist == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.dist == "normal":
            value = float(rng.normal(self.mean, self.std))
            low = self.low if self.low is not None else -math.inf
            high = self.high if self.high is not None else math.inf
            return min(max(value, low), high)
        weights = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.values), dtype=float)
        return float(self.values[int(rng.choice(len(self.values), p=weights / weights.sum()))])


def _number_or_draw_tag(value: Any) -> str:
    return "draw" if isinstance(value, (dict, Draw)) else "number"


def _NumberOrDraw(bounds: Any) -> Any:
    """A float within `bounds`, or a Draw (a mapping); only the matching branch's error is reported."""
    return Annotated[Union[Annotated[Annotated[float, bounds], Tag("number")], Annotated[Draw, Tag("draw")]],
                     Discriminator(_number_or_draw_tag)]


class _Target(SchemaModel):
    """A price to reach: `to` (a move relative to the market's initial price, -0.12 = 12% below)
    or `to_price` (an absolute USD price); exactly one of them. Either may be a :class:`Draw`,
    sampled per run."""

    to: Optional[_NumberOrDraw(Field(gt=-1))] = None
    to_price: Optional[_NumberOrDraw(Field(gt=0))] = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> "_Target":
        if (self.to is None) == (self.to_price is None):
            fail("give exactly one of 'to' (a move from the initial price, e.g. -0.12) or 'to_price' (a USD price)")
        for key, floor, what in (("to", -1.0, "a move of -1 (-100%) or less"), ("to_price", 0.0, "a price of 0 or less")):
            draw = getattr(self, key)
            if isinstance(draw, Draw) and not draw.support()[0] > floor:
                if draw.dist == "choice":
                    fail(f"every value must be above {floor:g}, got {draw.support()[0]:g}", key, "values")
                fail(f"this draw can give {what}: set low above {floor:g}", key, "low")
        return self

    @property
    def drawn(self) -> bool:
        """True when the target is a distribution, sampled per run."""
        return isinstance(self.to, Draw) or isinstance(self.to_price, Draw)

    def target_price(self, initial_price: float) -> float:
        if self.drawn:
            raise ValueError("a drawn target has no price until it is sampled (simulator.market.paths.sample_shocks)")
        return self.to_price if self.to_price is not None else initial_price * (1.0 + self.to)


class ScriptedLeg(_Target):
    """One straight leg in log-price: reach the target `duration_steps` after the previous leg ends."""

    duration_steps: PositiveInt


class ScriptedPath(SchemaModel):
    """Piecewise geometric moves: flat until `start_step`, then each leg moves the log-price
    linearly to its target (a constant return per step), then flat. `noise_vol` (annualised) adds
    Brownian noise pinned to zero at every leg's end, so the targets are still hit exactly."""

    type: Literal["scripted"]
    start_step: StepIndex = 0
    legs: list[ScriptedLeg] = Field(min_length=1)
    noise_vol: NonNegativeFloat = 0.0

    def knot_steps(self) -> list[int]:
        """The step at which each leg reaches its target."""
        ends, step = [], self.start_step
        for leg in self.legs:
            step += leg.duration_steps
            ends.append(step)
        return ends


class Jumps(SchemaModel):
    """Merton jumps: a Poisson number of jumps per step with `intensity` expected jumps per step,
    each adding a normal(`mean`, `std`) log-return."""

    intensity: Annotated[float, Field(ge=0, le=1)]
    mean: float = 0.0
    std: NonNegativeFloat = 0.0


class GbmPath(SchemaModel):
    """Geometric Brownian motion with annualised `vol` and `drift`, optional jumps. Markets listed
    in the scenario's `correlation` share correlated shocks."""

    type: Literal["gbm"]
    vol: NonNegativeFloat
    drift: float = 0.0
    jumps: Optional[Jumps] = None


class BridgePath(_Target):
    """A Brownian bridge in log-price from the initial price to the target at `at_step`, with
    annualised `vol`; after `at_step` a driftless random walk with the same vol."""

    type: Literal["bridge"]
    at_step: PositiveInt
    vol: NonNegativeFloat


class CsvPath(SchemaModel):
    """A historical replay: `file` holds ``timestamp,price`` rows (a path relative to the scenario
    file). Row times are resampled to steps by linear interpolation in price, the last price is
    held after the series ends. With `rescale` (default) prices are scaled so the first row equals
    the market's initial price, so a series replays its shape on any market."""

    type: Literal["csv"]
    file: str = Field(min_length=1)
    rescale: bool = True
    _series: Optional[PriceSeries] = PrivateAttr(default=None)

    @field_validator("file")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        base_dir = (info.context or {}).get("base_dir")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or Path.cwd()) / path
        return str(path.resolve())

    @model_validator(mode="after")
    def _read(self) -> "CsvPath":
        try:
            self._series = read_price_csv(self.file)
        except ValueError as exc:
            fail(str(exc), "file")
        return self

    @property
    def series(self) -> PriceSeries:
        if self._series is None:  # pragma: no cover - set by validation
            self._series = read_price_csv(self.file)
        return self._series


PricePath = Annotated[Union[ScriptedPath, GbmPath, BridgePath, CsvPath], Field(discriminator="type")]


class Correlation(SchemaModel):
    """Correlation of the GBM shocks of `markets` (all with gbm paths), in that order."""

    markets: list[str] = Field(min_length=2)
    matrix: list[list[float]]

    @model_validator(mode="after")
    def _valid_matrix(self) -> "Correlation":
        size = len(self.markets)
        seen: dict[str, int] = {}
        for index, name in enumerate(self.markets):
            if name in seen:
                fail(f"'{name}' is listed twice (also markets[{seen[name]}])", "markets", index)
            seen[name] = index
        if len(self.matrix) != size:
            fail(f"must have {size} rows (one per market in correlation.markets), got {len(self.matrix)}", "matrix")
        for row_index, row in enumerate(self.matrix):
            if len(row) != size:
                fail(f"each row must have {size} entries, got {len(row)}", "matrix", row_index)
        for i in range(size):
            if self.matrix[i][i] != 1:
                fail(f"the diagonal must be 1 (a market is perfectly correlated with itself), got {self.matrix[i][i]}",
                     "matrix", i, i)
            for j in range(size):
                value = self.matrix[i][j]
                if not -1 <= value <= 1:
                    fail(f"correlations must be between -1 and 1, got {value}", "matrix", i, j)
                if abs(value - self.matrix[j][i]) > 1e-12:
                    fail(f"the matrix must be symmetric: [{i}][{j}] is {value} but [{j}][{i}] is {self.matrix[j][i]}",
                         "matrix", i, j)
        try:
            self.cholesky()  # the factorisation the run uses: a matrix accepted here factors there
        except np.linalg.LinAlgError:
            smallest = float(np.linalg.eigvalsh(np.asarray(self.matrix, dtype=float)).min())
            fail(
                "the matrix is not positive definite (its Cholesky factorisation fails; smallest eigenvalue "
                f"{smallest:.4g}): the pairwise correlations contradict each other, e.g. A~B and A~C "
                "high but B~C strongly negative",
                "matrix",
            )
        return self

    def cholesky(self) -> np.ndarray:
        """Lower-triangular L with L @ L.T equal to the matrix (Cholesky-Banachiewicz in Python
        floats, each sum in index order: LAPACK's goes through the BLAS kernel chosen for the CPU,
        whose rounding may differ from machine to machine). np.linalg.LinAlgError, as LAPACK's,
        when a pivot is not positive: the matrix is not positive definite."""
        a = [[float(x) for x in row] for row in self.matrix]
        n = len(a)
        lower = [[0.0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1):
                rest = a[i][j]
                for k in range(j):
                    rest -= lower[i][k] * lower[j][k]
                if i == j and not rest > 0:
                    raise np.linalg.LinAlgError("Matrix is not positive definite")
                lower[i][j] = math.sqrt(rest) if i == j else rest / lower[j][j]
        return np.array(lower)


# ---------------------------------------------------------------------------------------------
# Liquidity (external market: depth and market makers)


class LiquiditySettings(SchemaModel):
    """Depth and market makers of one market's external book.

    Depth = market depth2pct x `base_factor`, times `withdraw_factor` while market makers are
    gone: during `outages` (exchange-API outages) and once annualised realised volatility over
    `vol_window_steps` reaches `vol_threshold` (until it stays below for `return_after_steps`).
    Liquidated notional q moves the external price by `impact_coefficient` x q / depth (0.02 is
    the on-chain depth curve: selling depth2pct moves the price 2%); that residual impact decays
    with `resilience_half_life_steps`. With `taker_impact`, the trades of the whale and of closing
    or panicking traders push the price the same way (the vault that takes them lays them off on
    the external books); without it only liquidations do."""

    base_factor: PositiveFloat = 1.0
    withdraw_factor: Annotated[float, Field(gt=0, le=1)] = 0.1
    vol_threshold: Optional[PositiveFloat] = None
    vol_window_steps: Annotated[int, Field(ge=2)] = 60
    return_after_steps: PositiveInt = 300
    outages: list[StepWindow] = Field(default_factory=list)
    resilience_half_life_steps: PositiveFloat = 60.0
    impact_coefficient: NonNegativeFloat = 0.02
    taker_impact: bool = False


class LiquidityOverride(SchemaModel):
    """Per-market values replacing the global liquidity settings (same meaning and limits)."""

    base_factor: Optional[PositiveFloat] = None
    withdraw_factor: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    vol_threshold: Optional[PositiveFloat] = None
    vol_window_steps: Optional[Annotated[int, Field(ge=2)]] = None
    return_after_steps: Optional[PositiveInt] = None
    outages: Optional[list[StepWindow]] = None
    resilience_half_life_steps: Optional[PositiveFloat] = None
    impact_coefficient: Optional[NonNegativeFloat] = None
    taker_impact: Optional[bool] = None


class Liquidity(LiquiditySettings):
    """Global liquidity settings, with per-market overrides under `markets`."""

    markets: dict[str, LiquidityOverride] = Field(default_factory=dict)

    def for_market(self, name: str) -> LiquiditySettings:
        """The settings of market `name`: global values replaced by the keys its override sets
        (an explicit `vol_threshold: null` disables the volatility trigger for that market)."""
        values = {key: getattr(self, key) for key in LiquiditySettings.model_fields}
        override = self.markets.get(name)
        if override is not None:
            for key in override.model_fields_set:
                value = getattr(override, key)
                # null means "not overridden", except that it switches the volatility trigger off.
                if value is not None or key == "vol_threshold":
                    values[key] = value
        return LiquiditySettings.model_validate(values)


# ---------------------------------------------------------------------------------------------
# Oracle agent


class OracleSettings(SchemaModel):
    """Chainlink-style push policy: an update when `heartbeat_steps` have passed since the last
    one, or when the observed price deviates from the last pushed one by more than
    `deviation_threshold`; the observed price is the external price `lag_steps` ago."""

    heartbeat_steps: PositiveInt = 3600
    deviation_threshold: NonNegativeFloat = 0.005
    lag_steps: StepIndex = 0


class OracleOverride(SchemaModel):
    heartbeat_steps: Optional[PositiveInt] = None
    deviation_threshold: Optional[NonNegativeFloat] = None
    lag_steps: Optional[StepIndex] = None


class OracleOutage(StepWindow):
    """No pushes during the window, for `markets` (all markets when omitted)."""

    markets: Optional[list[str]] = None

    def covers(self, market: str, step: int) -> bool:
        return self.contains(step) and (self.markets is None or market in self.markets)


class Wick(SchemaModel):
    """A single-venue spike: the reported price of `market` is multiplied by 1 + `move` during
    steps ``step <= t < step + duration_steps`` (the push rules still decide what is pushed)."""

    market: str
    step: StepIndex
    move: float = Field(gt=-1)
    duration_steps: PositiveInt = 1

    @property
    def end_step(self) -> int:
        return self.step + self.duration_steps


class Oracle(OracleSettings):
    outages: list[OracleOutage] = Field(default_factory=list)
    wick: Optional[Wick] = None
    markets: dict[str, OracleOverride] = Field(default_factory=dict)

    def for_market(self, name: str) -> OracleSettings:
        values = {key: getattr(self, key) for key in OracleSettings.model_fields}
        override = self.markets.get(name)
        if override is not None:
            for key in override.model_fields_set:
                if getattr(override, key) is not None:
                    values[key] = getattr(override, key)
        return OracleSettings.model_validate(values)


# ---------------------------------------------------------------------------------------------
# Population


class LeverageDistribution(SchemaModel):
    """Gross leverage (notional / collateral) per account: lognormal with `median` and `sigma`
    (of the log), clipped to [1, cap]. The cap is `max_fraction_of_limit` of the largest leverage
    the account's markets allow (1 / weighted imr), so opening fills with slippage still pass the
    initial-margin check; `max` caps it further."""

    distribution: Literal["lognormal"] = "lognormal"
    median: Annotated[float, Field(ge=1)] = 5.0
    sigma: NonNegativeFloat = 0.5
    max: Optional[Annotated[float, Field(ge=1)]] = None
    max_fraction_of_limit: Annotated[float, Field(gt=0, le=1)] = 0.95


class NotionalDistribution(SchemaModel):
    """Gross position notional per account in USD: lognormal with `median` and `sigma`, clipped
    to [min, max]."""

    distribution: Literal["lognormal"] = "lognormal"
    median: PositiveFloat = 10_000.0
    sigma: NonNegativeFloat = 1.0
    min: PositiveFloat = 10.0
    max: Optional[PositiveFloat] = None

    @model_validator(mode="after")
    def _ordered(self) -> "NotionalDistribution":
        if self.max is not None and self.max < self.min:
            fail(f"must not be below min ({self.min}), got {self.max}", "max")
        return self


class VaultFunding(SchemaModel):
    """The vault's collateral: `collateral_usd`, or when omitted `margin_multiple` times the
    initial margin of the position it takes against the population (at least `min_usd`)."""

    collateral_usd: Optional[PositiveFloat] = None
    margin_multiple: Annotated[float, Field(ge=1)] = 2.0
    min_usd: PositiveFloat = 1_000_000.0


class InsuranceFunding(SchemaModel):
    """The insurance fund: `usd`, or when omitted `fraction_of_notional` of the population's
    gross notional (sum of |position notional| over all accounts)."""

    usd: Optional[NonNegativeFloat] = None
    fraction_of_notional: NonNegativeFloat = 0.005


class WhaleTier(SchemaModel):
    """A few large accounts on top of the notional distribution: `count` accounts (the same count
    at any population size) that together hold `notional_share` of the population's gross
    notional, in equal sizes. Their margin mode, markets and leverage are drawn like every other
    account's; their sides are not: the first floor(count x `long_fraction`) are long, the others
    short. With `reference_accounts` the exchange is the same at any size, so each whale is too:
    its size does not shrink as N grows while the largest draws of the distribution do."""

    count: PositiveInt
    notional_share: Annotated[float, Field(gt=0, lt=1)]


class PopulationSpec(SchemaModel):
    """Trader accounts drawn from distributions (see simulator.population).

    Every account takes a side (long with probability `long_fraction`). A share `cross_fraction`
    uses cross margin and spreads its notional over 1..`markets_per_account` markets picked by
    `market_weights` (equal when omitted); the others are isolated, one market each. A share
    `hedged_fraction` of the cross accounts is hedged: its main market on its side, the others
    opposite, for equal notional.

    With `reference_accounts`, the notional distribution describes an exchange of that many
    accounts, and a run with N accounts scales every account's size (and so its collateral) by
    reference_accounts / N: more accounts sample the same exchange more finely instead of making it
    bigger on the same books. `whales` adds a tail of a few large accounts (`WhaleTier`) whose
    share of the notional does not depend on N."""

    accounts: PositiveInt = 1000
    reference_accounts: Optional[PositiveInt] = None
    long_fraction: Fraction = 0.5
    leverage: LeverageDistribution = Field(default_factory=LeverageDistribution)
    notional: NotionalDistribution = Field(default_factory=NotionalDistribution)
    cross_fraction: Fraction = 0.7
    markets_per_account: PositiveInt = 2
    market_weights: Optional[dict[str, PositiveFloat]] = None
    hedged_fraction: Fraction = 0.0
    vault: VaultFunding = Field(default_factory=VaultFunding)
    insurance_fund: InsuranceFunding = Field(default_factory=InsuranceFunding)
    whales: Optional[WhaleTier] = None


# ---------------------------------------------------------------------------------------------
# Agents


class Whale(SchemaModel):
    """One large position opened at `step` (e.g. a short just before the shock)."""

    market: str
    notional: PositiveFloat
    side: Literal["long", "short"]
    step: StepIndex


class Momentum(SchemaModel):
    """Traders who join the move: `fraction` times the population's account count of further
    accounts, each opening one position on `side` at a step drawn uniformly in [`start_step`,
    `end_step`), on one market drawn by `population.market_weights`, with a notional drawn from
    `population.notional` (scaled by `reference_accounts` like the population's) at `leverage` times
    its collateral (at most `population.leverage.max_fraction_of_limit` / the market's imr). During
    an exchange-API outage they wait and open when it ends; they hold until liquidated or the run
    ends (e.g. shorts that chase a crash and are caught by its rebound)."""

    fraction: Annotated[float, Field(gt=0, le=1)]
    side: Literal["long", "short"]
    start_step: StepIndex
    end_step: PositiveInt
    leverage: Annotated[float, Field(ge=1)] = 10.0


class Traders(SchemaModel):
    """Per account and step: add margin with `add_margin_prob`, close with `close_prob`; close
    everything once the account has lost `panic_threshold` of its starting equity."""

    add_margin_prob: Fraction = 0.0
    close_prob: Fraction = 0.0
    panic_threshold: Optional[Annotated[float, Field(gt=0, le=1)]] = None


class KeeperSettings(SchemaModel):
    """How keepers act. `leg_order`: which of a liquidatable cross account's positions they
    liquidate first within a block: `market_id` (the markets' order in this file), or
    `largest_loss` (the leg with the largest unrealised loss at the oracle price first).
    `latency_steps`: steps from the health scan keepers act on to the block their transactions
    land in; 1 is the next block (bots on working APIs), more is slow or overloaded keepers, who
    act on stale health and send what the block before already did (the failures are logged).
    `account_order`: the order in which they serve the block's liquidatable accounts: `registry`
    (the order accounts registered), or `health`: accounts still above zero first, the least value /
    maintenance margin first, then those below zero (docs/design.md §7.5). It matters when the own
    book cannot take a block's liquidations: the later fills walk what the earlier ones left.
    `max_adl_counterparties`: the most winners one `deleverage` transaction lists (none: no limit,
    one transaction per ADL); a longer ADL is sent as several partial ADLs in the same block, under
    the rankings that take them (not PRO_RATA, CAPPED_PRO_RATA or LEVERAGE_DRAIN, whose lists go
    whole). 100 winners cost about 10M gas (docs/design.md §6.7)."""

    leg_order: Literal["market_id", "largest_loss"] = "market_id"
    latency_steps: PositiveInt = 1
    account_order: Literal["registry", "health"] = "registry"
    max_adl_counterparties: Optional[PositiveInt] = None


class Agents(SchemaModel):
    whale: Optional[Whale] = None
    momentum: Optional[Momentum] = None
    traders: Optional[Traders] = None
    keepers: KeeperSettings = Field(default_factory=KeeperSettings)


# ---------------------------------------------------------------------------------------------
# Sweep


class Sweep(SchemaModel):
    """What `perpsim sweep` varies when the command line names nothing: each key is a setting's
    dotted path in this file (``markets.*.policy``, ``population.cross_fraction``,
    ``markets.BTC.max_deviation``), each value the list of values to try. Every combination runs,
    for `seeds` seeds counted up from the scenario's, in `mode` (default model: sweeps are many
    runs; chain for what only the contracts have, such as the oracle router's circuit breaker)."""

    vary: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)
    seeds: PositiveInt = 1
    mode: Literal["chain", "model"] = "model"


# ---------------------------------------------------------------------------------------------
# Scenario


class Scenario(SchemaModel):
    """A whole scenario file. Markets without a price path keep their initial price."""

    name: str
    description: str = ""
    steps: PositiveInt
    step_seconds: PositiveInt = 1
    seed: StepIndex = 0
    accounts: Optional[PositiveInt] = None
    mode: Literal["chain", "model"] = "chain"
    markets: list[Market] = Field(min_length=1)
    price_paths: dict[str, PricePath] = Field(default_factory=dict)
    correlation: Optional[Correlation] = None
    liquidity: Liquidity = Field(default_factory=Liquidity)
    oracle: Oracle = Field(default_factory=Oracle)
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    agents: Agents = Field(default_factory=Agents)
    sweep: Optional[Sweep] = None

    _source: Optional[str] = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _usable_as_folder_name(cls, value: str) -> str:
        # The name becomes part of output folder names, so it must be safe there.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            fail(f"use letters, digits, '-', '_' and '.' only (it names output folders), got {value!r}")
        return value

    # -- derived views -------------------------------------------------------------------------

    @property
    def source(self) -> Optional[str]:
        """The file the scenario was loaded from, if any."""
        return self._source

    @property
    def market_names(self) -> tuple[str, ...]:
        return tuple(market.name for market in self.markets)

    @property
    def account_count(self) -> int:
        """`accounts`, or the population's size when the scenario does not set it."""
        return self.accounts if self.accounts is not None else self.population.accounts

    def market(self, name: str) -> Market:
        for market in self.markets:
            if market.name == name:
                return market
        raise KeyError(name)

    def market_index(self, name: str) -> int:
        return self.market_names.index(name)

    def market_specs(self) -> list[MarketSpec]:
        """The on-chain parameters of every market, in market-id order."""
        return [market.to_market_spec() for market in self.markets]

    # -- checks across the file ----------------------------------------------------------------

    @model_validator(mode="after")
    def _check_consistency(self) -> "Scenario":
        names = [market.name for market in self.markets]
        first_index: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first_index:
                fail(f"duplicate market name '{name}' (also markets[{first_index[name]}])", "markets", index, "name")
            first_index[name] = index

        def known_market(name: str, *at: Union[str, int]) -> None:
            if name not in first_index:
                fail(_unknown_name("market", name, names), *at)

        last_step = self.steps - 1
        run = f"the run's last step is {last_step} (steps: {self.steps})"

        def within_run(step: int, what: str, *at: Union[str, int]) -> None:
            if step > last_step:
                fail(f"{what} {step} is outside the run: {run}", *at)

        def window_within_run(window: StepWindow, *at: Union[str, int]) -> None:
            within_run(window.start_step, "start_step", *at, "start_step")
            if window.end_step > self.steps:
                fail(f"end_step {window.end_step} is outside the run: a window ends at most at step {self.steps} "
                     f"(end_step is exclusive; steps: {self.steps})",
                     *at, "end_step")

        for name, path in self.price_paths.items():
            known_market(name, "price_paths", name)
            if isinstance(path, ScriptedPath):
                within_run(path.start_step, "start_step", "price_paths", name, "start_step")
                for leg_index, end in enumerate(path.knot_steps()):
                    if end > last_step:
                        fail(f"the leg ends at step {end}, outside the run: {run}",
                             "price_paths", name, "legs", leg_index, "duration_steps")
            elif isinstance(path, BridgePath):
                within_run(path.at_step, "at_step", "price_paths", name, "at_step")

        if self.correlation is not None:
            for index, name in enumerate(self.correlation.markets):
                known_market(name, "correlation", "markets", index)
                if not isinstance(self.price_paths.get(name), GbmPath):
                    fail(f"market '{name}' has no gbm price path; only gbm paths can be correlated",
                         "correlation", "markets", index)

        for index, window in enumerate(self.liquidity.outages):
            window_within_run(window, "liquidity", "outages", index)
        for name, override in self.liquidity.markets.items():
            known_market(name, "liquidity", "markets", name)
            for index, window in enumerate(override.outages or ()):
                window_within_run(window, "liquidity", "markets", name, "outages", index)

        for index, outage in enumerate(self.oracle.outages):
            window_within_run(outage, "oracle", "outages", index)
            for market_index, name in enumerate(outage.markets or ()):
                known_market(name, "oracle", "outages", index, "markets", market_index)
        for name in self.oracle.markets:
            known_market(name, "oracle", "markets", name)
        wick = self.oracle.wick
        if wick is not None:
            known_market(wick.market, "oracle", "wick", "market")
            within_run(wick.step, "step", "oracle", "wick", "step")
            if wick.end_step > self.steps:
                fail(f"the wick lasts until step {wick.end_step - 1}, outside the run: {run}",
                     "oracle", "wick", "duration_steps")

        population = self.population
        for name in population.market_weights or {}:
            known_market(name, "population", "market_weights", name)
        if "markets_per_account" in population.model_fields_set and population.markets_per_account > len(names):
            fail(f"cannot exceed the number of markets ({len(names)}), got {population.markets_per_account}",
                 "population", "markets_per_account")
        if population.hedged_fraction > 0 and (len(names) < 2 or population.markets_per_account < 2):
            fail("hedged accounts need two markets: set markets_per_account >= 2 with at least two markets",
                 "population", "hedged_fraction")

        if population.whales is not None and population.whales.count >= self.account_count:
            fail(f"must be below the number of accounts ({self.account_count}), got {population.whales.count}",
                 "population", "whales", "count")

        whale = self.agents.whale
        if whale is not None:
            known_market(whale.market, "agents", "whale", "market")
            within_run(whale.step, "step", "agents", "whale", "step")
        momentum = self.agents.momentum
        if momentum is not None:
            within_run(momentum.start_step, "start_step", "agents", "momentum", "start_step")
            if not momentum.start_step < momentum.end_step <= self.steps:
                fail(f"must be after start_step ({momentum.start_step}) and at most the run's {self.steps} steps, "
                     f"got {momentum.end_step}", "agents", "momentum", "end_step")

        # What the contracts can represent (the module's MIN_PRICE, MAX_PRICE, MAX_USD).
        amounts = [(population.notional.median, ("population", "notional", "median")),
                   (population.notional.min, ("population", "notional", "min")),
                   (population.notional.max, ("population", "notional", "max")),
                   (population.vault.collateral_usd, ("population", "vault", "collateral_usd")),
                   (population.vault.min_usd, ("population", "vault", "min_usd")),
                   (population.insurance_fund.usd, ("population", "insurance_fund", "usd")),
                   (whale.notional if whale is not None else None, ("agents", "whale", "notional"))]
        for value, at in amounts:
            problem = _usd_problem(value) if value is not None else None
            if problem:
                fail(problem, *at)
        for market in self.markets:
            factor = self.liquidity.for_market(market.name).base_factor
            if market.depth2pct * factor > MAX_USD:
                override = self.liquidity.markets.get(market.name)
                at = (("liquidity", "markets", market.name, "base_factor")
                      if override is not None and override.base_factor is not None else ("liquidity", "base_factor"))
                fail(f"{market.name}'s depth2pct x base_factor ({market.depth2pct:g} x {factor:g}) must be at most "
                     f"{MAX_USD:g} USD (the engine's MAX_DEPTH)", *at)
        for name, path in self.price_paths.items():
            targets = path.legs if isinstance(path, ScriptedPath) else [path] if isinstance(path, BridgePath) else []
            initial = self.market(name).price
            for leg_index, target in enumerate(targets):
                at = ("price_paths", name) + (("legs", leg_index) if isinstance(path, ScriptedPath) else ())
                for key in ("to", "to_price"):
                    value = getattr(target, key)
                    if value is None:
                        continue
                    low, high = value.support() if isinstance(value, Draw) else (value, value)
                    prices = [initial * (1 + x) if key == "to" else x for x in (low, high) if math.isfinite(x)]
                    for price in prices:
                        problem = _price_problem(price)
                        if problem:
                            fail(f"the target price {problem.split(', got')[0]}, got {price:g}", *at, key)
        return self
