"""Invariant checks of INVARIANTS.md on the deployed contracts, called after state changes.

Numbered as in INVARIANTS.md."""

from __future__ import annotations

# Rounding dust the protocol may keep per test (wei of WAD USD): each fill, funding settlement
# and margin computation rounds by at most a few wei in the protocol's favour.
MAX_DUST_WEI = 10**9


def registered_accounts(engine) -> list[int]:
    return [engine.accountIds(i) for i in range(engine.accountCount())]


def check_conservation(system) -> int:
    """Invariant 1: tokens held + bad debt = net claims + insurance fund + dust, with dust >= 0.

    Claims are collateral minus open notional minus pending funding and socialised loss, summed over
    all accounts (the vault included): the sum of account values at any common price, since sizes
    sum to zero. Under the NONE policy the protocol owes bad debt it does not hold."""
    tokens, claims, fund = system.engine.balanceSheet()
    dust = tokens + system.engine.badDebt() - claims - fund
    assert dust >= 0, f"claims exceed tokens by {-dust} wei (tokens {tokens}, claims {claims}, fund {fund})"
    assert dust <= MAX_DUST_WEI, f"{dust} wei unaccounted for: more than rounding dust"
    return dust


def check_open_interest(system) -> None:
    """Invariant 2: sizes sum to zero per market; trader OI long - short + vault size = 0."""
    engine = system.engine
    ids = registered_accounts(engine)
    for market_id in range(engine.marketCount()):
        sizes = [engine.positionOf(i, market_id)[0] for i in ids]
        assert sum(sizes) == 0, f"market {market_id}: sizes sum to {sum(sizes)}"
        view = engine.marketView(market_id)
        assert view.longOpenInterest - view.shortOpenInterest + view.vaultSize == 0
        vault_id = int(system.vault.address, 16)
        assert view.longOpenInterest == sum(s for i, s in zip(ids, sizes) if s > 0 and i != vault_id)


def check_insurance_fund(system) -> None:
    """Invariant 4: the insurance fund never goes negative (it is a uint256; this checks it is
    backed: the fund alone never exceeds the tokens held). Its earmarks add up to the reserved
    total and belong to accounts that still hold positions (a closed-out account's was settled)."""
    engine = system.engine
    tokens, _, fund = engine.balanceSheet()
    assert 0 <= fund <= tokens
    assert fund == engine.insuranceFund() + engine.insuranceFundReserved()
    reserves = {i: engine.fundReserveOf(i) for i in registered_accounts(engine)}
    assert sum(reserves.values()) == engine.insuranceFundReserved()
    for account_id, reserved in reserves.items():
        assert reserved == 0 or engine.marketMaskOf(account_id) != 0, (account_id, reserved)


def check_invariants(system) -> None:
    check_conservation(system)
    check_open_interest(system)
    check_insurance_fund(system)
