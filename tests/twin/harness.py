"""The Twin: the contracts on anvil (through Ape, one transaction per call) and the numpy model
(`simulator.model.Protocol`) driven in lockstep, every outcome and the whole state compared after
every operation (invariant 11); the module's deployment (`build_env`) and the scenario drivers of
the differential and stateful suites."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ape.exceptions import ContractLogicError, VirtualMachineError

from simulator.agents import reference_keeper
from simulator.agents.reference_keeper import MAX_UINT, KeeperReport
from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec, deploy_system
from simulator.chain.exchange import contract_abi
from simulator.chain.rpc import BatchedChain, Tx
from simulator.model import LiquidationParams, MarketParams, Protocol
from simulator.model import funding as FundingMath
from simulator.model.errors import InvalidPrice, ModelRevert
from simulator.model.events import EVENT_FIELDS as _EVENT_FIELDS
from simulator.model.events import ORACLE_EVENTS as _ORACLE_EVENTS
from simulator.units import WAD, oracle_answer, usdc, wad
from tests.model.helpers import check_invariants as check_model_invariants
from tests.twin.oracle import HEARTBEAT, ORACLE_SCALE, FeedState, OracleShadow
from tests.twin.reader import Reader, Reverted, model_error, norm, norm_args

if TYPE_CHECKING:
    from tests.twin.strategies import Scenario

# Market slots of the module's deployment (prices stay the slot's); each example configures their
# parameters from SPECS with setMarketParams / setTiers / setLiquidationParams.
# Their feeds' heartbeat is HEARTBEAT (tests/twin/oracle.py).
SLOTS = (("BTC", 100_000), ("ETH", 4_000), ("SOL", 200))

SPECS: dict[str, dict] = {
    "adl-pnl": dict(imr="0.1", mmr="0.05", depth2pct=3_000_000, slice_threshold=500_000,
                    max_funding_rate="0.00001", skew_scale=50),
    "socialize-tiers": dict(imr="0.05", mmr="0.025", tiers=((300_000, "0.05"),), depth2pct=1_000_000,
                            max_impact="0.15", policy=BadDebtPolicy.SOCIALIZE, max_funding_rate="0.00002",
                            skew_scale=1_000),
    "none-rate-limited": dict(imr="0.2", mmr="0.1", depth2pct=500_000, policy=BadDebtPolicy.NONE,
                              rate_limit_notional=200_000, rate_limit_window=60, slice_threshold=100_000,
                              slice_fraction="0.25", max_open_interest=2_000),
    # The top tier's MM (20% - $30k) exceeds the base IM (10%) above $300k notional: IM is the MM there.
    "adl-pro-rata-tiers": dict(imr="0.1", mmr="0.04", tiers=((100_000, "0.06"), (200_000, "0.2")),
                               depth2pct=2_000_000, ranking=AdlRanking.PRO_RATA, liquidation_fee="0.02",
                               keeper_share="0.5"),
    # The papers' queue baseline (whole winners, the rest to the vault) and the capped pro-rata haircut.
    "adl-queue": dict(imr="0.1", mmr="0.05", depth2pct=500_000, max_impact="0.3", ranking=AdlRanking.QUEUE,
                      max_funding_rate="0.00001", skew_scale=100),
    "adl-capped-pro-rata": dict(imr="0.05", mmr="0.025", depth2pct=400_000, max_impact="0.3",
                                ranking=AdlRanking.CAPPED_PRO_RATA, slice_threshold=80_000),
    "adl-hyperliquid": dict(imr="0.08", mmr="0.04", depth2pct=600_000, max_impact="0.3",
                            ranking=AdlRanking.HYPERLIQUID, slice_threshold=120_000),
    "adl-min-overshoot": dict(imr="0.1", mmr="0.05", depth2pct=300_000, max_impact="0.3",
                              ranking=AdlRanking.MIN_OVERSHOOT, skew_scale=300),
    # Leverage draining (arXiv 2603.15963): the most levered winners first, drained to one leverage.
    "adl-leverage-drain": dict(imr="0.1", mmr="0.05", depth2pct=400_000, max_impact="0.3",
                               ranking=AdlRanking.LEVERAGE_DRAIN, max_funding_rate="0.00001", skew_scale=150),
    "adl-thin": dict(imr="0.04", mmr="0.02", depth2pct=200_000, max_impact="0.3", slice_threshold=50_000,
                     max_funding_rate="0.00005", skew_scale=200),
}


def slot_spec(slot: int, name: str, **overrides) -> MarketSpec:
    """The MarketSpec of `slot` configured as SPECS[name] (price and oracle settings of the slot)."""
    market, price = SLOTS[slot]
    return MarketSpec(market, price, heartbeat=HEARTBEAT, **{**SPECS[name], **overrides})


def base_specs() -> list[MarketSpec]:
    """What the module deploys: the slots with default parameters (each example reconfigures)."""
    return [MarketSpec(name, price, heartbeat=HEARTBEAT, depth2pct=1_000_000) for name, price in SLOTS]


# ================================================================================================
# The twin
# ================================================================================================


@dataclass
class Outcome:
    ok: bool
    events: list = field(default_factory=list)  # [(name, args)] of the engine and liquidation engine
    error: Reverted | None = None
    result: Any = None

    def named(self, name: str) -> list[dict]:
        return [args for event, args in self.events if event == name]


class Mismatch(AssertionError):
    pass


# Events of the engine and the liquidation engine (what the model emits). The twin's model side
# follows the router with OracleShadow, which emits nothing: the feeds' and router's events are
# compared through what they decide (prices, errors), not as events.
_OUR_EVENTS = set(_EVENT_FIELDS) - set(_ORACLE_EVENTS)


@dataclass
class Env:
    """What the module deployed, shared by the examples."""

    chain: Any
    system: Any
    reader: Reader
    model: Protocol  # the model of the deployment, copied by each example
    traders: list  # Ape accounts
    keeper: Any
    vault: Any
    batched: BatchedChain | None = None  # several transactions in one block (Twin.same_block)


class Twin:
    """Chain and model in lockstep: every call runs on both, outcomes and state are compared."""

    def __init__(self, env: Env, check_every_op: bool = True):
        self.env = env
        self.chain, self.system, self.reader = env.chain, env.system, env.reader
        self.engine, self.liquidator = env.system.engine, env.system.liquidator
        self.model: Protocol = copy.deepcopy(env.model)
        self.model.events.clear()
        self.deployer = env.system.deployer
        self.deployer_id = int(self.deployer.address, 16)
        self.keeper = env.keeper
        self.keeper_id = int(env.keeper.address, 16)
        self.vault_id = int(env.vault.address, 16)
        self.n_markets = self.model.market_count()
        # The router as deployed: each feed's one answer, breaker off, the answer as reference.
        feeds = []
        for m in range(self.n_markets):
            _, answer, _, updated_at, _ = self.system.feeds[m].latestRoundData()
            heartbeat = self.system.router.marketConfig(m)[2]
            feeds.append(FeedState(answer=answer, updated_at=updated_at, heartbeat=heartbeat,
                                   last_accepted=answer * ORACLE_SCALE))
        self.oracle = OracleShadow(feeds)
        self.specs: list[MarketSpec | None] = [None] * self.n_markets
        [number_hex, block] = self.reader.batch([], [("eth_blockNumber", []), ("eth_getBlockByNumber", ["latest", False])])
        assert int(number_hex, 16) == self.model.block_number, "the model does not start at the module's head"
        assert int(block["timestamp"], 16) == self.model.timestamp
        self.check_every_op = check_every_op
        self.ops = 0
        self.log: list[str] = []
        # Invariant bookkeeping: all engine events of successful calls; funding settled (sum of
        # FundingSettled) and the number of settlements of open positions (silent ones included).
        self.history: list[tuple[str, dict]] = []
        self.funding_paid = 0
        self.settlements = 0

    # --- sending ----------------------------------------------------------------------------

    def _sync_prices(self) -> None:
        for m in range(self.n_markets):
            self.model.prices[m] = self.oracle.usable_price(m, self.model.timestamp)

    def _advance(self, seconds: int) -> None:
        timestamp = self.model.timestamp + seconds
        self.chain.pending_timestamp = timestamp
        self.model.advance(seconds, 1)
        self._sync_prices()

    def send(self, label: str, chain_call: Callable, model_call: Callable, seconds: int = 0,
             expect_ok: bool = False, pre: Callable | None = None) -> Outcome:
        """One transaction on both sides, `seconds` after the previous block. `pre` runs on the
        model in the transaction's block, before it (what the transaction will see)."""
        self.ops += 1
        self.log.append(label)
        self._advance(seconds)
        if pre is not None:
            pre()
        since = len(self.model.events)
        model_result, model_exc = None, None
        try:
            model_result = model_call()
        except ModelRevert as exc:
            model_exc = exc
        chain_exc, receipt = None, None
        try:
            receipt = chain_call()
        except (ContractLogicError, VirtualMachineError) as exc:
            chain_exc = exc
        if model_exc is None and chain_exc is None:
            chain_events = self._receipt_events(receipt)
            model_events = [(e.event_name, norm_args(e.args)) for e in self.model.events[since:]]
            if chain_events != model_events:
                raise Mismatch(f"{label}: events differ\n chain {chain_events}\n model {model_events}")
            if receipt.block_number != self.model.block_number:
                raise Mismatch(f"{label}: mined in block {receipt.block_number}, model at {self.model.block_number}")
            outcome = Outcome(True, chain_events, result=model_result)
            self.history.extend(chain_events)
            for name, args in chain_events:
                if name == "FundingSettled":
                    self.funding_paid += args["amount"]
                elif name == "PositionChanged" and args["newSize"] != args["sizeDelta"]:
                    self.settlements += 1  # the fill settled the funding of an open position
        elif model_exc is not None and chain_exc is not None:
            chain_error = self.reader.chain_error(chain_exc)
            expected = model_error(model_exc)
            if isinstance(model_exc, InvalidPrice) and self.model.prices[model_exc.marketId] == 0:
                expected = self.oracle.error(model_exc.marketId, self.model.timestamp)
            if chain_error.key() != expected.key():
                raise Mismatch(f"{label}: chain reverted {chain_error}, model {expected}")
            outcome = Outcome(False, error=chain_error)
        elif model_exc is not None:
            raise Mismatch(f"{label}: the model reverted {model_error(model_exc)}, the chain did not")
        else:
            raise Mismatch(f"{label}: the chain reverted {self.reader.chain_error(chain_exc)}, the model did not")
        del self.model.events[since:]  # compared: the model's log need not grow
        if expect_ok and not outcome.ok:
            raise AssertionError(f"{label} reverted: {outcome.error}")
        if self.check_every_op:
            self.compare_state(label)
        return outcome

    def _receipt_events(self, receipt) -> list[tuple[str, dict]]:
        ours = {self.engine.address.lower(), self.liquidator.address.lower()}
        return [
            (log.event_name, norm_args(log.event_arguments))
            for log in receipt.events
            if str(log.contract_address).lower() in ours
        ]

    # --- the operations (chain call, model call) --------------------------------------------

    def deposit(self, who, amount, seconds=0) -> Outcome:
        """`amount` in token units."""
        who_id = int(who.address, 16)
        return self.send(f"deposit({who_id:#x}, {amount})",
                         lambda: self.engine.deposit(amount, sender=who),
                         lambda: self.model.deposit(who_id, amount), seconds)

    def withdraw(self, who, amount, seconds=0) -> Outcome:
        """`amount` in token units."""
        who_id = int(who.address, 16)
        return self.send(f"withdraw({who_id:#x}, {amount})",
                         lambda: self.engine.withdraw(amount, sender=who),
                         lambda: self.model.withdraw(who_id, amount), seconds)

    def transfer_margin(self, who, m, amount, seconds=0) -> Outcome:
        who_id = int(who.address, 16)
        return self.send(f"transferMargin({who_id:#x}, {m}, {amount})",
                         lambda: self.engine.transferMargin(m, amount, sender=who),
                         lambda: self.model.transfer_margin(who_id, m, amount), seconds)

    def open(self, who, m, size, isolated=False, price_limit=None, seconds=0) -> Outcome:
        who_id = int(who.address, 16)
        limit = price_limit if price_limit is not None else (MAX_UINT if size > 0 else 0)
        if isolated:
            return self.send(f"openIsolatedPosition({who_id:#x}, {m}, {size})",
                             lambda: self.engine.openIsolatedPosition(m, size, limit, sender=who),
                             lambda: self.model.open_isolated_position(who_id, m, size, limit), seconds)
        return self.send(f"openPosition({who_id:#x}, {m}, {size})",
                         lambda: self.engine.openPosition(m, size, limit, sender=who),
                         lambda: self.model.open_position(who_id, m, size, limit), seconds)

    def matched(self, buyer, seller, m, size, price, seconds=0) -> Outcome:
        b, s = int(buyer.address, 16), int(seller.address, 16)
        return self.send(f"settleMatchedFill({b:#x}, {s:#x}, {m}, {size}, {price})",
                         lambda: self.engine.settleMatchedFill(buyer, seller, m, size, price, sender=self.deployer),
                         lambda: self.model.settle_matched_fill(b, s, m, size, price), seconds)

    def set_min_collateral(self, minimum, seconds=0) -> Outcome:
        return self.send(f"setMinCollateral({minimum})",
                         lambda: self.engine.setMinCollateral(minimum, sender=self.deployer),
                         lambda: self.model.set_min_collateral(minimum), seconds)

    def set_depth(self, m, depth, seconds=0) -> Outcome:
        return self.send(f"setDepth({m}, {depth})",
                         lambda: self.engine.setDepth(m, depth, sender=self.deployer),
                         lambda: self.model.set_depth(m, depth, sender=self.deployer_id), seconds)

    def deposit_insurance(self, amount_usd, seconds=0) -> Outcome:
        amount = usdc(amount_usd)
        return self.send(f"depositInsurance({amount_usd})",
                         lambda: self.engine.depositInsurance(amount, sender=self.deployer),
                         lambda: self.model.deposit_insurance(amount, sender=self.deployer_id), seconds)

    def settle_funding(self, account_id, m, seconds=0) -> Outcome:
        held = []
        outcome = self.send(f"settleFunding({account_id:#x}, {m})",
                            lambda: self.engine.settleFunding(account_id, m, sender=self.deployer),
                            lambda: self.model.settle_funding(account_id, m), seconds,
                            pre=lambda: held.append(self.model.position_of(account_id, m)[0] != 0))
        if outcome.ok and held[0]:
            self.settlements += 1
        return outcome

    def check_funding(self) -> None:
        """Invariant 3: funding paid equals funding received, up to dust in the protocol's favour.
        Every settlement and every pending amount (at the stored index) rounds up by less than a
        wei, and the exact amounts sum to zero (sizes sum to zero at every accrual), so
        0 <= settled + pending <= settlements + open positions."""
        model = self.model
        pending, open_positions = 0, 0
        for i in model.account_ids:
            for m in range(self.n_markets):
                size, _, index = model.position_of(i, m)
                if size != 0:
                    open_positions += 1
                    pending += FundingMath.owed(size, model.markets[m].funding_index, index)
        total = self.funding_paid + pending
        assert 0 <= total <= self.settlements + open_positions, (
            f"funding: settled {self.funding_paid} + pending {pending} = {total} wei over "
            f"{self.settlements} settlements and {open_positions} open positions")

    def accrue_funding(self, m, seconds=0) -> Outcome:
        return self.send(f"accrueFunding({m})",
                         lambda: self.engine.accrueFunding(m, sender=self.deployer),
                         lambda: self.model.accrue_funding(m), seconds)

    def liquidate(self, account_id, m, max_size=MAX_UINT, seconds=0) -> Outcome:
        """liquidateAccount, with invariants 5 and 8 (no-position accounts lose nothing) checked."""
        model = self.model
        seen: dict = {}

        def pre():
            seen["liquidatable"] = self._probe(lambda: model.is_account_liquidatable(account_id))
            seen["health"] = self.health(account_id)
            seen["idle"] = self._idle_collateral()

        outcome = self.send(f"liquidateAccount({account_id:#x}, {m}, {max_size})",
                            lambda: self.liquidator.liquidateAccount(account_id, m, max_size, sender=self.keeper),
                            lambda: model.liquidate_account(account_id, m, max_size, keeper=self.keeper_id),
                            seconds, pre=pre)
        # Invariant 5: a healthy account cannot be liquidated ...
        if seen["liquidatable"] is False:
            assert not outcome.ok, f"liquidated healthy account {account_id:#x}"
            assert outcome.error.name in ("NotLiquidatable", "NoPosition", "VaultAccount"), outcome.error
        if outcome.ok:
            [event] = outcome.named("Liquidation")
            # ... and a liquidation never leaves it less healthy unless it closes the position.
            if model.position_of(account_id, m)[0] != 0:
                value, mm, _ = seen["health"]
                value_after, mm_after, _ = model.health(account_id)
                assert value_after - mm_after >= value - mm, (
                    f"partial liquidation of {account_id:#x} left it less healthy: "
                    f"{value - mm} -> {value_after - mm_after}")
            # The penalty only ever comes out of equity left after the fill.
            assert event["penalty"] == 0 or event["keeperReward"] <= event["penalty"]
            self._check_idle(seen["idle"], exempt={self.keeper_id}, label="liquidation")
        return outcome

    def deleverage(self, account_id, m, counterparties, seconds=0) -> Outcome:
        """deleverageAccount, with invariants 7 and 8 checked: it only succeeds where liquidate would
        revert UseDeleverage; fills at the bankruptcy price against opposite-side winners in ranking
        order; accounts without positions lose nothing."""
        model = self.model
        cps = [int(c) for c in counterparties]
        seen: dict = {}

        def pre():
            probe = copy.deepcopy(model)
            try:
                probe.liquidate_account(account_id, m, MAX_UINT, keeper=self.keeper_id)
                seen["liquidate"] = "ok"
            except ModelRevert as exc:
                seen["liquidate"] = type(exc).__name__
            seen["size"] = model.position_of(account_id, m)[0]
            seen["idle"] = self._idle_collateral()
            if seen["size"] != 0 and model.prices[m] != 0:
                seen["bankruptcy"] = self._probe(lambda: model.bankruptcy_price_of(account_id, m))
                seen["ranking"] = self._probe(lambda: model.adl_ranking(m, seen["size"]))
                price = model.prices[m]
                seen["cps"] = {}
                for cp in cps:
                    size, open_notional, _ = model.position_of(cp, m)
                    seen["cps"][cp] = (size, size * price // WAD - open_notional, model.health(cp)[0])

        outcome = self.send(f"deleverageAccount({account_id:#x}, {m}, {cps})",
                            lambda: self.liquidator.deleverageAccount(account_id, m, cps, sender=self.keeper),
                            lambda: model.deleverage_account(account_id, m, cps), seconds, pre=pre)
        if outcome.ok:
            # Invariant 7: ADL only where the book and the fund cannot absorb the liquidation.
            assert seen["liquidate"] == "UseDeleverage", f"ADL while liquidate would give {seen['liquidate']}"
            # Invariant 8.
            side = seen["size"]
            ranking_kind = AdlRanking(model.liquidation_params(m).ranking)
            # The bankrupt account's fills; under QUEUE the last winner's rest goes to the vault.
            fills = [f for f in outcome.named("AdlFill") if f["accountId"] == account_id]
            rest = [f for f in outcome.named("AdlFill") if f["accountId"] != account_id]
            filled = [f["counterpartyId"] for f in fills]
            # In list order; a PRO_RATA winner whose share rounds to nothing has no fill.
            assert filled == [cp for cp in cps if cp in set(filled)], "ADL fills out of the list's order"
            # (LEVERAGE_DRAIN: a winner drained by less than the rounding handed back has none.)
            assert set(filled) == set(cps) or ranking_kind.whole_ranking or ranking_kind == AdlRanking.LEVERAGE_DRAIN
            if ranking_kind == AdlRanking.CAPPED_PRO_RATA:
                # Each winner at its own price, no better for it than the oracle price.
                assert all((f["price"] - f["oraclePrice"]) * side >= 0 for f in fills)
            else:
                assert all(f["price"] == seen["bankruptcy"] for f in fills + rest)
            [event] = outcome.named("Deleveraged")
            closed = event["size"]
            assert sum(f["size"] for f in fills) == -closed and closed * side > 0 and abs(closed) <= abs(side)
            partial = closed != side
            if partial:
                # A partial ADL: only under the rankings by score, and every listed winner closes whole.
                assert not ranking_kind.whole_ranking and ranking_kind != AdlRanking.LEVERAGE_DRAIN, \
                    f"{ranking_kind.name} closed {closed} of {side}"
                assert all(model.position_of(cp, m)[0] == 0 for cp in cps), "a partial ADL left a winner open"
            if ranking_kind == AdlRanking.QUEUE:
                # Every listed winner closes whole; only the last one's rest, against the vault. The
                # vault itself, listed last, keeps its rest (it cannot trade with itself).
                assert all(model.position_of(cp, m)[0] == 0 for cp in cps if cp != model.vault or cp != cps[-1])
                assert [(f["accountId"], f["counterpartyId"]) for f in rest] in ([], [(model.vault, cps[-1])])
            else:
                assert rest == []
            if ranking_kind == AdlRanking.LEVERAGE_DRAIN:
                # The winners above zero value end at one leverage: each keeps a share of what they
                # keep together proportional to its value before, to within the units the rounding
                # handed back (or all of its size, capped).
                finite = [cp for cp in cps if seen["cps"][cp][2] > 0]
                kept = {cp: abs(model.position_of(cp, m)[0]) for cp in finite}
                together, equity = sum(kept.values()), sum(seen["cps"][cp][2] for cp in finite)
                for cp in finite:
                    size, _, value = seen["cps"][cp]
                    assert kept[cp] == abs(size) or abs(kept[cp] * equity - together * value) <= len(cps) * equity, \
                        f"LEVERAGE_DRAIN left {cp:#x} with {kept[cp]} of {abs(size)} (value {value}, {together} / {equity})"
                assert not finite or kept[finite[-1]] < abs(seen["cps"][finite[-1]][0]), "the last winner was not drained"
            for cp in cps:
                size, upnl, _ = seen["cps"][cp]
                assert size != 0 and (size > 0) != (side > 0) and upnl > 0, f"ADL hit {cp:#x}: {size}, {upnl}"
            ranking, _ = seen["ranking"]
            if not ranking_kind.whole_ranking:
                positions = [ranking.index(cp) for cp in cps]
                assert positions == sorted(positions), "ADL fills out of ranking order"
            else:
                assert cps == sorted(cps) and set(cps) <= set(ranking)
            assert model.position_of(account_id, m)[0] == side - closed
            self._check_idle(seen["idle"], exempt=set(), label="ADL")
        return outcome

    def _probe(self, read: Callable):
        try:
            return read()
        except ModelRevert as exc:
            return model_error(exc)

    def _idle_collateral(self) -> dict[int, int]:
        """Collateral of the registered accounts without any position."""
        return {i: self.model.collateral_of(i) for i in self.model.account_ids if self.model.market_mask_of(i) == 0}

    def _check_idle(self, idle: dict[int, int], exempt: set, label: str) -> None:
        """Invariant 8 (and 3.3): accounts with no open position never lose to liquidation or ADL."""
        for i, collateral in idle.items():
            if i in exempt:
                continue
            assert self.model.collateral_of(i) >= collateral, f"{label} took from {i:#x}, which held no position"

    def submit_price(self, m, answer, seconds=0) -> Outcome:
        """feed.submit of an 8-decimal `answer`: the router serves it from this block on (its checks
        permitting)."""
        feed = self.system.feeds[m]

        def model_call():
            self.oracle.submit(m, answer, self.model.timestamp)
            self.model.prices[m] = self.oracle.usable_price(m, self.model.timestamp)

        return self.send(f"submit({m}, {answer})", lambda: feed.submit(answer, sender=self.deployer),
                         model_call, seconds, expect_ok=True)

    def update_price(self, m, seconds=0) -> Outcome:
        """router.update: moves the breaker's reference or trips it."""
        usable = []

        def model_call():
            usable.append(self.oracle.update(m, self.model.timestamp))
            self._sync_prices()

        def chain_call():
            receipt = self.system.router.update(m, sender=self.deployer)
            assert receipt.return_value is usable[0], f"router.update({m}) returned {receipt.return_value}"
            return receipt

        return self.send(f"update({m})", chain_call, model_call, seconds, expect_ok=True)

    def set_price(self, m, answer, seconds=0) -> None:
        """System.set_price: submit an 8-decimal answer, then update."""
        self.submit_price(m, answer, seconds)
        self.update_price(m)

    def configure_oracle(self, m, heartbeat, max_deviation, cooldown, seconds=0) -> Outcome:
        """router.setMarket with the slot's feed."""
        feed = self.system.feeds[m]

        def model_call():
            self.oracle.configure(m, heartbeat, max_deviation, cooldown)
            self._sync_prices()

        return self.send(f"setMarket({m}, {heartbeat}, {max_deviation}, {cooldown})",
                         lambda: self.system.router.setMarket(m, feed, heartbeat, max_deviation, cooldown,
                                                              sender=self.deployer),
                         model_call, seconds, expect_ok=True)

    def configure_market(self, m: int, spec: MarketSpec, seconds=0) -> None:
        """setMarketParams, setTiers (when the spec has tiers) and setLiquidationParams from a spec."""
        params = spec.params()
        self.send(f"setMarketParams({m}, {spec.name})",
                  lambda: self.engine.setMarketParams(m, params, sender=self.deployer),
                  lambda: self.model.set_market_params(m, MarketParams(*params)), seconds, expect_ok=True)
        if spec.tiers:
            floors = [0] + [wad(floor) for floor, _ in spec.tiers]
            mmrs = [wad(spec.mmr)] + [wad(mmr) for _, mmr in spec.tiers]
            self.send(f"setTiers({m})", lambda: self.engine.setTiers(m, floors, mmrs, sender=self.deployer),
                      lambda: self.model.set_tiers(m, floors, mmrs), expect_ok=True)
        self.specs[m] = spec
        lp = spec.liquidation_params()
        self.send(f"setLiquidationParams({m})",
                  lambda: self.liquidator.setLiquidationParams(m, lp, sender=self.deployer),
                  lambda: self.model.set_liquidation_params(m, LiquidationParams.from_spec(spec)), expect_ok=True)

    # --- several transactions in one block -------------------------------------------------

    def same_block(self, label: str, txs: list[tuple], seconds: int = 0) -> list[Outcome]:
        """`txs`: (sender address, contract, function, args, model call), mined together in one block
        (automine off, evm_mine at the model's next timestamp) in the order given; the model runs
        them one after the other in that block. Events are compared per transaction; a failed
        transaction's error (receipts carry no
        revert data) is read from its call trace (debug_traceTransaction) and compared in full."""
        self.ops += 1
        self.log.append(label)
        batched = self.env.batched
        timestamp = self.model.timestamp + seconds
        self.model.advance(seconds, 1)
        self._sync_prices()
        expected = []
        for *_, model_call in txs:
            since = len(self.model.events)
            try:
                model_call()
                expected.append((True, [(e.event_name, norm_args(e.args)) for e in self.model.events[since:]]))
            except ModelRevert as exc:
                expected.append((False, model_error(exc)))
            del self.model.events[since:]
        batched.request("evm_setAutomine", [False])
        try:
            results = batched.transact([Tx(sender, contract, function, tuple(args)) for sender, contract, function, args, _ in txs],
                                       timestamp=timestamp)
        finally:
            batched.request("evm_setAutomine", [True])
        # The block's transactions in order: a failed one's revert data comes from its trace.
        block = batched.request("eth_getBlockByNumber", ["latest", False])
        hashes = block["transactions"]
        assert len(hashes) == len(txs) and int(block["number"], 16) == self.model.block_number
        outcomes = []
        for k, ((sender, contract, function, args, _), result, (ok, want)) in enumerate(zip(txs, results, expected)):
            what = f"{label}: {contract}.{function}{tuple(args)}"
            if result.ok != ok:
                raise Mismatch(f"{what}: chain {'succeeded' if result.ok else 'reverted ' + str(result.error)}, "
                               f"model {'succeeded' if ok else 'reverted ' + str(want)}")
            if ok:
                got = [(name, norm_args(args_)) for name, args_ in result.events if name in _OUR_EVENTS]
                if got != want:
                    raise Mismatch(f"{what}: events differ\n chain {got}\n model {want}")
                self.history.extend(got)
                for name, event in got:
                    if name == "FundingSettled":
                        self.funding_paid += event["amount"]
                    elif name == "PositionChanged" and event["newSize"] != event["sizeDelta"]:
                        self.settlements += 1
                outcomes.append(Outcome(True, got))
            else:
                trace = batched.request("debug_traceTransaction", [hashes[k], {"tracer": "callTracer"}])
                output = trace.get("output") or "0x"
                got = self.reader.decode_revert(bytes.fromhex(output[2:]))
                if isinstance(want, Reverted) and want.name == "InvalidPrice" and self.model.prices[want.args_["marketId"]] == 0:
                    want = self.oracle.error(want.args_["marketId"], self.model.timestamp)
                if got.key() != want.key():
                    raise Mismatch(f"{what}: chain reverted {got}, model {want}")
                outcomes.append(Outcome(False, error=got))
        if self.check_every_op:
            self.compare_state(label)
        return outcomes

    # --- views compared ---------------------------------------------------------------------

    def view(self, label: str, chain_read: tuple, model_read: Callable) -> Any:
        """A view on both sides: same value, or the same revert."""
        [chain_value] = self.reader.batch([chain_read])
        try:
            model_value = model_read()
        except ModelRevert as exc:
            model_value = model_error(exc)
            if isinstance(exc, InvalidPrice) and self.model.prices[exc.marketId] == 0:
                model_value = self.oracle.error(exc.marketId, self.model.timestamp)
        if isinstance(chain_value, Reverted) or isinstance(model_value, Reverted):
            if not (isinstance(chain_value, Reverted) and isinstance(model_value, Reverted)
                    and chain_value.key() == model_value.key()):
                raise Mismatch(f"{label}: chain {chain_value!r}, model {model_value!r}")
            return chain_value
        if norm(chain_value) != norm(model_value):
            raise Mismatch(f"{label}: chain {norm(chain_value)}, model {norm(model_value)}")
        return model_value

    def price(self, m):
        """router.price on the chain, the model's _priceOf: the price, or the router's refusal."""
        return self.view(f"price({m})", ("router", "price", m), lambda: self.model._price_of(m))

    def adl_required(self, account_id, m) -> bool:
        value = self.view(f"adlRequired({account_id:#x}, {m})", ("liquidator", "adlRequired", account_id, m),
                          lambda: self.model.adl_required(account_id, m))
        return value if not isinstance(value, Reverted) else False

    def adl_ranking(self, m, side) -> tuple[list[int], list[int]]:
        value = self.view(f"adlRanking({m}, {side})", ("liquidator", "adlRanking", m, side),
                          lambda: self.model.adl_ranking(m, side))
        if isinstance(value, Reverted):
            return [], []
        ids, scores = value
        return list(ids), list(scores)

    # --- the state ----------------------------------------------------------------------------

    def health(self, account_id) -> tuple[int, int, int] | None:
        """(AV, MM, IM) from the model (equal to the chain's after every compared operation); None
        when a price it needs is refused."""
        try:
            return self.model.health(account_id)
        except InvalidPrice:
            return None

    def compare_state(self, label: str = "") -> None:
        """Every observable of both sides after `label` (see the module docstring)."""
        model = self.model
        ids = list(model.account_ids)
        markets = range(self.n_markets)
        usable = all(model.prices[m] != 0 for m in markets)
        calls: list[tuple] = [
            ("engine", "accountCount"),
            ("engine", "marketViews"),
            ("engine", "insuranceFund"),
            ("engine", "insuranceFundReserved"),
            ("engine", "badDebt"),
            ("engine", "balanceSheet"),
        ]
        calls += [("liquidator", "rateWindows", m) for m in markets]
        calls += [("engine", "collateralOf", i) for i in ids]
        calls += [("engine", "fundReserveOf", i) for i in ids]
        calls += [("engine", "marketMaskOf", i) for i in ids]
        calls += [("engine", "positionOf", i, m) for i in ids for m in markets]
        calls += [("engine", "accountIdsFrom", 0, len(ids) + 1), ("engine", "accountStates", ids)]
        if usable:
            calls += [("engine", "healthOf", ids)]
        else:
            calls += [("engine", "health", i) for i in ids]
        calls += [("engine", "isAccountLiquidatable", i) for i in ids]
        pairs = [(i, m) for i in ids for m in markets]
        if usable:  # the keepers' many-account views (adlRequired fails on a refused price)
            calls += [("liquidator", "marketMasksAndReserves", ids)]
            calls += [("liquidator", "positionSizes", ids, m) for m in markets]
            calls += [("liquidator", "adlRequiredMany", [i for i, _ in pairs], [m for _, m in pairs])]
            calls += [("liquidator", "unrealizedPnls", [i for i, _ in pairs], [m for _, m in pairs])]
        # The bankruptcy price of every open position (ADL fills there; it counts the fund's earmark).
        bankrupt_pairs = [(i, m) for i, m in pairs if model.position_of(i, m)[0] != 0] if usable else []
        if usable:
            calls += [("engine", "bankruptcyPriceOf", i, m) for i, m in bankrupt_pairs]
            calls += [("liquidator", "adlRanking", m, side) for m in markets for side in (1, -1)]
        results = self.reader.batch(calls, [("eth_getBlockByNumber", ["latest", False])])
        block = results[-1]
        results = iter(results[:-1])

        def check(what, chain_value, model_value):
            if norm(chain_value) != norm(model_value):
                raise Mismatch(f"after {label}: {what}: chain {norm(chain_value)}, model {norm(model_value)}")

        check("block number", int(block["number"], 16), model.block_number)
        check("timestamp", int(block["timestamp"], 16), model.timestamp)
        check("accountCount", next(results), len(ids))
        views = next(results)
        for m in markets:
            view = model.market_view(m)
            check(f"marketView({m})", tuple(views[m]), (
                view.market_id, view.long_open_interest, view.short_open_interest, view.vault_size,
                view.funding_index, view.funding_rate, view.depth2pct, view.book_consumed, view.book_block,
                view.social_loss_index, view.last_funding_time,
            ))
        check("insuranceFund", next(results), model.insurance_fund)
        check("insuranceFundReserved", next(results), model.insurance_fund_reserved)
        check("badDebt", next(results), model.bad_debt)
        check("balanceSheet", next(results), model.balance_sheet())
        for m in markets:
            window = model.liquidator.rate_windows.get(m)
            check(f"rateWindows({m})", next(results), (window.start, window.used) if window else (0, 0))
        for i in ids:
            check(f"collateralOf({i:#x})", next(results), model.collateral_of(i))
        for i in ids:
            check(f"fundReserveOf({i:#x})", next(results), model.fund_reserve_of(i))
        for i in ids:
            check(f"marketMaskOf({i:#x})", next(results), model.market_mask_of(i))
        for i in ids:
            for m in markets:
                check(f"positionOf({i:#x}, {m})", next(results), model.position_of(i, m))
        check("accountIdsFrom", tuple(next(results)), tuple(model.account_ids_from(0, len(ids) + 1)))
        check("accountStates", tuple(tuple(column) for column in next(results)),
              tuple(tuple(column) for column in model.account_states(ids)))

        def model_health(i):
            try:
                return model.health(i)
            except InvalidPrice as exc:
                return self.oracle.error(exc.marketId, model.timestamp)

        if usable:
            values, mms, ims = next(results)
            for k, i in enumerate(ids):
                check(f"health({i:#x})", (values[k], mms[k], ims[k]), model.health(i))
        else:
            for i in ids:
                chain_value = next(results)
                model_value = model_health(i)
                if isinstance(chain_value, Reverted) or isinstance(model_value, Reverted):
                    check(f"health({i:#x})", getattr(chain_value, "key", lambda: chain_value)(),
                          getattr(model_value, "key", lambda: model_value)())
                else:
                    check(f"health({i:#x})", chain_value, model_value)
        for i in ids:
            chain_value = next(results)
            try:
                model_value = model.is_account_liquidatable(i)
            except InvalidPrice as exc:
                model_value = self.oracle.error(exc.marketId, model.timestamp)
            if isinstance(chain_value, Reverted) or isinstance(model_value, Reverted):
                check(f"isAccountLiquidatable({i:#x})", getattr(chain_value, "key", lambda: chain_value)(),
                      getattr(model_value, "key", lambda: model_value)())
            else:
                check(f"isAccountLiquidatable({i:#x})", chain_value, model_value)
        if usable:
            check("marketMasksAndReserves", next(results), model.market_masks_and_reserves(ids))
            for m in markets:
                check(f"positionSizes({m})", next(results), model.position_sizes(ids, m))
            check("adlRequiredMany", next(results),
                  [bool(r) for r in model.adl_required_many([i for i, _ in pairs], [m for _, m in pairs])])
            check("unrealizedPnls", next(results), model.unrealized_pnls([i for i, _ in pairs], [m for _, m in pairs]))
            for i, m in bankrupt_pairs:
                check(f"bankruptcyPriceOf({i:#x}, {m})", next(results), model.bankruptcy_price_of(i, m))
            for m in markets:
                for side in (1, -1):
                    check(f"adlRanking({m}, {side})", next(results), model.adl_ranking(m, side))

    # --- keepers ------------------------------------------------------------------------------

    def open_positions(self) -> list[tuple[int, int]]:
        """simulator/chain/keeper.open_positions: (account, market) of every open position, the
        vault excluded, in registration order."""
        found = []
        for account_id in self.model.account_ids:
            if account_id == self.vault_id:
                continue
            mask = self.model.market_mask_of(account_id)
            found += [(account_id, m) for m in range(self.n_markets) if mask >> m & 1]
        return found

    def canonical_counterparties(self, m: int, account_id: int, ranking: list[int]) -> list[int]:
        """The reference keeper's choice (simulator/agents/reference_keeper.canonical_counterparties)."""
        return reference_keeper.canonical_counterparties(TwinKeeper(self), m, account_id, ranking)

    def keeper_act(self, account_id: int, m: int, on_action: Callable | None = None) -> Outcome | None:
        """One decision of the reference keeper on (account, market), compared on both sides; None
        when there is nothing to act on."""
        keeper = TwinKeeper(self, on_action)
        attempt = reference_keeper.act(keeper, account_id, m)
        return None if attempt is None else keeper.outcome

    def run_keepers(self, max_rounds: int = 50, on_action: Callable | None = None) -> KeeperReport:
        """The reference keeper (simulator/agents/reference_keeper.run_keepers) on both sides:
        liquidate until nothing liquidatable is left that can be acted on; ADL with the canonical
        ranking when adlRequired."""
        return reference_keeper.run_keepers(TwinKeeper(self, on_action), max_rounds)


class TwinKeeper:
    """The Twin as the reference keeper's backend: every read the keeper decides on is compared on
    both sides (a view that reverts on both reads as "not liquidatable", "no ADL", an empty
    ranking), and each action is a compared transaction (`Twin.liquidate`, `Twin.deleverage`), or
    goes to `on_action(("liquidate", account, market, MAX_UINT) | ("deleverage", account, market,
    counterparties))`, which returns its Outcome. `outcome` is the last action's."""

    reverts = ()  # the twin's reads return a compared `Reverted` instead of raising

    def __init__(self, twin: Twin, on_action: Callable | None = None):
        self.twin, self.on_action = twin, on_action
        self.outcome: Outcome | None = None

    def error_name(self, exc: BaseException) -> str:
        raise AssertionError(f"the twin's reads do not raise: {exc!r}")

    def open_positions(self) -> list[tuple[int, int]]:
        return self.twin.open_positions()

    def is_liquidatable(self, account_id: int) -> bool:
        twin = self.twin
        liquidatable = twin.view(f"isAccountLiquidatable({account_id:#x})",
                                 ("engine", "isAccountLiquidatable", account_id),
                                 lambda: twin.model.is_account_liquidatable(account_id))
        return liquidatable is True

    def position_size(self, account_id: int, market_id: int) -> int:
        return self.twin.model.position_of(account_id, market_id)[0]

    def adl_required(self, account_id: int, market_id: int) -> bool:
        return self.twin.adl_required(account_id, market_id)

    def adl_ranking(self, market_id: int, side: int) -> list[int]:
        return self.twin.adl_ranking(market_id, side)[0]

    def pro_rata(self, market_id: int) -> bool:
        return AdlRanking(self.twin.model.liquidation_params(market_id).ranking).whole_ranking

    def leverage_drain(self, market_id: int) -> bool:
        return self.twin.model.liquidation_params(market_id).ranking == AdlRanking.LEVERAGE_DRAIN

    def account_value(self, account_id: int) -> int:
        # The model's: every account's (AV, MM, IM) is compared with the chain's after each transaction.
        return int(self.twin.model.health(account_id)[0])

    def _sent(self, outcome: Outcome) -> str | None:
        self.outcome = outcome
        return None if outcome.ok else outcome.error.name

    def liquidate(self, account_id: int, market_id: int) -> str | None:
        if self.on_action is not None:
            return self._sent(self.on_action(("liquidate", account_id, market_id, MAX_UINT)))
        return self._sent(self.twin.liquidate(account_id, market_id, MAX_UINT))

    def deleverage(self, account_id: int, market_id: int, counterparties: list[int]) -> str | None:
        if self.on_action is not None:
            return self._sent(self.on_action(("deleverage", account_id, market_id, counterparties)))
        return self._sent(self.twin.deleverage(account_id, market_id, counterparties))


# ================================================================================================
# The module's deployment
# ================================================================================================


def build_env(project, chain, accounts, specs=None) -> Env:
    """Deploys the slots (no vault collateral, no insurance: each example funds its own), mints and
    approves collateral for every account, and builds the model of that state."""
    deployer, vault = accounts[0], accounts[9]
    specs = specs or base_specs()
    system = deploy_system(project, deployer, vault, specs, vault_collateral_usd=0)
    traders = [accounts[i] for i in range(1, 9)]
    for who in traders + [vault, deployer]:
        system.usdc.mint(who, 10**16, sender=deployer)
        system.usdc.approve(system.engine, MAX_UINT, sender=who)
    reader = Reader(chain.provider.uri, system)
    contracts = {"engine": contract_abi("engine", system.engine), "liquidator": contract_abi("liquidator", system.liquidator),
                 "router": contract_abi("router", system.router)}
    contracts.update({f"feed{m}": contract_abi(f"feed{m}", feed) for m, feed in enumerate(system.feeds)})
    batched = BatchedChain(chain.provider.uri, contracts)
    batched.request("evm_setAutomine", [True])  # BatchedChain turns it off; Ape needs it on
    # The accounts already hold ether: BatchedChain must not reset their balances.
    batched._funded.update(a.address for a in traders + [vault, deployer])
    [number_hex, block] = reader.batch([], [("eth_blockNumber", []), ("eth_getBlockByNumber", ["latest", False])])
    model = Protocol.from_specs(
        specs,
        vault=int(vault.address, 16),
        vault_collateral_usd=0,
        insurance_fund_usd=0,
        deployer=int(deployer.address, 16),
        block_number=int(number_hex, 16),
        timestamp=int(block["timestamp"], 16),
    )
    # The contracts created their markets a few blocks before the model's clock starts: same
    # funding clocks (lastFundingTime), as the block number and timestamp are aligned above.
    [views] = reader.batch([("engine", "marketViews")])
    for market, view in zip(model.markets, views):
        market.last_funding_time = view[10]
    return Env(chain=chain, system=system, reader=reader, model=model, traders=traders, keeper=deployer, vault=vault,
               batched=batched)


# ================================================================================================
# Scenarios: a book, then shocks with keepers (tests/twin/strategies.py draws them)
# ================================================================================================


def setup_book(twin: Twin, scenario: Scenario) -> list:
    """Markets, vault, insurance fund and traders' collateral; returns the traders in use."""
    for m, name in enumerate(scenario.specs):
        twin.configure_market(m, slot_spec(m, name), seconds=1 if m == 0 else 0)
    twin.deposit(twin.env.vault, usdc(scenario.vault_usd))
    if scenario.insurance_usd:
        twin.deposit_insurance(scenario.insurance_usd)
    traders = twin.env.traders[: len(scenario.collateral)]
    for who, amount in zip(traders, scenario.collateral):
        twin.deposit(who, amount)
    return traders


def free_margin(twin: Twin, account_id: int) -> int:
    health = twin.health(account_id)
    return 0 if health is None else max(health[0] - health[2], 0)


def apply_user_op(twin: Twin, traders: list, op: tuple) -> Outcome | None:
    """One user operation; sizes are computed from the (compared) state, so both sides get the same."""
    kind, *args = op
    model = twin.model
    if kind == "open":
        t, m, side, tenths, how, other, band_bp, dust = args
        who = traders[t]
        who_id = int(who.address, 16)
        price = model.prices[m]
        if price == 0:
            return None
        if how == "isolated":
            amount = free_margin(twin, who_id) // 2
            if amount > 0:
                twin.transfer_margin(who, m, amount)
            account_id = model.isolated_account_id(who_id, m)
            size = (free_margin(twin, account_id) * tenths // 10) * WAD // price
            if size == 0:
                return None
            return twin.open(who, m, side * (size + dust), isolated=True)
        size = (free_margin(twin, who_id) * tenths // 10) * WAD // price
        if size == 0:
            return None
        size = side * (size + dust)
        if how == "cross":
            return twin.open(who, m, size)
        counterparty = traders[other]
        buyer, seller = (who, counterparty) if side > 0 else (counterparty, who)
        fill_price = price * (10_000 + band_bp) // 10_000
        return twin.matched(buyer, seller, m, abs(size), fill_price)
    if kind == "close":
        t, m, isolated_bucket, part = args
        who = traders[t]
        who_id = int(who.address, 16)
        account_id = model.isolated_account_id(who_id, m) if isolated_bucket else who_id
        size = model.position_of(account_id, m)[0]
        if size == 0:
            return None
        return twin.open(who, m, -(size // part) if part > 1 else -size, isolated=isolated_bucket)
    if kind == "withdraw":
        t, percent = args
        who = traders[t]
        amount = free_margin(twin, int(who.address, 16)) * percent // 100 // 10**12
        if amount == 0:
            return None
        return twin.withdraw(who, amount)
    if kind == "margin":
        t, m, percent = args
        who = traders[t]
        who_id = int(who.address, 16)
        source = who_id if percent > 0 else model.isolated_account_id(who_id, m)
        amount = free_margin(twin, source) * abs(percent) // 100
        if amount == 0:
            return None
        return twin.transfer_margin(who, m, amount if percent > 0 else -amount)
    if kind == "funding":
        t, m = args
        return twin.settle_funding(int(traders[t].address, 16), m)
    if kind == "insurance":
        return twin.deposit_insurance(args[0])
    raise ValueError(kind)


def apply_step(twin: Twin, traders: list, step: tuple) -> KeeperReport:
    """Time passes, prices move, depth changes, users act, keepers run."""
    seconds, moves, depths, ops = step
    first = seconds
    for m, move in enumerate(moves):
        if move is None:
            continue
        bp, dust = move
        answer = twin.oracle.feeds[m].answer * bp // 10_000 + dust
        twin.set_price(m, max(answer, 1), seconds=first)
        first = 0
    if first:
        # Nothing moved: time passes with a funding accrual of market 0.
        twin.accrue_funding(0, seconds=first)
    for m, factor in enumerate(depths):
        if factor is None:
            continue
        twin.set_depth(m, wad(twin.specs[m].depth2pct) * factor // 10)
    for op in ops:
        apply_user_op(twin, traders, op)
    return twin.run_keepers()


def run_scenario(env: Env, scenario: Scenario) -> Twin:
    twin = Twin(env)
    traders = setup_book(twin, scenario)
    for op in scenario.openings:
        apply_user_op(twin, traders, op)
    twin.run_keepers()
    check_model_invariants(twin.model)
    for step in scenario.steps:
        apply_step(twin, traders, step)
        check_model_invariants(twin.model)  # 1, 2, 4 (the model's state is the chain's)
        twin.check_funding()
    return twin


# ================================================================================================
# Several transactions in one block
# ================================================================================================


def block_txs(twin: Twin, traders: list, ops: tuple) -> list[tuple]:
    """The transactions of one block, sized from the state before it (both sides start equal)."""
    model, txs = twin.model, []
    deployer, deployer_id = twin.deployer.address, twin.deployer_id
    expanded = []
    for op in ops:
        if op[0] == "requote":
            _, t, other, m, side, tenths, factor, dust = op
            expanded += [("trade", t, m, side, tenths, False, dust), ("depth", m, factor),
                         ("trade", other, m, side, tenths // 2 + 1, False, dust)]
        else:
            expanded.append(op)
    for op in expanded:
        kind, *args = op
        if kind in ("trade", "close"):
            if kind == "trade":
                t, m, side, tenths, isolated, dust = args
            else:
                t, m, isolated = args
            who = traders[t]
            who_id = int(who.address, 16)
            account_id = model.isolated_account_id(who_id, m) if isolated else who_id
            price = model.prices[m]
            if kind == "trade":
                size = side * ((free_margin(twin, account_id) * tenths // 10) * WAD // price + dust)
            else:
                size = -model.position_of(account_id, m)[0]
            if size == 0:
                continue
            limit = MAX_UINT if size > 0 else 0
            function = "openIsolatedPosition" if isolated else "openPosition"
            model_call = (model.open_isolated_position if isolated else model.open_position)
            txs.append((who.address, "engine", function, (m, size, limit),
                        lambda call=model_call, i=who_id, m=m, size=size, limit=limit: call(i, m, size, limit)))
        elif kind == "depth":
            m, factor = args
            depth = wad(twin.specs[m].depth2pct) * factor // 10
            txs.append((deployer, "engine", "setDepth", (m, depth),
                        lambda m=m, depth=depth: model.set_depth(m, depth, sender=deployer_id)))
        elif kind == "liquidate":
            pick, m = args
            holders = [i for i, market_id in twin.open_positions() if market_id == m]
            if not holders:
                continue
            account_id = holders[pick % len(holders)]
            txs.append((deployer, "liquidator", "liquidateAccount", (account_id, m, MAX_UINT),
                        lambda i=account_id, m=m: model.liquidate_account(i, m, MAX_UINT, keeper=deployer_id)))
        elif kind == "price":
            m, bp, dust = args
            answer = max(twin.oracle.feeds[m].answer * bp // 10_000 + dust, 1)

            def submit(m=m, answer=answer):
                twin.oracle.submit(m, answer, model.timestamp)
                model.prices[m] = twin.oracle.usable_price(m, model.timestamp)

            txs.append((deployer, f"feed{m}", "submit", (answer,), submit))
    return txs


# ================================================================================================
# Pinned cases: one market, named traders
# ================================================================================================


TRADER_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")  # env.traders[0], [1], ...


def one_market(env, spec: MarketSpec | None = None, insurance_usd: int = 0, **deposits_usd) -> Twin:
    """A twin whose slot 0 is configured as `spec` (BTC at $100,000, defaults otherwise), with a $1M
    vault, the insurance fund and each named trader's deposit (alice, bob, ... as env.traders)."""
    twin = Twin(env)
    twin.configure_market(0, spec or MarketSpec("BTC", 100_000, depth2pct=10_000_000, heartbeat=HEARTBEAT),
                          seconds=1)
    twin.deposit(twin.env.vault, usdc(1_000_000))
    if insurance_usd:
        twin.deposit_insurance(insurance_usd)
    for name, dollars in deposits_usd.items():
        twin.deposit(env.traders[TRADER_NAMES.index(name)], usdc(dollars))
    return twin


def dust_ranking_book(env, case) -> tuple[Twin, int]:
    """The book of a `strategies.DustRanking`, crashed: returns the twin and the bankrupt account's
    id. The bankrupt long is opened at 10.7% margin (10% IM), so the crash leaves it below zero with
    no insurance fund: the liquidation goes to ADL."""
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking(case.ranking), heartbeat=HEARTBEAT)
    twin = Twin(env)
    twin.configure_market(0, spec, seconds=1)
    twin.deposit(env.vault, usdc(1_000_000))
    bankrupt = env.traders[case.bankrupt]
    long_size = sum(size for role, size, _ in case.roles if role == "winner")
    assert twin.deposit(bankrupt, -(-long_size * usdc(10_700) // WAD)).ok  # $10,700 per BTC
    for who, (role, size, deposit) in zip(env.traders, case.roles):
        if role == "idle":
            continue
        assert twin.deposit(who, deposit).ok
        if role == "winner":
            assert twin.matched(bankrupt, who, 0, size, wad(100_000)).ok
        else:
            assert twin.open(who, 0, -size).ok, f"a {size}-wei short on {deposit} token units"
    twin.set_price(0, oracle_answer(case.crash_usd), seconds=1)
    return twin, int(bankrupt.address, 16)
