"""The vectorised views (health_all, health_of, liquidatable_accounts, adl_ranking) against their
one-account-at-a-time definitions, on random books."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.chain.deploy import AdlRanking
from simulator.model import Protocol
from tests.model.helpers import as_list, books, health_by_loop, random_book

def build(policy, ranking, ops) -> Protocol:
    return random_book(policy, ranking, ops)


def reference_ranking(protocol: Protocol, market_id: int, side: int):
    """adlRanking as the contract writes it: `_candidate` per account, then the insertion sort."""
    price = protocol.prices[market_id]
    ids, scores = [], []
    for account_id in protocol.account_ids:
        eligible, _, _, score = protocol._candidate(account_id, market_id, side, price)
        if eligible:
            ids.append(account_id)
            scores.append(score)
    by_score = protocol.liquidation_params(market_id).ranking == AdlRanking.PNL_LEVERAGE
    for i in range(1, len(ids)):
        account_id, score = ids[i], scores[i]
        j = i
        while j > 0 and (
            (score > scores[j - 1]) if by_score and score != scores[j - 1] else account_id < ids[j - 1]
        ):
            ids[j], scores[j] = ids[j - 1], scores[j - 1]
            j -= 1
        ids[j], scores[j] = account_id, score
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
    protocol = build(*book)
    assert protocol.adl_ranking(market_id, side) == reference_ranking(protocol, market_id, side)
