"""Fixed-point units shared by the chain driver and the model: WAD (18 decimals) inside the
contracts, 6-decimal collateral tokens, 8-decimal oracle answers. Conversions are exact (Decimal)."""

from __future__ import annotations

from decimal import Decimal
from typing import Union

WAD = 10**18
USDC_DECIMALS = 6
ORACLE_DECIMALS = 8

Number = Union[int, float, str, Decimal]


def _scaled(value: Number, decimals: int) -> int:
    # str() first so that a float like 0.1 means "0.1", not its binary expansion.
    exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    scaled = exact.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimals")
    return int(scaled)


def wad(value: Number) -> int:
    """`wad("0.1") == 10**17`: a decimal number as an 18-decimal integer."""
    return _scaled(value, 18)


def usdc(value: Number) -> int:
    """Token units of a 6-decimal stablecoin."""
    return _scaled(value, USDC_DECIMALS)


def oracle_answer(price: Number) -> int:
    """An 8-decimal oracle answer (Chainlink USD convention), rounded to the nearest unit."""
    return int((Decimal(str(price)) * 10**ORACLE_DECIMALS).to_integral_value())
