"""PerpEngine revert paths, one module per group of the engine's functions: one test per custom
error of every state-changing function and of the views that can revert, each asserting the error
AND all of its arguments (computed from the engine's views in the same state or, with the model's
libraries in simulator/model/, from the formulas of contracts/libraries/), plus the successful path
of every function (with its events) so that each check can fail.

    test_reverts_helper.py     tests/reverts.py's `reverts` itself, on the engine
    test_admin.py              constructor, transferOwnership, setRole, setVault
    test_markets.py            createMarket, setMarketParams, setTiers
    test_depth.py              setDepth, a market without a book, quote against the depth curve
    test_collateral.py         deposit, depositFor, withdraw, transferMargin, depositInsurance
    test_positions.py          openPosition, openIsolatedPosition, reductions (WorsensBadDebt)
    test_matched_fills.py      settleMatchedFill
    test_funding.py            accrueFunding, settleFunding
    test_liquidation_hooks.py  liquidationFill, adlFill, chargePenalty, settleDeficit
    test_views.py              the views that revert, bankruptcyPrice, bookCapacity

Fixtures are in conftest.py; constants, ids, parameters and the expected state of a one-position
account in helpers.py (a support module).

`reverts` (tests/reverts.py) is stricter than `ape.reverts`: Ape does not decode errors raised by
a nested contract (the oracle router) and then silently skips the argument check, and it ignores
argument names it does not know. Here the error must match by signature and every argument must be
given and equal.

Four contract bugs these tests found (a new vault with positions, the open-interest cap blocking
reductions, the vault trading through an isolated bucket, healthRange overflowing) are fixed; their
tests stay as regressions (test_admin.py, test_positions.py, test_views.py)."""
