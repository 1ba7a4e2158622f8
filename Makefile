# perpsim: the two commands are `make run` (main job) and `make test` (whole test suite).
# Each runs toolchain/setup.sh first, which installs what is missing and skips the rest in < 1 s.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: help setup run test gas bench mutants slither clean
help:
	@echo "make run    the main job: the oct-2025 cascade against the contracts on a fresh anvil"
	@echo "make test   run the whole test suite (contracts on anvil, properties, simulator)"
	@echo "make gas    print the gas cost of every public contract function"
	@echo "make bench  measure the simulator's throughput (chain vs model, batched vs one call at a time, sweeps on 1 and 2 workers)"
	@echo "make mutants check that the differential and stateful suites catch deliberate errors in the contracts"
	@echo "make slither static analysis of the contracts; fails on a High or Medium finding not in toolchain/slither/triage.yaml"
	@echo "make setup  install the toolchain only (Python env, npm solc/anvil, compiler stand-in)"
	@echo "make clean  remove build outputs and run folders (keeps the installed toolchain)"

setup:
	@bash toolchain/setup.sh

run: setup
	$(VENV)/perpsim run oct-2025 $(ARGS)

# One pytest-xdist worker per core, each with its own anvil; a test file stays on one worker
# (--dist loadfile: its module-scoped deployment is made once). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= auto
test: setup
	$(VENV)/ape test -n $(TEST_WORKERS) --dist loadfile $(ARGS)

gas: setup
	$(VENV)/ape run gas

bench: setup
	$(VENV)/python benchmarks/throughput.py $(ARGS)

mutants: setup
	$(VENV)/python -m tests.mutation $(ARGS)

slither: setup
	$(VENV)/python toolchain/slither/check.py

clean:
	rm -rf .build runs .pytest_cache .hypothesis .cache/books
