"""The model's own fast view of the liquidation engine, beside the mirror (liquidation_engine.py),
not a mirror of any contract: the answers of `adlRequiredMany` with one health computation per
pair instead of two.

`adl_required` (the mirror of `adlRequired`) asks `isAccountLiquidatable` and then `_plan`, which
computes the account's health again and reverts `NotLiquidatable` when AV >= MM. For a pair whose
market's policy is ADL, whose account is not the vault and holds a position in the market, the two
are the same test (the market mask is non-zero exactly when a position is open), so the plan's
revert answers "not liquidatable". The keepers ask this for every liquidatable pair of every step
with an action; most of them are bankrupt accounts waiting for ADL, asked again each step.

The bankrupt accounts deep under water, whose answer no fill can change, the keepers do not ask
about (`simulator.agents.keepers.beyond_any_fill`, for both exchanges)."""

from __future__ import annotations

from typing import Sequence

from simulator.market_spec import BadDebtPolicy
from simulator.model import fixed_point as fp
from simulator.model.errors import LengthMismatch
from simulator.model.liquidation_engine import Action, LiquidationEngine


def adl_required_many(engine: LiquidationEngine, account_ids: Sequence[int], market_ids: Sequence[int]) -> list[bool]:
    """`engine.adl_required_many(account_ids, market_ids)`, the same answers and the same reverts
    (a refused price reverts the whole call, as the contract's view does)."""
    if len(account_ids) != len(market_ids):
        raise LengthMismatch(len(account_ids), len(market_ids))
    answers = []
    for account_id, market_id in zip(account_ids, market_ids):
        lp = engine.liquidation_params(market_id)
        if account_id == engine.vault or lp.policy != BadDebtPolicy.ADL:
            answers.append(False)
            continue
        size, _, _ = engine.position_of(account_id, market_id)
        if size == 0:
            # No plan to make; the health is still read, so a refused price reverts as it does
            # in the mirror.
            engine.is_account_liquidatable(account_id)
            answers.append(False)
            continue
        value, mm, _ = engine.health(account_id)
        if value >= mm:  # what the plan's NotLiquidatable would say
            answers.append(False)
        else:
            answers.append(engine._plan(account_id, market_id, fp.MAX_UINT256, lp).action == Action.USE_ADL)
    return answers

