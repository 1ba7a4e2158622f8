"""The vectorised views (health_all, health_of, liquidatable_accounts, liquidation_views.adl_ranking)
and the keepers' many-account views against their one-account-at-a-time definitions, on random
books."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.chain.deploy import AdlRanking, BadDebtPolicy
from simulator.model import Protocol, liquidation_views
from simulator.model.errors import LengthMismatch, UnknownMarket
from tests.model.helpers import as_list, books, health_by_loop, random_book

def build(policy, ranking, ops) -> Protocol:
    return random_book(policy, ranking, ops)


def reference_ranking(protocol: Protocol, market_id: int, side: int):
    """adlRanking as the contract writes it: `_candidate` per account, then its heapsort
    (`_sort`, `_siftDown`, `_before`), line for line."""
    price = protocol.prices[market_id]
    ranking = AdlRanking(protocol.liquidation_params(market_id).ranking)
    ids, scores = [], []
    for account_id in protocol.account_ids:
        eligible, _, _, score = protocol.liquidator._candidate(account_id, market_id, side, price, ranking)
        if eligible:
            ids.append(account_id)
            scores.append(score)
    by_score = not ranking.whole_ranking

    def before(a: int, b: int) -> bool:
        if by_score and scores[a] != scores[b]:
            return scores[a] > scores[b]
        return ids[a] < ids[b]

    def swap(a: int, b: int) -> None:
        ids[a], ids[b] = ids[b], ids[a]
        scores[a], scores[b] = scores[b], scores[a]

    def sift_down(root: int, end: int) -> None:
        while True:
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end and before(child, child + 1):
                child += 1
            if not before(root, child):
                return
            swap(root, child)
            root = child

    n = len(ids)
    for root in range(n // 2, 0, -1):
        sift_down(root - 1, n)
    for end in range(n, 1, -1):
        swap(0, end - 1)
        sift_down(0, end - 1)
    return ids, scores


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_health_all_equals_health_of_each_account(book):
    protocol = build(*book)
    ids, values, mms, ims = protocol.health_all()
    assert as_list(ids) == protocol.account_ids
    assert (as_list(values), as_list(mms), as_list(ims)) == health_by_loop(protocol)
    # healthOf and healthRange are the same computation on other selections.
    some = protocol.account_ids[::2] + [0x5EED]  # an id with no row: zero health
    of_values, of_mms, of_ims = protocol.health_of(some)
    expected = [protocol.health(i) for i in some]
    assert list(zip(as_list(of_values), as_list(of_mms), as_list(of_ims))) == expected
    range_ids, range_values, range_mms = protocol.health_range(1, 3)
    assert range_ids == protocol.account_ids[1:4]
    assert list(zip(as_list(range_values), as_list(range_mms))) == [protocol.health(i)[:2] for i in range_ids]
    liquidatable = [i for i in protocol.account_ids if protocol.is_account_liquidatable(i)]
    assert protocol.liquidatable_accounts() == liquidatable


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.sampled_from([0, 1]), st.sampled_from([1, -1]))
def test_adl_ranking_equals_the_contracts_candidate_loop_and_sort(book, market_id, side):
    """The mirror (one account at a time) and the model's vectorised view both."""
    protocol = build(*book)
    expected = reference_ranking(protocol, market_id, side)
    assert protocol.adl_ranking(market_id, side) == expected
    assert liquidation_views.adl_ranking(protocol.liquidator, market_id, side) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_keeper_views_equal_the_single_account_views(book):
    protocol = build(*book)
    ids = protocol.account_ids + [0x5EED]  # an id with no row: flat, no earmark
    pairs = [(i, m) for i in ids for m in (0, 1)]
    assert protocol.adl_required_many([i for i, _ in pairs], [m for _, m in pairs]) == [
        protocol.adl_required(i, m) for i, m in pairs
    ]
    for m in (0, 1):
        assert protocol.position_sizes(ids, m) == [protocol.position_of(i, m)[0] for i in ids]
    assert protocol.market_masks_and_reserves(ids) == (
        [protocol.market_mask_of(i) for i in ids], [protocol.fund_reserve_of(i) for i in ids])
    # uPnL = size * price rounded down (floor division) - openNotional, in plain integers.
    positions = [protocol.position_of(i, m) for i, m in pairs]
    assert protocol.unrealized_pnls([i for i, _ in pairs], [m for _, m in pairs]) == [
        size * protocol.prices[m] // 10**18 - open_notional for (size, open_notional, _), (_, m) in zip(positions, pairs)
    ]


def test_keeper_views_name_bad_input():
    protocol = build(BadDebtPolicy.ADL, AdlRanking.PNL_LEVERAGE, [])
    ids = protocol.account_ids[:2]
    with pytest.raises(LengthMismatch) as mismatch:
        protocol.adl_required_many(ids, [0])
    assert mismatch.value.inputs == {"accountIds": 2, "marketIds": 1}
    with pytest.raises(UnknownMarket) as unknown:
        protocol.position_sizes(ids, 2)
    assert unknown.value.inputs == {"marketId": 2}
    with pytest.raises(LengthMismatch):
        protocol.unrealized_pnls(ids, [0])
    with pytest.raises(UnknownMarket):
        protocol.unrealized_pnls(ids[:1], [2])
