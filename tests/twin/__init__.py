"""Test support (no tests here): the Twin, which drives the contracts and the model in lockstep
and compares them (harness.py), its batched contract reader (reader.py), the router's model
(oracle.py) and the differential suite's hypothesis strategies (strategies.py). Used by
tests/test_differential.py, tests/test_stateful.py and tests/regressions."""
