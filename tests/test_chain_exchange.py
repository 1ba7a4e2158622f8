"""The simulator's batched JSON-RPC backend against the contracts on anvil."""

import pytest
from eth_utils import keccak, to_checksum_address

from simulator.chain.deploy import BadDebtPolicy, MarketSpec, deploy_system
from simulator.chain.exchange import ChainExchange
from simulator.exchange import BookSeed, Liquidate, PushPrice, SetDepth, TraderSeed
from simulator.units import oracle_answer, usdc, wad
from tests.isolation import isolated

WAD = 10**18


def address(i):
    return to_checksum_address(keccak(text=f"trader-{i}")[12:])


@pytest.fixture
def exchange(project, deployer, vault_account, chain):
    with isolated(chain):
        system = deploy_system(project, deployer, vault_account,
                               [MarketSpec("BTC", 100_000, depth2pct=10_000_000, policy=BadDebtPolicy.NONE),
                                MarketSpec("ETH", 4_000, depth2pct=5_000_000)], vault_collateral_usd=0)
        ex = ChainExchange(system, chain.provider.uri)
        yield ex
        ex.close()


def test_open_book_scan_and_liquidate(exchange):
    traders = [
        TraderSeed(address(0), usdc(10_000), {0: wad("0.99")}),  # 9.9x long BTC
        TraderSeed(address(1), usdc(10_000), {0: -WAD // 2, 1: wad(5)}),  # cross: short BTC, long ETH
        TraderSeed(address(2), usdc(5_000), {1: wad(10)}, isolated_market=1),  # isolated 8x ETH
        TraderSeed(address(3), usdc(100), {0: WAD}),  # too little margin: rejected
    ]
    report = exchange.open_book(BookSeed(traders, vault_collateral=usdc(5_000_000), insurance_fund=usdc(1_000)),
                                exchange.timestamp + 1)
    assert report.positions_opened == 4
    assert [(a, m) for a, m, _ in report.positions_rejected] == [(address(3), 0)]
    assert "InsufficientMargin" in report.positions_rejected[0][2]
    scan = exchange.scan()
    assert len(scan.ids) == 5  # four cross accounts (one emptied into its isolated bucket) and the bucket
    assert scan.liquidatable() == []
    snapshot = exchange.snapshot()
    assert snapshot.long_open_interest[0] == wad("0.99") and snapshot.short_open_interest[0] == WAD // 2
    assert snapshot.insurance_fund == wad(1_000)

    results = exchange.execute([PushPrice(0, oracle_answer(91_000)), SetDepth(1, wad(1_000_000))],
                               exchange.timestamp + 1)
    assert all(r.ok for r in results)
    scan = exchange.scan()
    [victim] = scan.liquidatable()
    assert victim == int(address(0), 16)
    assert exchange.open_markets([victim]) == [[0]]
    assert exchange.adl_required([(victim, 0)]) == [False]
    [result] = exchange.execute([Liquidate(victim, 0)], exchange.timestamp + 1)
    assert result.ok, result.error
    names = [name for name, _ in result.events]
    assert "Liquidation" in names and "PositionChanged" in names
    [liquidation] = [args for name, args in result.events if name == "Liquidation"]
    assert liquidation["sizeClosed"] == -wad("0.99")
    # Liquidating again fails and names the error.
    [again] = exchange.execute([Liquidate(victim, 0)], exchange.timestamp + 1)
    assert not again.ok and "NoPosition" in again.error
    tokens, claims, fund = exchange.balance_sheet()
    assert tokens - claims - fund >= 0


def test_a_tripped_breaker_hides_only_the_accounts_that_hold_its_market(project, deployer, vault_account, chain):
    """healthRange fails for a chunk holding an account in a market whose price is refused; the
    scan then asks that chunk's accounts one by one, so the others stay visible to the keepers."""
    with isolated(chain):
        system = deploy_system(project, deployer, vault_account,
                               [MarketSpec("BTC", 100_000, depth2pct=10_000_000, max_deviation="0.05", cooldown=600),
                                MarketSpec("ETH", 4_000, depth2pct=5_000_000)], vault_collateral_usd=0)
        exchange = ChainExchange(system, chain.provider.uri)
        try:
            traders = [
                TraderSeed(address(0), usdc(10_000), {0: wad("0.5")}),  # BTC only
                TraderSeed(address(1), usdc(10_000), {1: wad("24")}),  # 9.6x long ETH only
                TraderSeed(address(2), usdc(20_000), {0: wad("0.5"), 1: wad(5)}),  # both
            ]
            exchange.open_book(BookSeed(traders, vault_collateral=usdc(5_000_000), insurance_fund=usdc(1_000)),
                               exchange.timestamp + 1)
            assert len(exchange.scan().ids) == 3
            # ETH falls 7% (ETH-only long now below maintenance); BTC prints a wick the breaker refuses.
            results = exchange.execute([PushPrice(1, oracle_answer(3_720)), PushPrice(0, oracle_answer(80_000))],
                                       exchange.timestamp + 1)
            assert all(r.ok for r in results)
            assert any(name == "CircuitBreakerTripped" for r in results for name, _ in r.events)
            assert exchange.snapshot().price_status[0] == 4  # BTC tripped
            scan = exchange.scan()
            assert scan.ids == [int(address(1), 16)]
            assert scan.liquidatable() == [int(address(1), 16)]
            [result] = exchange.execute([Liquidate(int(address(1), 16), 1)], exchange.timestamp + 1)
            assert result.ok, result.error
        finally:
            exchange.close()
