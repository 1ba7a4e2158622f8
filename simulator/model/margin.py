"""Mirror of contracts/libraries/MarginMath.sol: position value, PnL and margin requirements.

Every rounding favours the protocol: requirements round up, PnL rounds down. `notional`,
`unrealized_pnl`, `maintenance_margin` and `initial_margin` also work elementwise on numpy
object-dtype arrays (the vectorised health of `Protocol.health_all`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from simulator.model import fixed_point as fp


@dataclass(frozen=True)
class Tier:
    """struct Tier: from `floor` notional upward, `mmr` applies; `deduction` keeps MM continuous."""

    floor: int
    mmr: int
    deduction: int


def notional(size, price):
    """notional: |size| * price / WAD rounded up: the notional margin requirements are taken on."""
    return fp.w_mul_up(fp.abs(size), price)


def unrealized_pnl(size, open_notional, price):
    """unrealizedPnl: size * price - openNotional, with size * price rounded down."""
    return fp.s_w_mul_down(size, price) - open_notional


def maintenance_margin(position_notional, tiers: Sequence[Tier]):
    """maintenanceMargin: notional * mmr_k - deduction_k for the highest tier k whose floor <= notional.

    On an array of notionals, k is the number of tiers above the first whose floor is <= the
    notional (floors strictly increase and the first is 0, so this is the same tier as the loop)."""
    if isinstance(position_notional, np.ndarray):
        k = np.zeros(position_notional.shape, dtype=np.intp)
        for tier in tiers[1:]:
            k += position_notional >= tier.floor
        mmrs = np.array([tier.mmr for tier in tiers], dtype=object)
        deductions = np.array([tier.deduction for tier in tiers], dtype=object)
        return fp.w_mul_up(position_notional, mmrs[k]) - deductions[k]
    k = len(tiers) - 1
    while tiers[k].floor > position_notional:
        k -= 1
    return fp.w_mul_up(position_notional, tiers[k].mmr) - tiers[k].deduction


def initial_margin(position_notional, imr, mm):
    """initialMargin: max(notional * imr, MM): a tier whose MM exceeds the base IM also raises the IM."""
    return fp.max(fp.w_mul_up(position_notional, imr), mm)


def tier_deduction(previous_deduction: int, floor: int, mmr: int, previous_mmr: int) -> int:
    """tierDeduction: d_k = d_{k-1} + floor_k * (mmr_k - mmr_{k-1}), rounded down."""
    return previous_deduction + fp.w_mul_down(floor, mmr - previous_mmr)
