"""INVARIANTS.md invariants on the model after random sequences of operations (hypothesis):
conservation (1), open interest (2), the insurance fund (4), liquidations never leave a partially
closed account less healthy (5), ADL fills at the bankruptcy price against opposite-side winners
(8), and every revert leaves the state untouched."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from simulator.chain.deploy import AdlRanking, BadDebtPolicy
from simulator.model.errors import ModelRevert
from tests.model.helpers import (
    SINGLE_TRANSACTION,
    KEEPER,
    examples,
    apply_op,
    as_list,
    books,
    canonical_counterparties,
    check_invariants,
    fingerprint,
    health_by_loop,
    openings,
    operations,
    random_book,
    steps,
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_conservation_and_open_interest_after_random_sequences(book):
    policy, ranking, ops = book
    protocol = random_book(policy, ranking, [])
    check_invariants(protocol)
    for op in ops:
        before = fingerprint(protocol)
        if not apply_op(protocol, op) and op[0] in SINGLE_TRANSACTION:
            assert fingerprint(protocol) == before, f"{op} reverted but changed the state"
        check_invariants(protocol)


class ProtocolMachine(RuleBasedStateMachine):
    """Random books driven step by step; the invariants hold after every step."""

    @initialize(
        policy=st.sampled_from(list(BadDebtPolicy)),
        ranking=st.sampled_from(list(AdlRanking)),
        positions=st.lists(openings(), min_size=2, max_size=8),
    )
    def setup(self, policy, ranking, positions):
        self.protocol = random_book(policy, ranking, positions)

    @rule(op=operations())
    def act(self, op):
        before = fingerprint(self.protocol)
        if not apply_op(self.protocol, op) and op[0] in SINGLE_TRANSACTION:
            assert fingerprint(self.protocol) == before, f"{op} reverted but changed the state"

    @rule(pick=st.integers(0, 10**6), market_id=st.sampled_from([0, 1]))
    def liquidate_one(self, pick, market_id):
        """Invariant 5: a liquidation that leaves part of the position makes the account healthier."""
        protocol = self.protocol
        candidates = [i for i in protocol.liquidatable_accounts() if i != protocol.vault]
        if not candidates:
            return
        account_id = candidates[pick % len(candidates)]
        if protocol.position_of(account_id, market_id)[0] == 0:
            return
        value, mm, _ = protocol.health(account_id)
        before = fingerprint(protocol)
        try:
            protocol.liquidate_account(account_id, market_id, keeper=KEEPER)
        except ModelRevert:
            assert fingerprint(protocol) == before
            return
        if protocol.position_of(account_id, market_id)[0] != 0:
            value_after, mm_after, _ = protocol.health(account_id)
            assert value_after - mm_after >= value - mm
        if protocol.market_mask_of(account_id) == 0:
            # The waterfall leaves no closed-out account negative; one that still holds positions
            # keeps its deficit until it is closed out (settleDeficit returns (0, 0, 0)).
            assert protocol.health(account_id)[0] >= 0

    @rule(pick=st.integers(0, 10**6), market_id=st.sampled_from([0, 1]))
    def deleverage_one(self, pick, market_id):
        """Invariant 8: ADL closes against opposite-side winners only, at the bankruptcy price."""
        protocol = self.protocol
        candidates = [i for i in protocol.liquidatable_accounts() if i != protocol.vault]
        if not candidates:
            return
        account_id = candidates[pick % len(candidates)]
        side = protocol.position_of(account_id, market_id)[0]
        if side == 0 or not protocol.adl_required(account_id, market_id):
            return
        ranking, _ = protocol.adl_ranking(market_id, side)
        chosen = canonical_counterparties(protocol, market_id, account_id, ranking)
        winners = {i: protocol.position_of(i, market_id)[0] for i in chosen}
        bankruptcy = protocol.bankruptcy_price_of(account_id, market_id)
        since = len(protocol.events)
        try:
            protocol.deleverage_account(account_id, market_id, chosen)
        except ModelRevert:
            return
        fills = protocol.events_named("AdlFill", since)
        assert all(f.price == bankruptcy for f in fills)
        assert all((winners[f.counterpartyId] > 0) != (side > 0) for f in fills)
        assert sum(f.size for f in fills) == -side
        assert protocol.position_of(account_id, market_id)[0] == 0
        assert protocol.health(account_id)[0] >= 0

    @invariant()
    def conservation_open_interest_and_fund(self):
        check_invariants(self.protocol)

    @invariant()
    def vectorised_health_is_health(self):
        _, values, mms, ims = self.protocol.health_all()
        assert (as_list(values), as_list(mms), as_list(ims)) == health_by_loop(self.protocol)


def test_protocol_machine():
    # A plain test function (not the machine's unittest TestCase), so that any pytest plugin that
    # wraps test functions, Ape's included, treats it like the others.
    run_state_machine_as_test(
        ProtocolMachine,
        settings=settings(
            max_examples=examples(60), stateful_step_count=steps(40), deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
