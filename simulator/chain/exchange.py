"""The contracts on anvil as the simulator's exchange: every step is one block of batched
transactions, every read one batch of eth_calls."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Iterator, Sequence

import numpy as np

from simulator.chain.deploy import System
from simulator.chain.rpc import BatchedChain, Call, ContractAbi, Reverted, Tx
from simulator.errors import ChainError
from simulator.exchange import (
    MAX_UINT,
    SCAN_CHUNK,
    Action,
    ActionResult,
    AddMargin,
    BookSeed,
    Deleverage,
    HealthScan,
    Liquidate,
    OpeningCall,
    PushPrice,
    SetDepth,
    SetupReport,
    Snapshot,
    Trade,
    open_book,
)

# Registry entries per accountIdsFrom call.
IDS_CHUNK = 5000
# Token units the operator holds for traders' margin top-ups ($1e12: never the limit).
AGENT_BUDGET = 10**18


def contract_abi(name: str, contract) -> ContractAbi:
    abi = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in contract.contract_type.abi]
    return ContractAbi(name, contract.address, abi)


class ChainExchange:
    def __init__(self, system: System, uri: str, keeper: str | None = None, start: int | None = None,
                 own_devnet: bool = False):
        """`start`: where the run's clock starts (its first block is mined then), when the chain's
        is still before it. `own_devnet`: the chain was started for this run (no one else sends or
        holds ether on it)."""
        contracts = {
            "engine": contract_abi("engine", system.engine),
            "liquidator": contract_abi("liquidator", system.liquidator),
            "router": contract_abi("router", system.router),
            "usdc": contract_abi("usdc", system.usdc),
        }
        for market, feed in enumerate(system.feeds):
            contracts[f"feed{market}"] = contract_abi(f"feed{market}", feed)
        self.chain = BatchedChain(uri, contracts, own_devnet=own_devnet)
        self.operator = system.deployer.address  # owner, operator, market maker, feed updater, funder
        self.keeper = keeper or system.deployer.address
        self.vault = system.vault.address
        self.vault_id = int(self.vault, 16)
        self.n_markets = len(system.feeds)
        self.timestamp = int(self.chain.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        if start is not None and self.timestamp < start:
            self.timestamp = start - 1

    # -- set-up -- #

    def open_book(self, book: BookSeed, timestamp: int) -> SetupReport:
        """simulator.exchange.open_book: blocks of batched transactions."""
        return open_book(self, book, timestamp)

    def fund_operator(self, book: BookSeed, timestamp: int) -> None:
        """The operator mints what it deposits for every account (and a budget for the traders'
        top-ups during the run, AddMargin) and lets the engine take it."""
        total = sum(t.collateral for t in book.traders) + book.vault_collateral + book.insurance_fund + AGENT_BUDGET
        self.chain.transact([
            Tx(self.operator, "usdc", "mint", (self.operator, total)),
            Tx(self.operator, "usdc", "approve", (self.chain.contracts["engine"].address, MAX_UINT)),
        ], timestamp=timestamp)

    def setup_block(self, calls: Sequence[OpeningCall], timestamp: int) -> list[str | None]:
        txs = [Tx(call.sender or self.operator, "engine", call.function, call.args) for call in calls]
        self.timestamp = timestamp
        return [None if r.ok else r.error for r in self.chain.transact(txs, timestamp=timestamp)]

    # -- the opened-book cache -- #

    def code_fingerprint(self) -> str:
        """The deployed contracts' addresses and runtime bytecode, the node's version and chain id."""
        contracts = sorted(self.chain.contracts.items())
        answers = self.chain.request_many([("eth_getCode", [c.address, "latest"]) for _, c in contracts]
                                          + [("web3_clientVersion", []), ("eth_chainId", [])])
        parts = [(name, c.address) for name, c in contracts] + answers
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def dump_state(self) -> bytes:
        """anvil_dumpState without the chain's history: every account (code, storage, nonce,
        balance), the block environment and the latest block (gzipped JSON)."""
        state = json.loads(gzip.decompress(bytes.fromhex(self.chain.request("anvil_dumpState", [])[2:])))
        latest = [block for block in state["blocks"] if int(block["header"]["number"], 16) == state["best_block_number"]]
        kept = {"block": state["block"], "best_block_number": state["best_block_number"], "blocks": latest,
                "accounts": state["accounts"]}
        return gzip.compress(json.dumps(kept).encode(), compresslevel=6)

    def load_state(self, data: bytes, timestamp: int) -> None:
        """anvil_loadState, in parts: anvil refuses a request body beyond a few MB, so the accounts
        (and a large contract's storage) are sent a slice at a time; each part merges into the
        chain, and each carries the block, whose number and time become the chain's."""
        state = json.loads(gzip.decompress(data))
        frame = {key: state[key] for key in ("block", "best_block_number", "blocks")}
        frame.update(transactions=[], historical_states=None)
        for accounts in _state_parts(state["accounts"]):
            part = gzip.compress(json.dumps({**frame, "accounts": accounts}).encode(), compresslevel=1)
            self.chain.request("anvil_loadState", ["0x" + part.hex()])
        self.timestamp = timestamp

    # -- a step -- #

    def execute(self, actions: Sequence[Action], timestamp: int) -> list[ActionResult]:
        """Executes the actions in order as one block mined at `timestamp`."""
        txs: list[Tx] = []
        owners: list[int] = []
        for index, action in enumerate(actions):
            for tx in self._txs(action):
                txs.append(tx)
                owners.append(index)
        results = [ActionResult(action=a, ok=True) for a in actions]
        for owner, tx_result in zip(owners, self.chain.transact(txs, timestamp=timestamp)):
            result = results[owner]
            result.events += tx_result.events
            if not tx_result.ok:
                result.ok = False
                result.error = result.error or tx_result.error
        self.timestamp = timestamp
        return results

    def _txs(self, action: Action) -> list[Tx]:
        if isinstance(action, PushPrice):
            return [
                Tx(self.operator, f"feed{action.market}", "submit", (action.answer,)),
                Tx(self.operator, "router", "update", (action.market,)),
            ]
        if isinstance(action, SetDepth):
            return [Tx(self.operator, "engine", "setDepth", (action.market, action.depth2pct))]
        if isinstance(action, Liquidate):
            return [Tx(self.keeper, "liquidator", "liquidateAccount", (action.account_id, action.market, MAX_UINT))]
        if isinstance(action, Deleverage):
            return [Tx(self.keeper, "liquidator", "deleverageAccount", (action.account_id, action.market, list(action.counterparties)))]
        if isinstance(action, AddMargin):
            return [Tx(self.operator, "engine", "depositFor", (action.address, action.amount))]
        if isinstance(action, Trade):
            function = "openIsolatedPosition" if action.isolated else "openPosition"
            return [Tx(action.address, "engine", function, (action.market, action.size_delta, _limit(action.size_delta)))]
        raise TypeError(f"unknown action {action!r}")

    # -- reads -- #

    def scan(self) -> HealthScan:
        [count] = self.chain.call([Call("engine", "accountCount")])
        starts = list(range(0, count, SCAN_CHUNK))
        results = self.chain.call([Call("engine", "healthRange", (start, SCAN_CHUNK)) for start in starts])
        rows: list[tuple[int, int, int]] = []
        for start, result in zip(starts, results):
            if isinstance(result, Reverted):
                # A refused price (breaker, staleness) fails the whole chunk: ask its accounts one
                # by one, so those without the refused market stay in the keepers' view.
                rows += self._health_one_by_one(start, min(SCAN_CHUNK, count - start))
            else:
                rows += zip(*result)
        rows = [row for row in rows if row[0] != self.vault_id]
        return HealthScan(ids=[row[0] for row in rows], values=np.array([row[1] for row in rows], dtype=object),
                          mms=np.array([row[2] for row in rows], dtype=object))

    def _health_one_by_one(self, start: int, count: int) -> list[tuple[int, int, int]]:
        """(id, AV, MM) of the accounts start..start+count-1 whose health can be computed now."""
        ids = self.chain.call([Call("engine", "accountIds", (i,)) for i in range(start, start + count)])
        healths = self.chain.call([Call("engine", "health", (i,)) for i in ids])
        return [(i, h[0], h[1]) for i, h in zip(ids, healths) if not isinstance(h, Reverted)]

    def account_ids(self) -> list[int]:
        [count] = self.chain.call([Call("engine", "accountCount")])
        chunks = self._all([Call("engine", "accountIdsFrom", (start, IDS_CHUNK)) for start in range(0, count, IDS_CHUNK)])
        return [account_id for chunk in chunks for account_id in chunk]

    def account_states(self, account_ids: Sequence[int]) -> tuple[list[int], ...]:
        columns: tuple[list[int], ...] = ([], [], [], [], [], [])
        for result in self._all([Call("engine", "accountStates", (chunk,)) for chunk in _chunks(list(account_ids))]):
            for column, part in zip(columns, result):
                column.extend(part)
        return columns

    def health_of(self, account_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        values: list[int] = []
        mms: list[int] = []
        for result in self._all([Call("engine", "healthOf", (chunk,)) for chunk in _chunks(list(account_ids))]):
            values.extend(result[0])
            mms.extend(result[1])
        return values, mms

    def tiers(self, market: int) -> tuple[list[int], list[int], list[int]]:
        [result] = self._all([Call("engine", "tiersOf", (market,))])
        return tuple(list(part) for part in result)

    def open_markets(self, account_ids: Sequence[int]) -> list[list[int]]:
        masks = [mask for masks, _ in self._per_chunk(account_ids, "marketMasksAndReserves") for mask in masks]
        return [[m for m in range(self.n_markets) if mask >> m & 1] for mask in masks]

    def positions(self, account_ids: Sequence[int], market: int) -> list[int]:
        return [size for sizes in self._per_chunk(account_ids, "positionSizes", market) for size in sizes]

    def adl_required(self, pairs: Sequence[tuple[int, int]]) -> list[bool]:
        chunks = _chunks(list(pairs))
        calls = _pair_calls("adlRequiredMany", chunks)
        answers = []
        for chunk, result in zip(chunks, self.chain.call(calls)):
            # A refused price fails the whole call; a single adlRequired would fail too.
            answers += [False] * len(chunk) if isinstance(result, Reverted) else [bool(r) for r in result]
        return answers

    def unrealized_pnls(self, pairs: Sequence[tuple[int, int]]) -> list[int]:
        return [pnl for pnls in self._all(_pair_calls("unrealizedPnls", _chunks(list(pairs)))) for pnl in pnls]

    def fund_reserves(self, account_ids: Sequence[int]) -> list[int]:
        return [r for _, reserves in self._per_chunk(account_ids, "marketMasksAndReserves") for r in reserves]

    def _per_chunk(self, account_ids: Sequence[int], function: str, *args) -> list:
        """One keeper view (LiquidationEngine's many-account views) over the accounts, a chunk per
        call, every chunk in one batch."""
        return self._all([Call("liquidator", function, (chunk, *args)) for chunk in _chunks(list(account_ids))])

    def _all(self, calls: list[Call]) -> list:
        results = self.chain.call(calls)
        for result in results:
            if isinstance(result, Reverted):
                raise ChainError(self.chain.uri, f"refused a keeper view: {result.reason}")
        return results

    def adl_ranking(self, market: int, bankrupt_side: int) -> list[int]:
        [result] = self.chain.call([Call("liquidator", "adlRanking", (market, bankrupt_side))])
        return [] if isinstance(result, Reverted) else list(result[0])

    def snapshot(self) -> Snapshot:
        prices, views, fund, reserved, bad_debt, vault = self.chain.call([
            Call("router", "prices", (list(range(self.n_markets)),)),
            Call("engine", "marketViews"),
            Call("engine", "insuranceFund"),
            Call("engine", "insuranceFundReserved"),
            Call("engine", "badDebt"),
            Call("engine", "health", (self.vault_id,)),
        ])
        return Snapshot(
            prices=list(prices[0]),
            price_status=list(prices[1]),
            depth2pct=[v[6] for v in views],
            long_open_interest=[v[1] for v in views],
            short_open_interest=[v[2] for v in views],
            vault_size=[v[3] for v in views],
            insurance_fund=fund,
            insurance_fund_reserved=reserved,
            bad_debt=bad_debt,
            vault_value=None if isinstance(vault, Reverted) else vault[0],
            funding_index=[v[4] for v in views],
            funding_rate=[v[5] for v in views],
            last_funding_time=[v[10] for v in views],
            social_loss_index=[v[9] for v in views],
            book_consumed=[v[7] for v in views],
        )

    def balance_sheet(self) -> tuple[int, int, int]:
        [sheet] = self.chain.call([Call("engine", "balanceSheet")])
        return tuple(sheet)

    def close(self) -> None:
        self.chain.request("evm_setAutomine", [True])
        self.chain.provider.close()


# JSON characters of accounts per anvil_loadState part (the request stays well under anvil's limit).
STATE_PART = 400_000


def _state_parts(accounts: dict) -> Iterator[dict]:
    """The dumped accounts in parts of about STATE_PART characters; an account whose storage is
    larger is split over several parts (each slice of its storage with its code and nonce)."""
    part: dict = {}
    size = 0
    for address, account in accounts.items():
        head = {key: value for key, value in account.items() if key != "storage"}
        slots = list(account.get("storage", {}).items())
        start = 0
        while True:
            taken = {}
            while start < len(slots) and size < STATE_PART:
                key, value = slots[start]
                taken[key] = value
                size += len(key) + len(value) + 8
                start += 1
            size += len(json.dumps(head))
            part[address] = {**head, "storage": taken}
            if size >= STATE_PART:
                yield part
                part, size = {}, 0
            if start >= len(slots):
                break
    if part:
        yield part


def _chunks(items: list) -> list[list]:
    return [items[start : start + SCAN_CHUNK] for start in range(0, len(items), SCAN_CHUNK)]


def _pair_calls(function: str, chunks: list[list[tuple[int, int]]]) -> list[Call]:
    """One call of a LiquidationEngine view over (accountIds, marketIds) per chunk of pairs."""
    return [Call("liquidator", function, ([a for a, _ in chunk], [m for _, m in chunk])) for chunk in chunks]


def _limit(size: int) -> int:
    """No price limit: buys accept any price, sells any price above zero."""
    return MAX_UINT if size > 0 else 0
