"""Trader populations: reproducible from the seed, the stated distributions, margin within limits,
and the vault and insurance fund sized for them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.population import (generate_momentum, generate_population, population_for_scenario,
                                  size_vault_and_insurance_fund)
from simulator.scenarios import load_scenario, scenario_from_dict
from tests.sim.conftest import base_scenario


def _scenario(**population):
    data = base_scenario()
    data["population"] = population
    return scenario_from_dict(data)


def _population(n=20_000, seed=0, **population):
    scenario = _scenario(**population)
    return scenario, generate_population(scenario.population, scenario.markets, n=n, seed=seed)


def test_same_seed_same_population_other_seed_other_population():
    scenario = _scenario(hedged_fraction=0.2, markets_per_account=3)
    first = generate_population(scenario.population, scenario.markets, n=500, seed=3)
    again = generate_population(scenario.population, scenario.markets, n=500, seed=3)
    other = generate_population(scenario.population, scenario.markets, n=500, seed=4)
    for name in ("collateral_usd", "notional_usd", "isolated", "hedged", "leverage"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.notional_usd, other.notional_usd)
    assert not np.array_equal(first.collateral_usd, other.collateral_usd)


def test_shapes_and_defaults():
    scenario = _scenario(accounts=123)
    population = population_for_scenario(scenario)
    assert population.n_accounts == 123 == scenario.account_count
    assert population.notional_usd.shape == (123, 3)
    assert population.markets == ("BTC", "ETH", "SOL")
    assert population.sizes([100000, 4000, 200]).shape == (123, 3)


def test_long_fraction_is_respected():
    _, population = _population(long_fraction=0.87, notional={"sigma": 0.3})
    sides = np.sign(population.notional_usd.sum(axis=1))
    assert np.mean(sides > 0) == pytest.approx(0.87, abs=0.01)
    assert population.long_share == pytest.approx(0.87, abs=0.02)


def test_leverage_is_within_one_and_the_market_limit():
    leverage = {"median": 30, "sigma": 1.0, "max_fraction_of_limit": 0.9}
    scenario, population = _population(leverage=leverage, markets_per_account=3)
    imr = np.array([market.imr for market in scenario.markets])
    assert population.leverage.min() >= 1.0
    initial_margin = (np.abs(population.notional_usd) * imr).sum(axis=1)
    assert np.all(initial_margin <= 0.9 * population.collateral_usd * (1 + 1e-9))
    np.testing.assert_allclose(population.gross_notional_usd / population.collateral_usd, population.leverage)
    # With a median of 30 on 10-20x markets the cap binds for most accounts.
    assert np.mean(np.isclose(initial_margin, 0.9 * population.collateral_usd)) > 0.5


def test_leverage_median_and_absolute_cap():
    _, population = _population(leverage={"median": 4, "sigma": 0.3})
    assert np.median(population.leverage) == pytest.approx(4, rel=0.03)
    _, capped = _population(leverage={"median": 4, "sigma": 1.0, "max": 5})
    assert capped.leverage.max() <= 5


def test_notional_distribution_and_bounds():
    _, population = _population(notional={"median": 25_000, "sigma": 1.2, "min": 1_000, "max": 500_000})
    gross = population.gross_notional_usd
    assert np.median(gross) == pytest.approx(25_000, rel=0.05)
    assert gross.min() >= 1_000 - 1e-6 and gross.max() <= 500_000 + 1e-6


def test_isolated_and_cross_accounts():
    _, population = _population(cross_fraction=0.6, markets_per_account=3)
    held = population.markets_held().sum(axis=1)
    assert np.mean(population.isolated) == pytest.approx(0.4, abs=0.015)
    assert np.all(held[population.isolated] == 1)
    cross_held = held[~population.isolated]
    assert cross_held.min() == 1 and cross_held.max() == 3
    assert not np.any(population.hedged & population.isolated)


def test_hedged_accounts_are_long_one_market_and_short_another():
    _, population = _population(hedged_fraction=0.3, cross_fraction=1.0, markets_per_account=2)
    hedged = population.notional_usd[population.hedged]
    assert np.mean(population.hedged) == pytest.approx(0.3, abs=0.015)
    assert np.all((hedged > 0).sum(axis=1) >= 1) and np.all((hedged < 0).sum(axis=1) >= 1)
    np.testing.assert_allclose(hedged.sum(axis=1), 0, atol=1e-6)  # equal notional on both sides
    unhedged = population.notional_usd[~population.hedged]
    assert np.all((unhedged >= 0).all(axis=1) | (unhedged <= 0).all(axis=1))  # one side only


def test_market_weights_pick_markets():
    _, population = _population(cross_fraction=0.0, market_weights={"BTC": 0.6, "ETH": 0.3, "SOL": 0.1})
    share = population.markets_held().mean(axis=0)
    np.testing.assert_allclose(share, [0.6, 0.3, 0.1], atol=0.015)
    _, btc_only = _population(n=500, market_weights={"BTC": 1.0})
    assert np.all(btc_only.notional_usd[:, 1:] == 0)


def test_reference_accounts_sample_the_same_exchange_more_finely():
    """Scaled by reference / N: the same draws, smaller accounts, the same leverage; the total
    stays that of the reference size (in expectation) instead of growing with N."""
    spec = dict(notional={"median": 10_000, "sigma": 0.5}, leverage={"median": 5, "sigma": 0.3})
    _, plain = _population(n=8_000, **spec)
    _, scaled = _population(n=8_000, reference_accounts=2_000, **spec)
    np.testing.assert_allclose(scaled.notional_usd, plain.notional_usd / 4)
    np.testing.assert_allclose(scaled.collateral_usd, plain.collateral_usd / 4)
    np.testing.assert_array_equal(scaled.leverage, plain.leverage)
    _, reference = _population(n=2_000, **spec)
    assert scaled.gross_notional_usd.sum() == pytest.approx(reference.gross_notional_usd.sum(), rel=0.05)
    assert plain.gross_notional_usd.sum() == pytest.approx(4 * reference.gross_notional_usd.sum(), rel=0.05)
    _, same = _population(n=2_000, reference_accounts=2_000, **spec)
    np.testing.assert_array_equal(same.notional_usd, reference.notional_usd)


def test_whales_hold_their_share_of_the_notional_at_any_size():
    """The first `count` accounts hold `notional_share` of the gross notional together, in equal
    sizes, the same dollars at 1,000 and 8,000 accounts with reference_accounts; floor(count x
    long_fraction) of them long; the other accounts are drawn as without whales."""
    spec = dict(notional={"median": 10_000, "sigma": 1.0}, long_fraction=0.9, reference_accounts=1_000)
    whales = {"count": 5, "notional_share": 0.2}
    sizes = []
    for n in (1_000, 8_000):
        _, plain = _population(n=n, **spec)
        _, population = _population(n=n, whales=whales, **spec)
        gross = population.gross_notional_usd
        assert gross[:5].sum() / gross.sum() == pytest.approx(0.2)
        np.testing.assert_allclose(gross[:5], gross[0])
        np.testing.assert_array_equal(np.sign(population.notional_usd[:5].sum(axis=1)), [1, 1, 1, 1, -1])
        np.testing.assert_array_equal(population.notional_usd[5:], plain.notional_usd[5:])
        np.testing.assert_array_equal(population.leverage, plain.leverage)
        sizes.append(gross[0])
    assert sizes[1] == pytest.approx(sizes[0], rel=0.15)  # the body's total is a sample: about 4% at 1,000


def test_whales_need_more_accounts_than_their_count():
    scenario = _scenario(whales={"count": 5, "notional_share": 0.2})
    with pytest.raises(ValueError, match=r"population.whales.count \(5\) must be below the number of accounts \(5\)"):
        generate_population(scenario.population, scenario.markets, n=5)


def _momentum(n: int, reference_accounts=None, seed=0):
    data = base_scenario()
    data["population"] = {"notional": {"median": 10_000, "sigma": 0.5}, "reference_accounts": reference_accounts,
                          "market_weights": {"BTC": 3, "ETH": 1}}
    data["agents"] = {"momentum": {"fraction": 0.1, "side": "short", "start_step": 10, "end_step": 20,
                                   "leverage": 30}}
    scenario = scenario_from_dict(data)
    return scenario, generate_momentum(scenario.agents.momentum, scenario.population, scenario.markets, n, seed)


def test_momentum_traders_are_drawn_as_their_spec_says():
    """A tenth of the population more, short, on the weighted markets only, each opening in the
    window at its leverage within the market's initial margin (BTC allows 19x at imr 5% and 95% of
    the limit, so 30x is capped there), reproducible from the seed."""
    scenario, group = _momentum(2_000)
    assert group.n_accounts == 200
    assert np.all(group.notional_usd < 0)
    assert set(group.market.tolist()) == {0, 1}  # SOL has no weight
    assert 0.65 < np.mean(group.market == 0) < 0.85
    assert group.step.min() >= 10 and group.step.max() < 20
    imr = np.array([m.imr for m in scenario.markets])[group.market]
    leverage = -group.notional_usd / group.collateral_usd
    np.testing.assert_allclose(leverage, np.minimum(30, 0.95 / imr))
    _, again = _momentum(2_000)
    np.testing.assert_array_equal(again.notional_usd, group.notional_usd)
    _, other = _momentum(2_000, seed=1)
    assert not np.array_equal(other.notional_usd, group.notional_usd)


def test_momentum_traders_sample_the_same_exchange_with_reference_accounts():
    """With reference_accounts, 8,000 accounts bring four times as many momentum traders as 2,000,
    each a quarter the size: the same total (in expectation)."""
    _, fine = _momentum(8_000, reference_accounts=2_000)
    _, reference = _momentum(2_000, reference_accounts=2_000)
    assert fine.n_accounts == 4 * reference.n_accounts
    assert fine.notional_usd.sum() == pytest.approx(reference.notional_usd.sum(), rel=0.1)


def test_vault_and_insurance_fund_sizing():
    scenario, population = _population(
        n=1000,
        long_fraction=0.9,
        vault={"margin_multiple": 3.0, "min_usd": 1.0},
        insurance_fund={"fraction_of_notional": 0.01},
    )
    funds = size_vault_and_insurance_fund(population, scenario.population, scenario.markets)
    imr = np.array([market.imr for market in scenario.markets])
    vault_margin = (np.abs(population.net_notional_usd) * imr).sum()
    assert funds.vault_collateral_usd == pytest.approx(3.0 * vault_margin, abs=0.01)
    assert funds.insurance_fund_usd == pytest.approx(0.01 * population.gross_notional_usd.sum(), abs=0.01)

    fixed = _scenario(vault={"collateral_usd": 2e6}, insurance_fund={"usd": 5e4})
    funds = size_vault_and_insurance_fund(population, fixed.population, fixed.markets)
    assert (funds.vault_collateral_usd, funds.insurance_fund_usd) == (2e6, 5e4)


def test_oct_2025_population_is_long_heavy():
    scenario = load_scenario("oct-2025")
    population = population_for_scenario(scenario)
    assert 0.85 <= population.long_share <= 0.90
    imr = np.array([market.imr for market in scenario.markets])
    assert np.all((np.abs(population.notional_usd) * imr).sum(axis=1) <= population.collateral_usd)
    assert population.leverage.max() <= 40


@settings(max_examples=40, deadline=None)
@given(
    long_fraction=st.floats(0, 1),
    cross_fraction=st.floats(0, 1),
    hedged_fraction=st.floats(0, 1),
    markets_per_account=st.integers(2, 3),
    median_leverage=st.floats(1, 100),
    sigma=st.floats(0, 2),
    seed=st.integers(0, 2**32),
)
def test_every_population_opens_within_its_margin(
    long_fraction, cross_fraction, hedged_fraction, markets_per_account, median_leverage, sigma, seed
):
    scenario, population = _population(
        n=200,
        seed=seed,
        long_fraction=long_fraction,
        cross_fraction=cross_fraction,
        hedged_fraction=hedged_fraction,
        markets_per_account=markets_per_account,
        leverage={"median": median_leverage, "sigma": sigma},
    )
    imr = np.array([market.imr for market in scenario.markets])
    initial_margin = (np.abs(population.notional_usd) * imr).sum(axis=1)
    assert np.all(initial_margin <= population.collateral_usd * (1 + 1e-9))
    assert np.all(population.leverage >= 1) and np.all(population.collateral_usd > 0)
    held = population.markets_held().sum(axis=1)
    assert np.all(held[population.isolated] == 1) and np.all(held >= 1) and np.all(held <= markets_per_account)
    np.testing.assert_allclose(population.notional_usd[population.hedged].sum(axis=1), 0, atol=1e-6)


def test_trader_address_is_the_checksummed_keccak_of_its_name():
    """A trader's address is the EIP-55 checksum of the last 20 bytes of keccak-256 of
    "perpsim-trader-<seed>-<index>" (the runner's own hash and checksum against eth-utils')."""
    from eth_utils import keccak, to_checksum_address

    from simulator.runner import trader_address

    for seed, index in ((0, 0), (0, 99_999), (7, 10**9 + 1)):
        expected = to_checksum_address(keccak(f"perpsim-trader-{seed}-{index}".encode())[12:])
        assert trader_address(seed, index) == expected
