"""Differential tests (invariant 11): the same operations go to the contracts on anvil (through Ape,
one transaction per call) and to the numpy model (`simulator.model.Protocol`), and after every
operation every observable must agree to the wei.

The `Twin` below drives both sides in lockstep; tests/test_stateful.py uses it too.

- Time and blocks: every Ape transaction is mined in a block of its own. Before each one the twin
  sets the chain's next block timestamp (`chain.pending_timestamp`) and advances the model to the
  same block and timestamp, so funding accrual, rate windows and the per-block book consumption
  match exactly; the chain's head block number and timestamp are compared after every operation.
- The oracle: `OracleShadow` follows the router (feed answer, heartbeat, breaker) and decides what
  price the model may read at each timestamp; a price the router would refuse is 0 in the model,
  whose `InvalidPrice` then stands for the router's error (StalePrice, BreakerTripped,
  DeviationUnconfirmed), which must be the chain's, with its arguments.
- Outcomes: both sides succeed with the same events (engine and liquidation engine logs, every
  field), or both revert with the same error name and arguments.
- State after every operation (one batch of eth_calls): registered accounts, health (AV, MM, IM)
  and liquidatability of every account, positions (size, open notional, funding index),
  collateral, market masks, market views (open interest, vault size, funding index and rate,
  depth, book consumption, social loss index), insurance fund, bad debt, balance sheet, rate
  windows, block number and timestamp.
- Keepers: `Twin.run_keepers` is simulator/chain/keeper.py's loop run on both sides, comparing every
  decision (liquidatable, adlRequired, the canonical ranking) before acting.

Ape 0.8.51's `chain.isolate()` swallows every exception raised inside it (a failed assertion
passes): examples are isolated with `isolated(chain)`, which snapshots, re-raises and restores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from enum import IntEnum
from typing import Any, Callable

import pytest
from ape.exceptions import ContractLogicError, CustomError, VirtualMachineError
from ape.utils.abi import Struct
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from eth_utils import keccak
from web3 import HTTPProvider

from simulator.chain.deploy import AdlRanking, BadDebtPolicy, MarketSpec, deploy_system
from simulator.chain.exchange import contract_abi
from simulator.chain.rpc import BatchedChain, Tx, _abi_type
from simulator.model import LiquidationParams, MarketParams, Protocol
from simulator.model import funding as FundingMath
from simulator.model.errors import InvalidPrice, ModelRevert
from simulator.units import ORACLE_DECIMALS, WAD, oracle_answer, usdc, wad
from tests.model.helpers import check_invariants as check_model_invariants
from tests.model.helpers import canonical_counterparties, examples
from tests.isolation import isolated
from tests.reverts import _raw_revert_data

MAX_UINT = 2**256 - 1
PANIC_SELECTOR = bytes.fromhex("4e487b71")
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
ORACLE_SCALE = 10 ** (18 - ORACLE_DECIMALS)

# Market slots of the module's deployment (prices stay the slot's); each example configures their
# parameters from SPECS with setMarketParams / setTiers / setLiquidationParams.
SLOTS = (("BTC", 100_000), ("ETH", 4_000), ("SOL", 200))
HEARTBEAT = 10 * 86_400  # long enough that no example goes stale (test_stateful's dynamic machine does)

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
# Isolation and normalisation
# ================================================================================================


def norm(value: Any) -> Any:
    """Comparable form of an event field or error argument: addresses as ints, enums as ints,
    structs and dataclasses as tuples."""
    if isinstance(value, bool):
        return value
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return int(value, 16)
    if hasattr(value, "address") and isinstance(getattr(value, "address"), str):
        return int(value.address, 16)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if is_dataclass(value) and not isinstance(value, type):
        return tuple(norm(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, Struct):
        return tuple(norm(v) for v in value.values())
    if hasattr(value, "model_dump"):
        return tuple(norm(v) for v in value.model_dump().values())
    if isinstance(value, (list, tuple)):
        return tuple(norm(v) for v in value)
    return value


def norm_args(args: dict) -> dict:
    return {key: norm(value) for key, value in dict(args).items()}


class Reverted(Exception):
    """An error outcome, (name, args) as compared between chain and model."""

    def __init__(self, name: str, args: dict):
        super().__init__(f"{name}({', '.join(f'{k}={v}' for k, v in args.items())})")
        self.name, self.args_ = name, args

    def key(self) -> tuple:
        return self.name, tuple(sorted(self.args_.items()))


# ================================================================================================
# The chain side: batched reads, error decoding
# ================================================================================================


class Reader:
    """Batched eth_call (one HTTP request) over the deployment's ABIs, and revert decoding. Calls are
    encoded with eth_abi directly (web3's `encode_abi` re-validates the whole ABI on every call)."""

    def __init__(self, uri: str, system):
        self.provider = HTTPProvider(uri, request_kwargs={"timeout": 120})
        contracts = {"engine": system.engine, "liquidator": system.liquidator, "router": system.router}
        self.abis = {name: contract_abi(name, contract) for name, contract in contracts.items()}
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in self.abis.values():
            self.errors.update(abi.errors)
        self.codec = self.abis["engine"].codec
        # (contract, function) -> (address, selector, input types, output types)
        self.functions: dict[tuple[str, str], tuple[str, bytes, list[str], list[str]]] = {}
        for name, contract in contracts.items():
            for item in contract.contract_type.abi:
                if getattr(item, "type", None) != "function":
                    continue
                data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
                inputs = [_abi_type(i) for i in data["inputs"]]
                outputs = [_abi_type(o) for o in data["outputs"]]
                selector = keccak(text=f"{data['name']}({','.join(inputs)})")[:4]
                self.functions[(name, data["name"])] = (self.abis[name].address, selector, inputs, outputs)

    def _encode(self, contract: str, function: str, args) -> dict:
        address, selector, inputs, _ = self.functions[(contract, function)]
        return {"to": address, "data": "0x" + (selector + self.codec.encode(inputs, list(args))).hex()}

    def _decode(self, contract: str, function: str, result: str):
        outputs = self.functions[(contract, function)][3]
        decoded = self.codec.decode(outputs, bytes.fromhex(result[2:]))
        return decoded[0] if len(decoded) == 1 else decoded

    def batch(self, calls: list[tuple], extra: list[tuple] = ()) -> list:
        """`calls`: (contract, function, *args); `extra`: raw (method, params). Results in order; a
        reverted call gives a `Reverted`."""
        payload = [("eth_call", [self._encode(c, f, args), "latest"]) for c, f, *args in calls] + list(extra)
        responses = self.provider.make_batch_request(payload)
        if isinstance(responses, dict):
            raise RuntimeError(f"batch rejected: {responses}")
        responses = sorted(responses, key=lambda r: r["id"]) if all("id" in r for r in responses) else responses
        results = []
        for request, response in zip(calls, responses):
            if "error" in response:
                data = response["error"].get("data")
                if isinstance(data, dict):
                    data = data.get("data")
                results.append(self.decode_revert(bytes.fromhex(data[2:]) if data else b""))
            else:
                results.append(self._decode(request[0], request[1], response["result"]))
        results += [r.get("result", r.get("error")) for r in responses[len(calls):]]
        return results

    def call(self, contract: str, function: str, *args):
        [result] = self.batch([(contract, function, *args)])
        if isinstance(result, Reverted):
            raise result
        return result

    def decode_revert(self, raw: bytes) -> Reverted:
        selector = raw[:4]
        if selector == PANIC_SELECTOR:
            return Reverted("Panic", {"code": self.codec.decode(["uint256"], raw[4:])[0]})
        if selector == ERROR_STRING_SELECTOR:
            return Reverted("Error", {"message": self.codec.decode(["string"], raw[4:])[0]})
        if selector in self.errors:
            name, types, names = self.errors[selector]
            values = self.codec.decode(types, raw[4:])
            return Reverted(name, {n: norm(v) for n, v in zip(names, values)})
        return Reverted("<undecoded>", {"data": raw.hex()})

    def chain_error(self, exc: Exception) -> Reverted:
        """The (name, args) of a reverted Ape transaction."""
        if isinstance(exc, CustomError) and getattr(exc, "abi", None) is not None:
            return Reverted(exc.abi.name, norm_args(exc.inputs))
        raw = _raw_revert_data(exc)
        if raw is not None:
            return self.decode_revert(raw)
        message = getattr(exc, "revert_message", None) or str(exc)
        return Reverted("<undecoded>", {"message": message})


def model_error(exc: ModelRevert) -> Reverted:
    return Reverted(type(exc).__name__, norm_args(exc.inputs))


# ================================================================================================
# The oracle as the router serves it
# ================================================================================================


@dataclass
class FeedState:
    answer: int  # 8-decimal answer
    updated_at: int
    heartbeat: int = HEARTBEAT
    max_deviation: int = 0  # WAD fraction, 0 = breaker off
    cooldown: int = 0
    last_accepted: int = 0  # WAD
    tripped_until: int = 0


class OracleShadow:
    """OracleRouter._classify / update / _revertWith, per market, for the model's driver."""

    def __init__(self, feeds: list[FeedState]):
        self.feeds = feeds

    @staticmethod
    def _deviation_up(last: int, current: int) -> int:
        diff = abs(current - last)
        return (diff * WAD + last - 1) // last

    def classify(self, m: int, now: int) -> tuple[str, int, bool]:
        f = self.feeds[m]
        price = f.answer * ORACLE_SCALE if f.answer > 0 else 0
        if price == 0:
            return "Invalid", 0, False
        age = now - f.updated_at if now > f.updated_at else 0
        if age > f.heartbeat:
            return "Stale", price, False
        if f.tripped_until != 0:
            if now < f.tripped_until:
                return "Tripped", price, False
            return "Ok", price, True
        if f.max_deviation != 0 and f.last_accepted != 0 and self._deviation_up(f.last_accepted, price) > f.max_deviation:
            return "Unconfirmed", price, False
        return "Ok", price, False

    def usable_price(self, m: int, now: int) -> int:
        status, price, _ = self.classify(m, now)
        return price if status == "Ok" else 0

    def error(self, m: int, now: int) -> Reverted:
        f = self.feeds[m]
        status, price, _ = self.classify(m, now)
        if status == "Invalid":
            return Reverted("InvalidPrice", {"marketId": m, "answer": f.answer})
        if status == "Stale":
            return Reverted("StalePrice", {"marketId": m, "updatedAt": f.updated_at, "nowTs": now,
                                           "heartbeat": f.heartbeat})
        if status == "Tripped":
            return Reverted("BreakerTripped", {"marketId": m, "until": f.tripped_until})
        if status == "Unconfirmed":
            return Reverted("DeviationUnconfirmed", {"marketId": m, "lastAccepted": f.last_accepted, "answer": price})
        raise AssertionError(f"market {m} is usable at {now}: the model should not have refused it")

    def submit(self, m: int, answer: int, now: int) -> None:
        self.feeds[m].answer, self.feeds[m].updated_at = answer, now

    def update(self, m: int, now: int) -> bool:
        f = self.feeds[m]
        status, price, cooldown_over = self.classify(m, now)
        if status == "Ok":
            if cooldown_over:
                f.tripped_until = 0
            f.last_accepted = price
            return True
        if status == "Unconfirmed":
            f.tripped_until = now + f.cooldown
            return f.cooldown == 0
        return False

    def configure(self, m: int, heartbeat: int, max_deviation: int, cooldown: int) -> None:
        """router.setMarket: new heartbeat and breaker; the reference becomes the current answer."""
        f = self.feeds[m]
        f.heartbeat, f.max_deviation, f.cooldown = heartbeat, max_deviation, cooldown
        f.tripped_until = 0
        f.last_accepted = f.answer * ORACLE_SCALE if f.answer > 0 else 0


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


# Events of the engine and the liquidation engine (what the model emits).
from simulator.model.events import EVENT_FIELDS as _EVENT_FIELDS  # noqa: E402

_OUR_EVENTS = set(_EVENT_FIELDS)


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
                    seen["cps"][cp] = (size, size * price // WAD - open_notional)

        outcome = self.send(f"deleverageAccount({account_id:#x}, {m}, {cps})",
                            lambda: self.liquidator.deleverageAccount(account_id, m, cps, sender=self.keeper),
                            lambda: model.deleverage_account(account_id, m, cps), seconds, pre=pre)
        if outcome.ok:
            # Invariant 7: ADL only where the book and the fund cannot absorb the liquidation.
            assert seen["liquidate"] == "UseDeleverage", f"ADL while liquidate would give {seen['liquidate']}"
            # Invariant 8.
            side = seen["size"]
            fills = outcome.named("AdlFill")
            filled = [f["counterpartyId"] for f in fills]
            # In list order; a PRO_RATA winner whose share rounds to nothing has no fill.
            assert filled == [cp for cp in cps if cp in set(filled)], "ADL fills out of the list's order"
            assert set(filled) == set(cps) or model.liquidation_params(m).ranking == AdlRanking.PRO_RATA
            assert all(f["price"] == seen["bankruptcy"] for f in fills)
            assert sum(f["size"] for f in fills) == -side
            for cp in cps:
                size, upnl = seen["cps"][cp]
                assert size != 0 and (size > 0) != (side > 0) and upnl > 0, f"ADL hit {cp:#x}: {size}, {upnl}"
            ranking, _ = seen["ranking"]
            if model.liquidation_params(m).ranking == AdlRanking.PNL_LEVERAGE:
                positions = [ranking.index(cp) for cp in cps]
                assert positions == sorted(positions), "ADL fills out of ranking order"
            else:
                assert cps == sorted(cps) and set(cps) <= set(ranking)
            assert model.position_of(account_id, m)[0] == 0
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
            window = model.rate_windows.get(m)
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
        """simulator/chain/keeper.canonical_counterparties."""
        return canonical_counterparties(self.model, m, account_id, ranking)

    def keeper_act(self, account_id: int, m: int, on_action: Callable | None = None) -> Outcome | None:
        """One decision of the reference keeper on (account, market), compared on both sides."""
        liquidatable = self.view(f"isAccountLiquidatable({account_id:#x})",
                                 ("engine", "isAccountLiquidatable", account_id),
                                 lambda: self.model.is_account_liquidatable(account_id))
        if liquidatable is not True:
            return None
        side = self.model.position_of(account_id, m)[0]
        if side == 0:
            return None
        if self.adl_required(account_id, m):
            ranking, _ = self.adl_ranking(m, side)
            counterparties = self.canonical_counterparties(m, account_id, ranking)
            action = ("deleverage", account_id, m, counterparties)
        else:
            action = ("liquidate", account_id, m, MAX_UINT)
        if on_action is not None:
            return on_action(action)
        if action[0] == "deleverage":
            return self.deleverage(account_id, m, action[3])
        return self.liquidate(account_id, m, MAX_UINT)

    def run_keepers(self, max_rounds: int = 50, on_action: Callable | None = None) -> dict:
        """simulator/chain/keeper.run_keepers on both sides: liquidate until nothing liquidatable
        is left that can be acted on; ADL with the canonical ranking when adlRequired."""
        report = {"liquidations": 0, "adl_calls": 0, "stalled": [], "rounds": 0}
        for report["rounds"] in range(1, max_rounds + 1):
            progressed = False
            report["stalled"] = []
            for account_id, m in self.open_positions():
                outcome = self.keeper_act(account_id, m, on_action)
                if outcome is None:
                    continue
                if outcome.ok:
                    progressed = True
                    if outcome.named("Deleveraged"):
                        report["adl_calls"] += 1
                    else:
                        report["liquidations"] += 1
                else:
                    report["stalled"].append((account_id, m, outcome.error.name))
            if not progressed:
                break
        return report


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


@pytest.fixture(scope="module")
def env(project, chain, accounts, toolchain_checked):
    return build_env(project, chain, accounts)


# ================================================================================================
# Scenarios: a book, then shocks with keepers
# ================================================================================================

# -40% .. +20% per market per step, mostly moves of a few percent: those liquidate accounts with
# equity left (penalties, partial slices); the large ones bankrupt them (the waterfall, ADL).
# Each move also adds up to 0.01 of a cent of "dust" to the 8-decimal answer: round prices make
# round notionals, under which rounding directions do not show.
PRICE_STEPS_BP = st.tuples(
    st.one_of(st.integers(9_400, 10_400), st.integers(9_400, 10_400), st.integers(6_000, 12_000)),
    st.integers(0, 999_999),
)
DEPTH_FACTORS = (0, 1, 5, 10, 20)  # tenths of the spec's depth: 0 = no book


@dataclass(frozen=True)
class Scenario:
    specs: tuple  # spec name per slot in use (2 or 3)
    vault_usd: int
    insurance_usd: int
    collateral: tuple  # token units (6 decimals) per trader
    openings: tuple
    steps: tuple


def openings(n_traders: int, n_markets: int):
    """("open", trader, market, side, tenths of leverage on free margin, how, counterparty, band bp,
    dust): the size is leverage * free margin / price, plus `dust` wei so that sizes, notionals and
    fees are not round numbers (rounding directions show only then)."""
    return st.tuples(
        st.just("open"),
        st.integers(0, n_traders - 1),
        st.integers(0, n_markets - 1),
        st.sampled_from([1, -1]),
        st.one_of(st.integers(60, 150), st.integers(5, 150)),  # mostly near the largest allowed
        st.sampled_from(["cross", "isolated", "matched"]),
        st.integers(0, n_traders - 1),
        st.integers(-100, 100),
        st.integers(0, 10**15),
    )


def user_ops(n_traders: int, n_markets: int):
    trader = st.integers(0, n_traders - 1)
    market = st.integers(0, n_markets - 1)
    return st.one_of(
        openings(n_traders, n_markets),
        st.tuples(st.just("close"), trader, market, st.booleans(), st.sampled_from([1, 2, 4])),
        st.tuples(st.just("withdraw"), trader, st.integers(1, 100)),
        st.tuples(st.just("margin"), trader, market, st.integers(-100, 100)),
        st.tuples(st.just("funding"), trader, market),
        st.tuples(st.just("insurance"), st.integers(1, 20_000)),
    )


def shock_steps(n_traders: int, n_markets: int):
    return st.tuples(
        st.one_of(st.just(0), st.integers(1, 7_200)),  # seconds passing (funding)
        st.lists(st.one_of(st.none(), PRICE_STEPS_BP), min_size=n_markets, max_size=n_markets),
        st.lists(st.one_of(st.none(), st.sampled_from(DEPTH_FACTORS)), min_size=n_markets, max_size=n_markets),
        st.lists(user_ops(n_traders, n_markets), max_size=2),
    )


@st.composite
def scenarios(draw) -> Scenario:
    n_markets = draw(st.integers(2, 3))
    n_traders = draw(st.integers(3, 8))
    return Scenario(
        specs=tuple(draw(st.sampled_from(sorted(SPECS))) for _ in range(n_markets)),
        vault_usd=draw(st.sampled_from([300_000, 3_000_000])),
        insurance_usd=draw(st.sampled_from([0, 2_000, 50_000])),
        collateral=tuple(draw(st.lists(st.integers(usdc(1_000), usdc(200_000)), min_size=n_traders,
                                       max_size=n_traders))),
        openings=tuple(draw(st.lists(openings(n_traders, n_markets), min_size=n_traders, max_size=2 * n_traders))),
        steps=tuple(draw(st.lists(shock_steps(n_traders, n_markets), min_size=1, max_size=4))),
    )


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


def apply_step(twin: Twin, traders: list, step: tuple) -> dict:
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
# Tests
# ================================================================================================

DIFFERENTIAL = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# A book through all three policies, run first every time: a liquidation with equity left (a
# penalty), funding over an hour, then a crash with the ADL market's book pulled (ADL), a
# socialised loss, bad debt under NONE.
CRASH = Scenario(
    specs=("adl-pnl", "socialize-tiers", "none-rate-limited"),
    vault_usd=3_000_000,
    insurance_usd=0,
    collateral=(usdc("20000.123456"), usdc("300000.5"), usdc("35000.000001"), usdc(60_000), usdc("10000.25")),
    openings=(
        ("open", 0, 0, 1, 95, "cross", 0, 0, 123_456_789),  # 9.5x long BTC: liquidated with equity left
        ("open", 3, 0, 1, 60, "matched", 1, 40, 987_654_321),  # 6x long BTC from trader 1: ADL'd
        ("open", 1, 1, -1, 5, "cross", 0, 0, 3),  # a short ETH for the socialised loss to land on
        ("open", 2, 1, 1, 140, "isolated", 0, 0, 55_555),  # 14x isolated long ETH: socialised
        ("open", 4, 2, 1, 45, "isolated", 0, 0, 7),  # 4.5x isolated long SOL: bad debt
    ),
    steps=(
        (3_600, [(9_350, 12_345), (9_900, 678), (9_800, 91_011)], [None, None, None], [("funding", 3, 0)]),
        (30, [(7_000, 999_999), (8_000, 1), (6_500, 424_242)], [0, None, 5], []),
        (61, [None, (11_000, 17), None], [10, None, None], [("close", 1, 1, False, 2)]),
    ),
)


@DIFFERENTIAL
@example(scenario=CRASH)
@given(scenario=scenarios())
def test_books_and_shocks_agree(env, chain, scenario):
    with isolated(chain):
        run_scenario(env, scenario)


# ================================================================================================
# Several transactions in one block: the book's consumption accumulates, setDepth rescales it
# ================================================================================================


def block_ops(n_traders: int, n_markets: int):
    trader = st.integers(0, n_traders - 1)
    market = st.integers(0, n_markets - 1)
    return st.one_of(
        st.tuples(st.just("trade"), trader, market, st.sampled_from([1, -1]), st.integers(5, 120), st.booleans(),
                  st.integers(0, 10**15)),
        st.tuples(st.just("trade"), trader, market, st.sampled_from([1, -1]), st.integers(5, 120), st.booleans(),
                  st.integers(0, 10**15)),
        st.tuples(st.just("close"), trader, market, st.booleans()),
        st.tuples(st.just("depth"), market, st.sampled_from((0, 3, 5, 10, 20))),
        st.tuples(st.just("liquidate"), st.integers(0, 10**6), market),
        st.tuples(st.just("price"), market, st.integers(9_000, 10_500), st.integers(0, 999_999)),
        # A walk, a requote of the same book, another walk: setDepth's rescale, then its effect.
        st.tuples(st.just("requote"), trader, trader, market, st.sampled_from([1, -1]), st.integers(5, 120),
                  st.sampled_from((0, 3, 5, 20)), st.integers(0, 10**15)),
    )


@st.composite
def block_scenarios(draw):
    scenario = draw(scenarios())
    n_markets, n_traders = len(scenario.specs), len(scenario.collateral)
    blocks = draw(st.lists(st.lists(block_ops(n_traders, n_markets), min_size=2, max_size=5), min_size=1, max_size=4))
    return scenario, tuple(tuple(b) for b in blocks)


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


@settings(DIFFERENTIAL, max_examples=examples(10))
@given(case=block_scenarios())
def test_blocks_of_several_transactions_agree(env, chain, case):
    """Trades, closes, depth requotes, liquidations and price answers mined together: consumption
    accumulates within the block, setDepth rescales it (PerpEngine.setDepth), later transactions
    see the earlier ones' prices and fills."""
    scenario, blocks = case
    with isolated(chain):
        twin = Twin(env)
        traders = setup_book(twin, scenario)
        for op in scenario.openings:
            apply_user_op(twin, traders, op)
        for k, ops in enumerate(blocks):
            txs = block_txs(twin, traders, ops)
            if txs:
                twin.same_block(f"block {k}", txs, seconds=k % 2)
        twin.run_keepers()


# --- pinned cases: boundaries random books almost never reach ----------------------------------

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


def test_an_account_exactly_at_maintenance_margin_is_not_liquidatable(env, chain):
    """Liquidatable means AV < MM, strictly: an account whose value equals its maintenance margin to
    the wei is refused on both sides; one oracle unit (1e-8 USD) lower, both liquidate it. Random
    books almost never land on the boundary, so it is pinned here (mutant `liquidatable-at-mm`)."""
    with isolated(chain):
        twin = one_market(env, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok  # alice long 1 BTC, IM $10,000
        # At $94,000: AV = 10,700 - 6,000 = 4,700 = 5% of 94,000 = MM.
        twin.set_price(0, oracle_answer(94_000), seconds=1)
        alice_id = int(alice.address, 16)
        assert twin.health(alice_id)[:2] == (wad(4_700), wad(4_700))
        refused = twin.liquidate(alice_id, 0)
        assert not refused.ok and refused.error.name == "NotLiquidatable"
        twin.set_price(0, oracle_answer(94_000) - 1, seconds=1)
        assert twin.liquidate(alice_id, 0).ok


def test_a_penalty_takes_no_more_than_the_equity_left(env, chain):
    """A full close that leaves less equity than the 1% fee: the penalty is that equity, the account
    ends at zero and the fund pays nothing (LiquidationMath.penalty; mutant `penalty-not-capped`)."""
    with isolated(chain):
        twin = one_market(env, insurance_usd=5_000, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(89_800), seconds=1)  # AV $500, MM $4,490
        alice_id = int(alice.address, 16)
        outcome = twin.liquidate(alice_id, 0)
        [event] = outcome.named("Liquidation")
        fee = wad(89_800) // 100
        assert 0 < event["penalty"] < fee and event["fundPaid"] == 0 and event["badDebt"] == 0
        assert twin.model.collateral_of(alice_id) == 0 and twin.model.market_mask_of(alice_id) == 0


def test_a_partial_penalty_takes_no_more_than_the_slice_gained(env, chain):
    """A slice whose 1% fee exceeds what it improved the account's health (AV - MM; MM is also 1%
    here and the fill walks the book): the penalty is that gain, so AV - MM ends exactly where it
    was (LiquidationEngine._penalty; mutant `partial-penalty-not-capped-by-gain`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, imr="0.02", mmr="0.01", liquidation_fee="0.01", depth2pct=1_000_000,
                          slice_threshold=50_000, slice_fraction="0.2", heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=2_000, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(98_950), seconds=1)  # AV $950 < MM $989.50
        alice_id = int(alice.address, 16)
        value, mm, _ = twin.health(alice_id)
        outcome = twin.liquidate(alice_id, 0)
        [event] = outcome.named("Liquidation")
        assert event["sizeClosed"] == -WAD // 5  # a slice, not the whole position
        fee = wad(98_950) // 5 // 100
        assert 0 < event["penalty"] < fee
        value_after, mm_after, _ = twin.health(alice_id)
        assert value_after - mm_after == value - mm


def test_pro_rata_adl_hands_out_the_rounding_remainder(env, chain):
    """PRO_RATA: three winners hold 2 BTC against a bankrupt 1 BTC long; their pro-rata takes round
    down to 1 wei short of it, and the wei goes to the first winner with room, so the position
    closes exactly (LiquidationEngine._proRataTakes; mutant `pro-rata-remainder-dropped`)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.PRO_RATA, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=50_000, erin=50_000, frank=100_000)
        alice, bob, carol, _, erin, frank = env.traders[:6]
        third = 3 * WAD // 10 + 1
        assert twin.matched(alice, bob, 0, third, wad(100_000)).ok
        assert twin.matched(alice, carol, 0, WAD - third, wad(100_000)).ok
        assert twin.matched(frank, erin, 0, WAD, wad(100_000)).ok
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $4,300 under water, no fund
        alice_id = int(alice.address, 16)
        outcome = twin.keeper_act(alice_id, 0)
        fills = outcome.named("AdlFill")
        takes = {f["counterpartyId"]: -f["size"] for f in fills}
        bob_id, carol_id, erin_id = (int(a.address, 16) for a in (bob, carol, erin))
        assert set(takes) == {bob_id, carol_id, erin_id} and sum(takes.values()) == WAD
        floors = {bob_id: third // 2, carol_id: (WAD - third) // 2, erin_id: WAD // 2}
        assert sum(floors.values()) == WAD - 1  # one wei to hand out
        assert sum(takes[i] - floors[i] for i in takes) == 1 and all(takes[i] >= floors[i] for i in takes)
        assert twin.model.position_of(alice_id, 0)[0] == 0


def test_pro_rata_adl_passes_over_a_dust_winner(env, chain):
    """PRO_RATA: a winner holding 1 wei, listed after the real winner (higher id), gets a share of 0
    and no rounding unit; it gives up nothing and the ADL goes through (it reverted `ZeroAmount`
    and stalled, issue 17)."""
    with isolated(chain):
        spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, ranking=AdlRanking.PRO_RATA, heartbeat=HEARTBEAT)
        twin = one_market(env, spec, alice=10_700, bob=50_000, carol=50_000, erin=50_000, frank=50_000)
        alice = env.traders[0]
        others = sorted((env.traders[TRADER_NAMES.index(n)] for n in ("bob", "carol", "erin", "frank")),
                        key=lambda a: int(a.address, 16))
        winner, dust_long, dust = others[0], others[1], others[-1]
        assert twin.matched(alice, winner, 0, WAD, wad(100_000)).ok
        assert twin.matched(dust_long, dust, 0, 1, wad(100_000)).ok  # a 1-wei short
        twin.set_price(0, oracle_answer(85_000), seconds=1)  # alice $4,300 under water, no fund
        alice_id, dust_id = int(alice.address, 16), int(dust.address, 16)
        outcome = twin.keeper_act(alice_id, 0)
        [deleveraged] = outcome.named("Deleveraged")
        assert deleveraged["counterparties"] == 2  # the whole ranking, the dust winner included
        fills = {f["counterpartyId"]: -f["size"] for f in outcome.named("AdlFill")}
        assert fills == {int(winner.address, 16): WAD}
        assert twin.model.position_of(alice_id, 0)[0] == 0 and twin.model.position_of(dust_id, 0)[0] == -1


def test_an_answer_exactly_one_heartbeat_old_is_fresh(env, chain):
    """The router serves an answer up to its heartbeat's age and refuses it one second later:
    chain and model agree on both sides of the boundary (OracleRouter._classify; mutant
    `stale-at-heartbeat`). The random machines almost never land on the exact second."""
    with isolated(chain):
        twin = one_market(env, alice=10_700, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.configure_oracle(0, 600, 0, 0, seconds=1)
        twin.submit_price(0, oracle_answer(100_000), seconds=1)
        submitted = twin.model.timestamp
        twin.deposit(bob, usdc(1), seconds=600)  # a block exactly one heartbeat later
        assert twin.model.timestamp - submitted == 600
        served = twin.price(0)
        assert served == wad(100_000)
        twin.deposit(bob, usdc(1), seconds=1)
        stale = twin.price(0)
        assert isinstance(stale, Reverted) and stale.name == "StalePrice"


def test_a_tripped_breaker_refuses_prices_until_its_cooldown_ends(env, chain):
    """A 20% jump trips a 10% breaker with a 120 s cooldown: the price, and so alice's health, is
    refused a minute later, and served again once the cooldown is over (OracleRouter._classify;
    mutant `breaker-cooldown-ignored`)."""
    with isolated(chain):
        twin = one_market(env, alice=20_000, bob=50_000)
        alice, bob = env.traders[:2]
        assert twin.matched(alice, bob, 0, WAD, wad(100_000)).ok
        twin.configure_oracle(0, HEARTBEAT, wad("0.1"), 120, seconds=1)
        twin.set_price(0, oracle_answer(120_000), seconds=1)  # trips: price refused from here
        alice_id = int(alice.address, 16)
        for seconds in (60, 59):  # 60 s and 119 s into the cooldown
            twin.deposit(bob, usdc(1), seconds=seconds)
            tripped = twin.price(0)
            assert isinstance(tripped, Reverted) and tripped.name == "BreakerTripped"
            refused = twin.view("health(alice)", ("engine", "health", alice_id), lambda: twin.model.health(alice_id))
            assert isinstance(refused, Reverted) and refused.name == "BreakerTripped"
        twin.update_price(0, seconds=1)  # the cooldown is over: the jump is accepted
        assert twin.price(0) == wad(120_000)
