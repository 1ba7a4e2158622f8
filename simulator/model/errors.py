"""Reverts of the numpy model, named and shaped like the Solidity custom errors.

Every error the model raises for a rejected input derives from `ModelRevert` (itself a
`simulator.errors.PerpsimError`). Each leaf has the name of a Solidity custom error and carries its
arguments as attributes with the Solidity argument names, so a test can compare a model revert with
a chain revert field by field (``exc.accountId``, ``exc.inputs == {...}``).

Not modelled: `Unauthorized` (roles), `TransferFailed` (the token always moves), `Reentrancy`.
"""

from __future__ import annotations

from typing import Any

from simulator.errors import PerpsimError

# Panic codes of Solidity's built-in `Panic(uint256)`.
PANIC_ARITHMETIC = 0x11
PANIC_DIVISION_BY_ZERO = 0x12


class ModelRevert(PerpsimError):
    """A call the contracts would revert. The model's state is left as it was before the call."""

    fields: tuple[str, ...] = ()

    def __init__(self, *args: Any):
        if len(args) != len(self.fields):
            raise TypeError(f"{type(self).__name__} takes {len(self.fields)} arguments {self.fields}, got {len(args)}")
        self.inputs = dict(zip(self.fields, args))
        for name, value in self.inputs.items():
            setattr(self, name, value)
        shown = ", ".join(f"{name}={value}" for name, value in self.inputs.items())
        summary = (type(self).__doc__ or "").strip().splitlines()[0] if type(self).__doc__ else ""
        super().__init__(f"{type(self).__name__}({shown}): {summary}")

    def __reduce__(self):
        # Rebuild from the Solidity arguments (Exception's default would pass the message).
        return (type(self), tuple(self.inputs.values()))


# FixedPointMath.sol / Solidity built-ins


class IntOverflow(ModelRevert):
    """A value does not fit in int256."""

    fields = ("value",)


class Panic(ModelRevert):
    """Solidity's built-in Panic: checked arithmetic under/overflow (0x11) or division by zero (0x12)."""

    fields = ("code",)


# DepthCurve.sol


class BookExhausted(ModelRevert):
    """The fill would walk the book past its end."""

    fields = ("marketId", "impact", "maxImpact")


# OracleRouter.sol and PriceFeed.sol (simulator/model/oracle_router.py). Without a router, the
# model raises only InvalidPrice, for a price that was never set.


class InvalidPrice(ModelRevert):
    """The market's answer is not a usable price (<= 0, too large, or none yet)."""

    fields = ("marketId", "answer")


class StalePrice(ModelRevert):
    """The market's answer is older than its heartbeat."""

    fields = ("marketId", "updatedAt", "nowTs", "heartbeat")


class BreakerTripped(ModelRevert):
    """The market's circuit breaker is cooling down."""

    fields = ("marketId", "until")


class DeviationUnconfirmed(ModelRevert):
    """The answer moved more than the breaker allows from the last accepted price."""

    fields = ("marketId", "lastAccepted", "answer")


class NotOwner(ModelRevert):
    """Only the owner may call this."""

    fields = ("caller",)


class NotPendingOwner(ModelRevert):
    """Only the address ownership was offered to may accept it."""

    fields = ("caller", "pendingOwner")


class NotUpdater(ModelRevert):
    """Only an updater may submit answers to this feed."""

    fields = ("caller",)


class NoAnswer(ModelRevert):
    """The feed has no round yet."""


class ZeroAddress(ModelRevert):
    """The zero address is not allowed here."""


class InvalidFeed(ModelRevert):
    """The feed is not a contract."""

    fields = ("feed",)


class InvalidHeartbeat(ModelRevert):
    """A heartbeat of 0 is not allowed."""

    fields = ("heartbeat",)


class InvalidMaxDeviation(ModelRevert):
    """The breaker's deviation must be below 100%."""

    fields = ("maxDeviation",)


class UnsupportedDecimals(ModelRevert):
    """The feed has more than 18 decimals."""

    fields = ("decimals",)


# IPerpEngine.sol


class ZeroAmount(ModelRevert):
    """An amount or size of zero where a non-zero one is required."""


class UnknownMarket(ModelRevert):
    """No market has this id."""

    fields = ("marketId",)


class InvalidParameter(ModelRevert):
    """A parameter is out of its range."""

    fields = ("name", "value")


class InvalidTier(ModelRevert):
    """Tier `index` is not above the previous tier (floors and ratios must increase)."""

    fields = ("index", "floor", "mmr")


class InsufficientCollateral(ModelRevert):
    """The account holds less collateral than the amount asked for."""

    fields = ("accountId", "collateral", "amount")


class InsufficientMargin(ModelRevert):
    """After the action the account's value would be below its initial margin."""

    fields = ("accountId", "accountValue", "initialMargin")


class WorsensBadDebt(ModelRevert):
    """A reduction would leave the account below zero value and worse than before."""

    fields = ("accountId", "valueBefore", "valueAfter")


class DeficitCloseOut(ModelRevert):
    """The trade would close the account's last position with its value below zero."""

    fields = ("accountId", "valueAfter")


class PriceLimitExceeded(ModelRevert):
    """The fill price is past the trader's limit."""

    fields = ("marketId", "fillPrice", "priceLimit")


class VaultCapacityExceeded(ModelRevert):
    """The vault cannot take the other side: its value would be below its initial margin."""

    fields = ("vaultValue", "vaultInitialMargin")


class OpenInterestCapExceeded(ModelRevert):
    """Open interest on one side would exceed the market's cap."""

    fields = ("marketId", "openInterest", "cap")


class PriceOutsideBand(ModelRevert):
    """A matched fill's price is outside the band around the oracle price."""

    fields = ("marketId", "price", "oraclePrice", "band")


class InvalidCounterparty(ModelRevert):
    """The vault account cannot trade as a taker or a matched party, nor be a party twice."""

    fields = ("account",)


class TooManyMarkets(ModelRevert):
    """No more markets fit (positions are tracked in a 256-bit mask)."""


class CollateralBelowMinimum(ModelRevert):
    """A deposit or margin transfer would leave the account below the minimum collateral."""

    fields = ("accountId", "collateral", "minimum")


class PositionBelowMinimum(ModelRevert):
    """A user trade would leave an open position below the market's minimum notional."""

    fields = ("accountId", "marketId", "notional", "minimum")


# ILiquidationEngine.sol


class NotLiquidatable(ModelRevert):
    """The account's value is at or above its maintenance margin."""

    fields = ("accountId", "accountValue", "maintenanceMargin")


class NoPosition(ModelRevert):
    """The account has no position in the market."""

    fields = ("accountId", "marketId")


class VaultAccount(ModelRevert):
    """The vault is the backstop and is never liquidated or deleveraged."""

    fields = ("accountId",)


class RateLimited(ModelRevert):
    """The market's rate limit is used up until `windowEnd`."""

    fields = ("marketId", "windowEnd")


class LiquidityVoid(ModelRevert):
    """The book cannot take any of the slice (depth gone or `maxImpact` reached)."""

    fields = ("marketId", "size")


class UseDeleverage(ModelRevert):
    """Under ADL: the book and the insurance fund cannot absorb this liquidation; call `deleverage`."""

    fields = ("accountId", "marketId", "shortfall", "fundAvailable")


class AdlNotRequired(ModelRevert):
    """`deleverage` while the book and the fund can still absorb the loss, or under another policy."""

    fields = ("accountId", "marketId")


class AdlIneligible(ModelRevert):
    """Counterparty `accountId` is not on the opposite side with a positive uPnL."""

    fields = ("accountId", "size", "unrealizedPnl")


class AdlOutOfOrder(ModelRevert):
    """The counterparty at `index` ranks before the one above it."""

    fields = ("index", "previousScore", "score")


class AdlNotSortedById(ModelRevert):
    """PRO_RATA: counterparties must be listed by strictly increasing account id."""

    fields = ("index", "previousId", "id")


class AdlInsufficient(ModelRevert):
    """The counterparties do not cover the size to deleverage, under PRO_RATA, CAPPED_PRO_RATA and
    LEVERAGE_DRAIN; under the other rankings only an empty list (a shorter one is a partial ADL)."""

    fields = ("remaining",)


class LiquidationWorsensHealth(ModelRevert):
    """A partial slice would leave the account less healthy and `maxSize` forbids a full close."""

    fields = ("accountId", "healthBefore", "healthAfter")


class AdlUnusedCounterparties(ModelRevert):
    """Counterparties are listed after the size was already covered."""

    fields = ("firstUnused",)


class AdlNotAboveLevel(ModelRevert):
    """LEVERAGE_DRAIN: the last counterparty would keep `retained` >= its `size` at the drained
    leverage: it is not above the level."""

    fields = ("index", "size", "retained")


class LengthMismatch(ModelRevert):
    """A many-pair view was given lists of different lengths."""

    fields = ("accountIds", "marketIds")
