"""Registry growth under a gas cap (issue 17): 2,500 dust accounts (registered for 1e-6 USDC each,
300 of them 1-wei winners) put `adlRanking`, which loops over every account, beyond a 30M
`eth_call` gas cap, while the keepers, ranking from their off-chain
index (simulator/position_index.py), still liquidate and deleverage, every transaction under 30M
gas. Minimums (tests/test_minimums.py) stop new dust; this is what already-registered dust costs.

Chain only; 1-3 minutes (2,800 set-up transactions in blocks of 100: the matched fills are the slow
part, about 0.1 s each on anvil)."""

from __future__ import annotations

from simulator.position_index import PositionIndex
from tests.conftest import BTC, WAD
from tests.dust import GAS_CAP, capped_call, gas_of, keeper_exchange, make_dust

EMPTY, WINNERS = 2_200, 300
BTC_PRICE = 100_000 * WAD


def test_keepers_liquidate_and_deleverage_past_thousands_of_dust_accounts(base_system, chain, alice, bob, carol,
                                                                          deployer, accounts):
    system = base_system
    dave = accounts[5]
    exchange = keeper_exchange(system, chain.provider.uri)
    rpc = exchange.chain
    system.usdc.mint(deployer, EMPTY + WINNERS, sender=deployer)
    system.usdc.approve(system.engine, EMPTY + WINNERS, sender=deployer)
    system.fund(carol, 1_000)  # the dust winners' long counterparty
    system.fund(alice, 10_700)  # 1 BTC long at 10.7% margin: bankrupt at $85,000 (no fund: ADL)
    system.fund(bob, 50_000)  # alice's counterparty: the real winner
    system.fund(dave, 1_700)  # 0.1 BTC long: below MM but with equity at $85,000 (a liquidation)
    system.engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.engine.settleMatchedFill(dave, bob, BTC, WAD // 10, BTC_PRICE, sender=deployer)
    make_dust(rpc, deployer.address, EMPTY, WINNERS, carol.address, BTC_PRICE)
    assert system.engine.accountCount() >= EMPTY + WINNERS
    system.set_price(BTC, 85_000)

    # The views over every account no longer answer under the cap.
    assert gas_of(rpc, "liquidator", "adlRanking", (BTC, 1)) > GAS_CAP
    assert capped_call(rpc, "liquidator", "adlRanking", (BTC, 1)) is not None
    # The keepers' per-account views still do.
    alice_id, dave_id = int(alice.address, 16), int(dave.address, 16)
    for call in (("engine", "isAccountLiquidatable", (alice_id,)), ("liquidator", "adlRequired", (alice_id, BTC)),
                 ("engine", "healthOf", ([alice_id, dave_id],))):
        assert capped_call(rpc, *call) is None, call

    # The keepers' index ranks the winners off chain: bob first, then dust.
    index = PositionIndex(exchange, len(system.feeds), exchange.vault_id)
    index.bootstrap(exchange.account_ids())
    scan = index.screen(exchange.snapshot(), exchange.timestamp)
    assert {alice_id, dave_id} <= set(scan.liquidatable())
    ranking = index.adl_ranking(BTC, 1, by_score=True)
    assert len(ranking) == WINNERS + 1
    assert ranking[0].account_id == int(bob.address, 16) and -ranking[0].size >= WAD

    receipt = system.liquidator.liquidateAccount(dave_id, BTC, 2**256 - 1, sender=deployer)
    assert receipt.gas_used < GAS_CAP
    assert system.engine.positionOf(dave_id, BTC)[0] == 0
    assert system.liquidator.adlRequired(alice_id, BTC)
    receipt = system.liquidator.deleverageAccount(alice_id, BTC, [ranking[0].account_id], sender=deployer)
    assert receipt.gas_used < GAS_CAP
    assert system.engine.positionOf(alice_id, BTC)[0] == 0
