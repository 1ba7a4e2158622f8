"""Stateful property tests against the contracts on anvil, split as Morpho Blue splits its invariant
suites: a STATIC machine (no price moves, no time passing) and a DYNAMIC one (bounded price moves,
time and funding, depth changes, stale and breaker-tripped prices, keepers). Every rule runs on the
contracts and on the model through tests/twin/harness.Twin, which compares outcomes, events
and the whole state after every transaction (invariant 11). Invariants are numbered as in
INVARIANTS.md.

Each machine run is isolated on chain: the machine snapshots the chain when it is created and
restores it in `teardown` (Ape 0.8.51's `chain.isolate()` would swallow the failures)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from simulator.chain.deploy import BadDebtPolicy
from simulator.units import WAD, usdc, wad
from tests.invariants import check_invariants as check_chain_invariants
from tests.model.helpers import check_invariants as check_model_invariants
from tests.model.helpers import examples, steps
from tests.twin.harness import MAX_UINT, SPECS, Env, Twin, apply_user_op, build_env, free_margin, slot_spec
from tests.twin.strategies import DEPTH_FACTORS, openings

N_MARKETS = 3
N_TRADERS = 6
ROUTER_ERRORS = {"StalePrice", "BreakerTripped", "DeviationUnconfirmed", "InvalidPrice"}

# The dynamic machine's oracle settings for the SOL slot: a 10-minute heartbeat and a 10% breaker
# with a 2-minute cooldown (the other slots keep the deployment's long heartbeat, no breaker).
GUARDED = 2
GUARDED_HEARTBEAT = 600
GUARDED_DEVIATION = wad("0.1")
GUARDED_COOLDOWN = 120
# The lists the machines' ADL attempts send (`deleverage_attempt`).
DELEVERAGE_LISTS = ["canonical", "reversed", "skip-first", "all", "head"]


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


trader = st.integers(0, N_TRADERS - 1)
market = st.integers(0, N_MARKETS - 1)


class ProtocolMachine(RuleBasedStateMachine):
    """Shared set-up and rules; subclasses add the static or dynamic rules and checks."""

    env: Env  # set by the test before running
    dynamic = False

    def __init__(self):
        super().__init__()
        self.snapshot = self.env.chain.snapshot()
        self.twin: Twin | None = None

    def teardown(self):
        try:
            if self.twin is not None:
                # The chain-side invariant checks of tests/invariants.py (1, 2, 4), once per run.
                check_chain_invariants(self.env.system)
        finally:
            self.env.chain.restore(self.snapshot)

    # --- set-up -----------------------------------------------------------------------------

    @initialize(
        specs=st.lists(st.sampled_from(sorted(SPECS)), min_size=N_MARKETS, max_size=N_MARKETS),
        vault=st.sampled_from([300_000, 3_000_000]),
        insurance=st.sampled_from([0, 2_000, 50_000]),
        collateral=st.lists(st.integers(usdc(2_000), usdc(100_000)), min_size=N_TRADERS, max_size=N_TRADERS),
        positions=st.lists(openings(N_TRADERS, N_MARKETS), min_size=4, max_size=10),
        price_dust=st.lists(st.integers(0, 10**8 - 1), min_size=N_MARKETS, max_size=N_MARKETS),
    )
    def setup(self, specs, vault, insurance, collateral, positions, price_dust):
        twin = self.twin = Twin(self.env)
        for m, name in enumerate(specs):
            twin.configure_market(m, slot_spec(m, name), seconds=1 if m == 0 else 0)
            # Prices off round numbers (up to a dollar of 8-decimal dust): with round prices every
            # notional and margin divides exactly and rounding directions would not show.
            twin.set_price(m, twin.oracle.feeds[m].answer + price_dust[m])
        if self.dynamic:
            twin.configure_oracle(GUARDED, GUARDED_HEARTBEAT, GUARDED_DEVIATION, GUARDED_COOLDOWN)
        twin.deposit(self.env.vault, usdc(vault))
        if insurance:
            twin.deposit_insurance(insurance)
        self.traders = self.env.traders[:N_TRADERS]
        for who, amount in zip(self.traders, collateral):
            twin.deposit(who, amount)
        for op in positions:
            apply_user_op(twin, self.traders, op)

    # --- helpers ----------------------------------------------------------------------------

    def ids(self, who) -> tuple[int, list[int]]:
        cross = int(who.address, 16)
        return cross, [self.twin.model.isolated_account_id(cross, m) for m in range(N_MARKETS)]

    def pick_account(self, pick: int, m: int | None = None) -> int:
        """A registered account: usually one holding a position in market `m` (the liquidatable
        first), sometimes any (healthy ones, the vault, accounts without a position)."""
        model = self.twin.model
        ids = model.account_ids
        if m is not None and pick % 4:
            holders = [i for i in ids if model.position_of(i, m)[0] != 0 and i != self.twin.vault_id]
            flagged = [i for i in holders if self.twin.health(i) is not None and model.is_account_liquidatable(i)]
            pool = flagged if flagged and pick % 4 != 3 else holders
            if pool:
                return pool[pick // 4 % len(pool)]
        return ids[pick % len(ids)]

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def protocol_invariants(self):
        """1, 2, 4 on the model (equal to the chain's state after every transaction: see Twin), 3."""
        if self.twin is None:
            return
        check_model_invariants(self.twin.model)
        self.twin.check_funding()


# ================================================================================================
# STATIC: no price moves, no time passing
# ================================================================================================


class StaticMachine(ProtocolMachine):
    """Invariant 9: without price moves or time passing, no user action makes a healthy account
    liquidatable, except the acting account itself through an allowed reduction.

    Precisely, for a user action A (deposit, withdraw, transferMargin, openPosition,
    openIsolatedPosition, a close, settleMatchedFill, setDepth):
    (a) an account that is not a party to A has exactly the same (AV, MM, IM) after A; the vault,
        counterparty of taker trades, may change but stays healthy if it was (its exposure only
        grows under the IM check; a reduction of its exposure fills it at a price in its favour);
    (b) a party that was healthy and is liquidatable after A has only reduced (|size| down, no flip)
        in the traded market, and the engine's rule held: AV after >= 0 or AV after >= AV before;
    (c) a party whose position grew or flipped, or that was debited (withdraw, the source of a
        transfer), ends with AV >= IM;
    (d) a reverted action changes nobody's health."""

    def _state(self) -> dict[int, tuple]:
        model = self.twin.model
        state = {}
        for i in model.account_ids:
            value, mm, im = model.health(i)
            sizes = tuple(model.position_of(i, m)[0] for m in range(N_MARKETS))
            state[i] = (value, mm, im, model.market_mask_of(i) != 0 and value < mm, sizes)
        return state

    def _act(self, parties: set[int], debited: set[int], market_id: int | None, action):
        before = self._state()
        outcome = action()
        if outcome is None:
            return
        after = self._state()
        vault = self.twin.vault_id
        for i, (value, mm, im, liquidatable, sizes) in after.items():
            old = before.get(i)
            if not outcome.ok or (i not in parties and i != vault):
                # (a), (d): untouched accounts (and everyone, after a revert) are exactly as before.
                unchanged = (value, mm, im) == (0, 0, 0) if old is None else old[:3] == (value, mm, im)
                assert unchanged, f"{i:#x} changed without being a party: {old} -> {(value, mm, im)}"
                continue
            was_healthy = old is None or not old[3]
            if i == vault:
                assert not (was_healthy and liquidatable), "a user action made the vault liquidatable"
                continue
            old_sizes = old[4] if old else (0,) * N_MARKETS
            grew = any(
                new != 0 and (o == 0 or (o > 0) != (new > 0) or abs(new) > abs(o))
                for o, new in zip(old_sizes, sizes)
            )
            if grew or i in debited:
                assert value >= im, f"{i:#x} grew or was debited and ended below IM: {value} < {im}"  # (c)
            if was_healthy and liquidatable:
                # (b): only an allowed reduction of its own.
                assert not grew and i not in debited, f"{i:#x} became liquidatable by growing"
                assert market_id is not None and abs(sizes[market_id]) < abs(old_sizes[market_id])
                assert value >= 0 or value >= old[0], f"{i:#x}: a reduction deepened negative equity"

    # --- user actions -----------------------------------------------------------------------

    @rule(t=trader, dollars=st.integers(1, 50_000))
    def deposit(self, t, dollars):
        who = self.traders[t]
        cross, _ = self.ids(who)
        self._act({cross}, set(), None, lambda: self.twin.deposit(who, usdc(dollars)))

    @rule(t=trader, percent=st.integers(1, 120))
    def withdraw(self, t, percent):
        who = self.traders[t]
        cross, _ = self.ids(who)
        amount = max(free_margin(self.twin, cross) * percent // 100 // 10**12, 1)
        self._act({cross}, {cross}, None, lambda: self.twin.withdraw(who, amount))

    @rule(t=trader, m=market, percent=st.integers(-120, 120).filter(bool))
    def transfer_margin(self, t, m, percent):
        who = self.traders[t]
        cross, isolated = self.ids(who)
        source = cross if percent > 0 else isolated[m]
        amount = max(free_margin(self.twin, source) * abs(percent) // 100, 1)
        self._act({cross, isolated[m]}, {source}, None,
                  lambda: self.twin.transfer_margin(who, m, amount if percent > 0 else -amount))

    @rule(op=openings(N_TRADERS, N_MARKETS), fund_bucket=st.integers(0, 100))
    def open(self, op, fund_bucket):
        """openPosition, openIsolatedPosition (after moving `fund_bucket`% of the free margin into
        the bucket, itself a checked action) or settleMatchedFill, sized as the differential suite's `apply_user_op` does."""
        _, t, m, side, tenths, how, other, band_bp, dust = op
        who = self.traders[t]
        cross, isolated = self.ids(who)
        twin, price = self.twin, self.twin.model.prices[m]
        if how == "isolated":
            amount = free_margin(twin, cross) * fund_bucket // 100
            if amount:
                self._act({cross, isolated[m]}, {cross}, None, lambda: twin.transfer_margin(who, m, amount))
            size = side * ((free_margin(twin, isolated[m]) * tenths // 10) * WAD // price + dust)
            self._act({isolated[m]}, set(), m, lambda: twin.open(who, m, size, isolated=True) if size else None)
            return
        size = side * ((free_margin(twin, cross) * tenths // 10) * WAD // price + dust)
        if how == "cross":
            self._act({cross}, set(), m, lambda: twin.open(who, m, size))
            return
        counterparty = self.traders[other]
        buyer, seller = (who, counterparty) if side > 0 else (counterparty, who)
        parties = {cross, self.ids(counterparty)[0]}
        fill_price = price * (10_000 + band_bp) // 10_000
        self._act(parties, set(), m, lambda: twin.matched(buyer, seller, m, abs(size), fill_price))

    @rule(t=trader, m=market, isolated=st.booleans(), part=st.sampled_from([1, 2, 3]))
    def close(self, t, m, isolated, part):
        cross, buckets = self.ids(self.traders[t])
        account = buckets[m] if isolated else cross
        self._act({account}, set(), m,
                  lambda: apply_user_op(self.twin, self.traders, ("close", t, m, isolated, part)))

    @rule(m=market, factor=st.sampled_from(DEPTH_FACTORS))
    def set_depth(self, m, factor):
        depth = wad(self.twin.specs[m].depth2pct) * factor // 10
        self._act(set(), set(), None, lambda: self.twin.set_depth(m, depth))

    # --- liquidation and ADL (not user actions: they may hurt others, e.g. socialised losses) ---

    @rule(pick=st.integers(0, 10**6), m=market, cap=st.sampled_from([MAX_UINT, MAX_UINT, WAD // 10]))
    def liquidate(self, pick, m, cap):
        self.twin.liquidate(self.pick_account(pick, m), m, cap)

    @rule(pick=st.integers(0, 10**6), m=market, variant=st.sampled_from(DELEVERAGE_LISTS))
    def deleverage(self, pick, m, variant):
        deleverage_attempt(self.twin, self.pick_account(pick, m), m, variant)


def deleverage_attempt(twin: Twin, account_id: int, m: int, variant: str) -> None:
    """ADL with the canonical counterparties, a wrong list or the first half of the canonical one
    (`head`: a partial ADL under the rankings by score, refused under the others; empty when the
    canonical list has one winner): the contract must refuse a wrong one (checked by
    Twin.deleverage: a success hits winners in ranking order at the bankruptcy price)."""
    model = twin.model
    side = model.position_of(account_id, m)[0]
    if side == 0 or model.prices[m] == 0:
        twin.deleverage(account_id, m, [])
        return
    ranked = twin._probe(lambda: model.adl_ranking(m, side))  # reverts while a price is refused
    ranking = [] if isinstance(ranked, Exception) else ranked[0]
    chosen = twin.canonical_counterparties(m, account_id, ranking)
    cps = {
        "canonical": chosen,
        "reversed": list(reversed(chosen)),
        "skip-first": twin.canonical_counterparties(m, account_id, ranking[1:]),
        "all": list(ranking),
        "head": chosen[:len(chosen) // 2],
    }[variant]
    twin.deleverage(account_id, m, cps)


# ================================================================================================
# DYNAMIC: prices, time, depth, stale and tripped prices, keepers
# ================================================================================================


class DynamicMachine(ProtocolMachine):
    """Invariants 3, 5, 6, 7, 8, 10 and 11 under price moves (bounded: -15%..+15% per move), time
    passing (funding), depth changes, a market with a short heartbeat and a circuit breaker,
    liquidations, ADL attempts and keeper runs."""

    dynamic = True

    # --- user actions (no invariant 9 here: prices move between blocks) -----------------------

    @rule(op=openings(N_TRADERS, N_MARKETS), seconds=st.sampled_from([0, 0, 1, 30]))
    def open(self, op, seconds):
        if seconds:
            self.twin.accrue_funding(op[2], seconds=seconds)
        apply_user_op(self.twin, self.traders, op)

    @rule(t=trader, m=market, isolated=st.booleans(), part=st.sampled_from([1, 2]))
    def close(self, t, m, isolated, part):
        apply_user_op(self.twin, self.traders, ("close", t, m, isolated, part))

    @rule(t=trader, percent=st.integers(1, 100))
    def withdraw(self, t, percent):
        apply_user_op(self.twin, self.traders, ("withdraw", t, percent))

    @rule(t=trader, m=market, percent=st.integers(-100, 100).filter(bool))
    def transfer_margin(self, t, m, percent):
        apply_user_op(self.twin, self.traders, ("margin", t, m, percent))

    # --- the market ---------------------------------------------------------------------------

    @rule(
        seconds=st.sampled_from([0, 1, 60, 300, 601, 3_600]),
        bp=st.one_of(st.none(), st.integers(8_500, 11_500)),
        spread=st.lists(st.integers(-200, 200), min_size=N_MARKETS, max_size=N_MARKETS),
        dust=st.integers(0, 999_999),
        depth=st.one_of(st.none(), st.tuples(market, st.sampled_from(DEPTH_FACTORS))),
        then_keepers=st.sampled_from([True, True, False]),
    )
    def step(self, seconds, bp, spread, dust, depth, then_keepers):
        """One market step: time passes (funding accrues; the guarded market may go stale or its
        cooldown end), every market moves the same way (by bp, each off by up to 2%: the correlated
        move that liquidates cross books) and the routers update, the depth of a market may change,
        then (usually) the keepers run."""
        twin = self.twin
        if bp is None:
            twin.accrue_funding(0, seconds=seconds)
        else:
            for m in range(N_MARKETS):
                answer = max(twin.oracle.feeds[m].answer * (bp + spread[m]) // 10_000 + dust, 1)
                twin.submit_price(m, answer, seconds=seconds if m == 0 else 0)
            for m in range(N_MARKETS):
                twin.update_price(m)
        if depth is not None:
            m, factor = depth
            twin.set_depth(m, wad(twin.specs[m].depth2pct) * factor // 10)
        if then_keepers:
            self.keepers()

    @rule(m=market, bp=st.integers(8_500, 11_500), dust=st.integers(0, 999_999), update=st.booleans())
    def move_price(self, m, bp, dust, update):
        """A new answer in one market; the router's reference moves (or its breaker trips) if updated."""
        answer = max(self.twin.oracle.feeds[m].answer * bp // 10_000 + dust, 1)
        self.twin.submit_price(m, answer)
        if update:
            self.twin.update_price(m)

    @rule(m=market)
    def refresh_price(self, m):
        """The same answer again (a heartbeat round), then the router's update."""
        self.twin.submit_price(m, self.twin.oracle.feeds[m].answer)
        self.twin.update_price(m)

    @rule(pick=st.integers(0, 10**6), m=market)
    def settle_funding(self, pick, m):
        self.twin.settle_funding(self.pick_account(pick), m)

    # --- liquidation, ADL, keepers ------------------------------------------------------------

    @rule(pick=st.integers(0, 10**6), m=market, cap=st.sampled_from([MAX_UINT, WAD // 10]))
    def liquidate(self, pick, m, cap):
        self.twin.liquidate(self.pick_account(pick, m), m, cap)

    @rule(pick=st.integers(0, 10**6), m=market, variant=st.sampled_from(DELEVERAGE_LISTS))
    def deleverage(self, pick, m, variant):
        deleverage_attempt(self.twin, self.pick_account(pick, m), m, variant)

    @rule()
    def keepers(self):
        """The reference keeper until nothing can be acted on; then invariant 6."""
        self.twin.run_keepers()
        self.check_no_bad_debt_under_adl()

    @rule(m=market, pick=st.integers(0, 10**6))
    def trade_on_refused_price(self, m, pick):
        """Invariant 10: while the router refuses market m's price, nothing executes on it."""
        twin = self.twin
        status, _, _ = twin.oracle.classify(m, twin.model.timestamp)
        if status == "Ok":
            return
        who = self.traders[pick % N_TRADERS]
        for outcome in (
            twin.open(who, m, WAD // 1000),
            twin.liquidate(self.pick_account(pick), m),
            twin.accrue_funding(m),
        ):
            assert not outcome.ok and outcome.error.name in ROUTER_ERRORS | {"NotLiquidatable", "NoPosition",
                                                                           "VaultAccount"}, outcome.error

    def check_no_bad_debt_under_adl(self):
        """Invariant 6: under ADL no bad debt is ever recorded (the fund or the winners cover it)."""
        model = self.twin.model
        adl = {m for m in range(N_MARKETS) if model.liquidation_params(m).policy == BadDebtPolicy.ADL}
        recorded = [args for name, args in self.twin.history if name == "BadDebtRecorded" and args["marketId"] in adl]
        assert not recorded, f"bad debt recorded in ADL markets: {recorded}"
        if len(adl) == N_MARKETS:
            assert model.bad_debt == 0

    @invariant()
    def nothing_executed_on_a_refused_price(self):
        """Invariant 10, every step: every successful transaction's prices were usable (the model
        reads 0 for a refused price and reverts, and its outcome equals the chain's: see Twin)."""
        if self.twin is None:
            return
        for m in range(N_MARKETS):
            status, price, _ = self.twin.oracle.classify(m, self.twin.model.timestamp)
            assert (self.twin.model.prices[m] != 0) == (status == "Ok")


# ================================================================================================
# Tests
# ================================================================================================


def machine_settings(runs: int, step_count: int) -> settings:
    """`runs` machine runs of up to `step_count` steps under the "ci" profile, scaled by the profile."""
    steps_ = steps(step_count)
    return settings(
        max_examples=examples(runs),
        stateful_step_count=steps_,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def test_static_machine(env):
    StaticMachine.env = env
    run_state_machine_as_test(StaticMachine, settings=machine_settings(8, 25))


def test_dynamic_machine(env):
    DynamicMachine.env = env
    run_state_machine_as_test(DynamicMachine, settings=machine_settings(8, 30))
