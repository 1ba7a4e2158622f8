"""The model's own fast views of the liquidation engine, beside the mirror (liquidation_engine.py),
not a mirror of any contract: the same answers as the mirror's `adlRequiredMany` and `adlRanking`,
computed faster. Being views, not mirror code, they read the engine's storage (its arrays and
markets, storage.py) where the contract would call the engine account by account.

`adl_required_many`: one health computation per pair instead of two.

`adl_required` (the mirror of `adlRequired`) asks `isAccountLiquidatable` and then `_plan`, which
computes the account's health again and reverts `NotLiquidatable` when AV >= MM. For a pair whose
market's policy is ADL, whose account is not the vault and holds a position in the market, the two
are the same test (the market mask is non-zero exactly when a position is open), so the plan's
revert answers "not liquidatable". The keepers ask this for every liquidatable pair of every step
with an action; most of them are bankrupt accounts waiting for ADL, asked again each step.

The bankrupt accounts deep under water, whose answer no fill can change, the keepers do not ask
about (`simulator.agents.keepers.beyond_any_fill`, for both exchanges).

`adl_ranking`: the mirror's `_candidate` test and score for every registered account at once, in
array expressions over the engine's position arrays and its vectorised health (`_health_rows`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulator.market_spec import BadDebtPolicy
from simulator.model import fixed_point as fp
from simulator.model import margin as MarginMath
from simulator.model.errors import LengthMismatch
from simulator.model.liquidation_engine import Action, LiquidationEngine


def adl_required_many(
    liquidator: LiquidationEngine, account_ids: Sequence[int], market_ids: Sequence[int]
) -> list[bool]:
    """`liquidator.adl_required_many(account_ids, market_ids)`, the same answers and the same reverts
    (a refused price reverts the whole call, as the contract's view does)."""
    if len(account_ids) != len(market_ids):
        raise LengthMismatch(len(account_ids), len(market_ids))
    engine = liquidator.engine
    answers = []
    for account_id, market_id in zip(account_ids, market_ids):
        lp = liquidator.liquidation_params(market_id)
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
            answers.append(liquidator._plan(account_id, market_id, fp.MAX_UINT256, lp).action == Action.USE_ADL)
    return answers

def adl_ranking(liquidator: LiquidationEngine, market_id: int, bankrupt_side: int) -> tuple[list[int], list[int]]:
    """`liquidator.adl_ranking(market_id, bankrupt_side)`: the same (ids, scores), vectorised over the
    registered accounts (the engine's `_registered_rows` and position arrays); the mirror's
    `_candidate` is the same test for one account."""
    liquidator._check_market(market_id)
    engine = liquidator.engine
    price = liquidator.oracle.price(market_id)
    rows = np.asarray(engine._registered_rows, dtype=np.intp)
    ids: list[int] = []
    scores: list[int] = []
    ranking = liquidator.liquidation_params(market_id).ranking
    if len(rows):
        size = engine._size[rows, market_id]
        open_notional = engine._open_notional[rows, market_id]
        upnl = MarginMath.unrealized_pnl(size, open_notional, price)
        opposite = (size < 0) if bankrupt_side > 0 else (size > 0)
        eligible = np.flatnonzero(opposite & (upnl > 0).astype(bool))
        if len(eligible):
            values, _, _ = engine._health_rows(rows[eligible])
            notionals = MarginMath.notional(size[eligible], price)
            for k, i in enumerate(eligible.tolist()):
                ids.append(engine.account_ids[i])
                scores.append(
                    liquidator._score(ranking, size[i], upnl[i], open_notional[i], notionals[k], values[k])
                )
    return liquidator._sort(ids, scores, liquidator._by_score(ranking))
