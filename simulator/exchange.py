"""The seam between the run loop and the two executions of the protocol: the contracts on anvil
(`simulator.chain.exchange.ChainExchange`) and the numpy model (`simulator.model.exchange.ModelExchange`).

The run loop speaks in actions; each backend executes a step's actions in order as one block and
answers with results carrying the contracts' own event names and fields, so metrics are computed
the same way from both."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, Sequence, Union

import numpy as np

MAX_UINT = 2**256 - 1
# Where a run's clock starts, in both backends (the chain's genesis is set just before it): only
# differences of time matter to the contracts, and a fixed start makes the logged times repeat.
RUN_START = 1_800_000_000
# Accounts per health or keeper view call (both exchanges chunk the same way: a refused price
# fails a chunk's call).
SCAN_CHUNK = 400
# Transactions per block while the book is opened (both exchanges group the same calls).
SETUP_BATCH = 500
# Depth set while the opening book is built, so opening it does not walk the real book.
SETUP_DEPTH = 10**36


# -- the opening book -- #


@dataclass(frozen=True)
class TraderSeed:
    """One account to open before the run: its collateral and positions (sizes in WAD units)."""

    address: str
    collateral: int  # token units (6 decimals)
    positions: dict[int, int]  # market id -> signed size (WAD)
    isolated_market: int | None = None  # an isolated bucket holds exactly this one market


@dataclass(frozen=True)
class BookSeed:
    traders: Sequence[TraderSeed]
    vault_collateral: int  # token units
    insurance_fund: int  # token units


@dataclass
class SetupReport:
    accounts: int
    positions_opened: int
    positions_rejected: list = field(default_factory=list)  # (address, market, reason)


@dataclass(frozen=True)
class OpeningCall:
    """A call of the engine while the book opens, by its Solidity name: sent by `sender` (None:
    the operator, who funds every account); `position` is the (trader address, market) a trade
    opens, whose outcome the set-up report counts."""

    function: str
    args: tuple
    sender: str | None = None
    position: tuple[str, int] | None = None


def open_book(exchange: "Exchange", book: BookSeed, timestamp: int) -> SetupReport:
    """The opening, the same blocks on both exchanges: the operator's funds (the chain's token;
    nothing in the model), every deposit, the depth set out of the way, every trader's positions
    (an isolated one after its margin moves into the bucket), the depth set back. A block holds
    SETUP_BATCH calls; blocks are mined a second apart from `timestamp`."""
    clock = iter(range(timestamp, timestamp + 10**6))
    exchange.fund_operator(book, next(clock))
    deposits = [OpeningCall("depositFor", (t.address, t.collateral)) for t in book.traders if t.collateral]
    deposits.append(OpeningCall("depositFor", (exchange.vault, book.vault_collateral)))
    if book.insurance_fund:
        deposits.append(OpeningCall("depositInsurance", (book.insurance_fund,)))
    failed = [(call, error) for call, error in zip(deposits, _in_blocks(exchange, deposits, clock)) if error]
    if failed:
        call, error = failed[0]
        raise RuntimeError(f"set-up transaction {call.function}{call.args} failed: {error}")
    depths = exchange.snapshot().depth2pct
    _in_blocks(exchange, [OpeningCall("setDepth", (m, SETUP_DEPTH)) for m in range(len(depths))], clock)
    trades = []
    for trader in book.traders:
        for market, size in trader.positions.items():
            if trader.isolated_market is not None:
                trades.append(OpeningCall("transferMargin", (market, trader.collateral * 10**12), trader.address))
                trades.append(OpeningCall("openIsolatedPosition", (market, size, _no_price_limit(size)), trader.address,
                                          (trader.address, market)))
            else:
                trades.append(OpeningCall("openPosition", (market, size, _no_price_limit(size)), trader.address,
                                          (trader.address, market)))
    outcomes = _in_blocks(exchange, trades, clock)
    _in_blocks(exchange, [OpeningCall("setDepth", (m, d)) for m, d in enumerate(depths)], clock)
    exchange.timestamp = next(clock) - 1
    opened = [(call.position, error) for call, error in zip(trades, outcomes) if call.position]
    return SetupReport(accounts=len(book.traders), positions_opened=sum(1 for _, error in opened if error is None),
                       positions_rejected=[(*position, error) for position, error in opened if error is not None])


def _in_blocks(exchange: "Exchange", calls: list[OpeningCall], clock) -> list[str | None]:
    """Each call's error (None: it went through), SETUP_BATCH calls to a block."""
    outcomes: list[str | None] = []
    for start in range(0, len(calls), SETUP_BATCH):
        outcomes += exchange.setup_block(calls[start : start + SETUP_BATCH], next(clock))
    return outcomes


def _no_price_limit(size: int) -> int:
    """Buys accept any price, sells any price above zero."""
    return MAX_UINT if size > 0 else 0


# -- actions -- #


@dataclass(frozen=True)
class PushPrice:
    market: int
    answer: int  # 8-decimal oracle answer


@dataclass(frozen=True)
class SetDepth:
    market: int
    depth2pct: int  # WAD USD


@dataclass(frozen=True)
class Liquidate:
    account_id: int
    market: int


@dataclass(frozen=True)
class Deleverage:
    account_id: int
    market: int
    counterparties: tuple[int, ...]


@dataclass(frozen=True)
class AddMargin:
    address: str
    amount: int  # token units


@dataclass(frozen=True)
class Trade:
    """A taker trade against the vault (cross account, or the isolated bucket when `isolated`)."""

    address: str
    market: int
    size_delta: int  # WAD, signed
    isolated: bool = False


Action = Union[PushPrice, SetDepth, Liquidate, Deleverage, AddMargin, Trade]


@dataclass
class ActionResult:
    action: Action
    ok: bool
    events: list = field(default_factory=list)  # (event name, {field: value}) in emission order
    error: str | None = None


# -- reads -- #


class HealthScan:
    """Every registered account but the vault: ids (registry order), account values and maintenance
    margins (WAD).

    Either exact (the backends' full `scan`: exact ints, `margins` None) or screened (the position
    index: float64 values known to within `margins`, `confirm` answering exact health of the
    accounts asked, and each account asked once). Decisions read `exact` for the accounts the
    screen cannot settle, so a screened scan decides exactly as an exact one."""

    def __init__(self, ids: list[int], values: np.ndarray, mms: np.ndarray, margins: np.ndarray | None = None,
                 holds: np.ndarray | None = None, confirm=None):
        self.ids = ids
        self.values = values
        self.mms = mms
        self.margins = margins
        self.holds = holds  # holds a position (exact scans: MM > 0 stands for it)
        self._confirm = confirm
        self._exact: dict[int, tuple[int, int]] = {}
        if margins is None:
            self._exact = {i: (int(v), int(m)) for i, v, m in zip(ids, values, mms)}
        self._candidates: dict[int, int] = {}  # what `liquidatable` returned, by id: its place in `ids`
        self.confirmed = 0  # accounts asked of the exchange exactly

    def near(self, levels: np.ndarray) -> np.ndarray:
        """Accounts whose value the screen cannot place on one side of `levels` (per account, WAD)."""
        if self.margins is None:
            return np.zeros(len(self.ids), dtype=bool)
        # The margin bounds the error of the value and of the MM alike; a level that is a multiple
        # of the MM carries that multiple of its error.
        return np.abs(self.values - levels) <= 3 * self.margins + 1e-12 * np.abs(levels)

    def exact(self, account_ids) -> dict[int, tuple[int, int]]:
        """(value, MM) exactly, by account id (one batched question for those not yet known)."""
        missing = [i for i in account_ids if i not in self._exact]
        if missing:
            values, mms = self._confirm(missing)
            self._exact.update(zip(missing, zip((int(v) for v in values), (int(m) for m in mms))))
            self.confirmed += len(missing)
        return {i: self._exact[i] for i in account_ids}

    def settle(self, indexes) -> None:
        """Replaces the screened values at `indexes` by the float of their exact values, as an exact
        scan would hold them."""
        indexes = np.asarray(indexes, dtype=np.intp)
        if self.margins is None or not len(indexes):
            return
        known = self.exact([self.ids[i] for i in indexes.tolist()])
        self.values[indexes] = [float(known[self.ids[i]][0]) for i in indexes.tolist()]
        self.mms[indexes] = [float(known[self.ids[i]][1]) for i in indexes.tolist()]
        self.margins[indexes] = 0.0

    def liquidatable(self) -> list[int]:
        """Accounts with a position and value below their maintenance margin, in registry order.
        A screened scan confirms exactly only the accounts its margins cannot settle: one whose
        value is below its MM, and its MM above zero, by more than the margin is liquidatable
        whatever the float error (most of them bankrupt accounts waiting for ADL)."""
        if self.margins is None:
            found = [(k, i) for k, (i, v, m) in enumerate(zip(self.ids, self.values, self.mms)) if m > 0 and v < m]
            self._candidates.update((i, k) for k, i in found)
            return [i for _, i in found]
        gap = self.values - self.mms
        flagged = np.flatnonzero(self.holds & (gap <= self.margins))
        surely = (gap[flagged] < -self.margins[flagged]) & (self.mms[flagged] > self.margins[flagged])
        known = self.exact([self.ids[k] for k in flagged[~surely].tolist()])
        found = []
        for k, sure in zip(flagged.tolist(), surely.tolist()):
            account_id = self.ids[k]
            if sure or (known[account_id][1] > 0 and known[account_id][0] < known[account_id][1]):
                found.append(account_id)
                self._candidates[account_id] = k
        return found

    def by_health(self, account_ids: list[int]) -> list[int]:
        """Accounts `liquidatable` returned, accounts still above zero first, the least value /
        maintenance margin first, then those below zero, the deepest (relative to their MM) first;
        ties in registry order. The order is the exact values' (as an exact scan would give it):
        the screen's values place most accounts, and only those whose sign, or whose ratio against
        a neighbour's, its margins leave open are confirmed exactly (one batched question)."""
        if not account_ids:
            return []
        pad = 1e-12  # float division and rounding of the bounds, relative
        bounds: dict[int, tuple[bool, float, float]] = {}  # id -> (below zero, lowest, highest ratio)
        unsure: set[int] = set()
        for account_id in account_ids:
            if account_id in self._exact:
                value, mm = self._exact[account_id]
                ratio = value / mm
                bounds[account_id] = (value < 0, ratio - pad * abs(ratio), ratio + pad * abs(ratio))
                continue
            k = self._candidates[account_id]
            value, mm, margin = float(self.values[k]), float(self.mms[k]), float(self.margins[k])
            if value - margin < 0 <= value + margin or mm <= margin:
                unsure.add(account_id)
                continue
            ratios = [(value + dv) / (mm + dm) for dv in (-margin, margin) for dm in (-margin, margin)]
            low, high = min(ratios), max(ratios)
            bounds[account_id] = (value < 0, low - pad * abs(low), high + pad * abs(high))
        # Accounts whose ratio intervals overlap cannot be ordered by the screen: exactly, then.
        placed = sorted(bounds, key=lambda a: (bounds[a][0], bounds[a][1]))
        cluster: list[int] = []
        reach = None
        for account_id in placed + [None]:
            entry = bounds.get(account_id) if account_id is not None else None
            if entry is not None and cluster and (entry[0], entry[1]) <= reach:
                cluster.append(account_id)
                reach = max(reach, (entry[0], entry[2]))
                continue
            if len(cluster) > 1:
                unsure.update(cluster)
            if entry is not None:
                cluster, reach = [account_id], (entry[0], entry[2])
        exact = self.exact([a for a in account_ids if a in unsure or a in self._exact])

        def key(account_id: int) -> tuple[bool, Fraction | float, int]:
            k = self._candidates[account_id]
            if account_id in exact:
                value, mm = exact[account_id]
                return value < 0, Fraction(value, mm), k
            below, low, high = bounds[account_id]
            return below, (low + high) / 2, k

        return sorted(account_ids, key=key)

    def value_bounds(self, account_id: int) -> tuple[float | int, float | int]:
        """(lowest, highest) the exact value of an account `liquidatable` returned can be: the exact
        value twice once known, else the screened value give or take its margin (Python floats:
        compared with ints exactly)."""
        if account_id in self._exact:
            value = self._exact[account_id][0]
            return value, value
        k = self._candidates[account_id]
        value, margin = float(self.values[k]), float(self.margins[k])
        return value - margin, value + margin


@dataclass
class Snapshot:
    """State the metrics record each step (WAD)."""

    prices: list[int]  # oracle price per market, 0 when unusable (stale, tripped, ...)
    price_status: list[int]  # OracleRouter status codes (0 = usable)
    depth2pct: list[int]
    long_open_interest: list[int]
    short_open_interest: list[int]
    vault_size: list[int]
    insurance_fund: int  # free to pay new losses
    insurance_fund_reserved: int  # earmarked for deficits of accounts still holding positions
    bad_debt: int
    vault_value: int | None = None  # the vault's account value; None while a price it needs is refused
    # Per market, for the position index: the last accrued funding index, the rate now, when it
    # was accrued, and the social-loss index.
    funding_index: list[int] = field(default_factory=list)
    funding_rate: list[int] = field(default_factory=list)
    last_funding_time: list[int] = field(default_factory=list)
    social_loss_index: list[int] = field(default_factory=list)
    # Per market, signed size this block's fills have walked the book (0 in a block without any):
    # for the keepers, which way a liquidation fill can move from the oracle price.
    book_consumed: list[int] = field(default_factory=list)


class Exchange(Protocol):
    """What the run loop needs from a backend."""

    def open_book(self, book: BookSeed, timestamp: int) -> SetupReport:
        """`open_book(self, book, timestamp)` (this module): the same blocks on both."""
        ...

    vault: str | int  # the vault's address (the model's: an int)

    def fund_operator(self, book: BookSeed, timestamp: int) -> None:
        """The opening's first block: what the operator needs to fund every account."""
        ...

    def setup_block(self, calls: Sequence[OpeningCall], timestamp: int) -> list[str | None]:
        """The calls mined as one block at `timestamp`: each one's error, None when it went through."""
        ...

    # The opened-book cache (simulator/book_cache.py): what determines the backend's behaviour,
    # and its whole state as bytes, written and read back.
    def code_fingerprint(self) -> str: ...

    def dump_state(self) -> bytes: ...

    def load_state(self, data: bytes, timestamp: int) -> None: ...

    def balance_sheet(self) -> tuple[int, int, int]: ...

    def execute(self, actions: Sequence[Action], timestamp: int) -> list[ActionResult]: ...

    def scan(self) -> HealthScan:
        """Exact health of every account (tests and checks; runs screen from the position index)."""
        ...

    def account_ids(self) -> list[int]: ...

    def account_states(self, account_ids: Sequence[int]) -> tuple: ...

    def health_of(self, account_ids: Sequence[int]) -> tuple[list[int], list[int]]: ...

    def tiers(self, market: int) -> tuple[list[int], list[int], list[int]]: ...

    def open_markets(self, account_ids: Sequence[int]) -> list[list[int]]: ...

    def positions(self, account_ids: Sequence[int], market: int) -> list[int]: ...

    def adl_required(self, pairs: Sequence[tuple[int, int]]) -> list[bool]: ...

    def unrealized_pnls(self, pairs: Sequence[tuple[int, int]]) -> list[int]: ...

    def fund_reserves(self, account_ids: Sequence[int]) -> list[int]: ...

    def adl_ranking(self, market: int, bankrupt_side: int) -> list[int]: ...

    def snapshot(self) -> Snapshot: ...

    def close(self) -> None: ...


def position_sizes(exchange: Exchange, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Position sizes of (account, market) pairs, one batched read per market."""
    sizes: dict[tuple[int, int], int] = {}
    for market in sorted({m for _, m in pairs}):
        accounts = [a for a, m in pairs if m == market]
        sizes.update(((a, market), s) for a, s in zip(accounts, exchange.positions(accounts, market)))
    return sizes
