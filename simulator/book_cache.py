"""A cache of opened books: the exchange's whole state right after `open_book`, so a rerun, or a
sweep variant that differs only after the opening, skips it (at 10,000 accounts the opening is
20,000 transactions on chain).

An entry's key is a hash of everything that determines the opened state: the backend and its code
(the deployed contracts' runtime bytecode and the node's version on chain; the model's source in
model mode), the markets, every account of the book with its collateral and positions, the vault's
collateral and the insurance fund, the block time the opening starts at, and the cache format.
Entries live in the checkout's `.cache/books/`, one folder each, written atomically.

An entry is never trusted: after loading it, the exchange's state is read back (market views,
fund, balance sheet, every account's collateral, earmark and positions) and compared with the
digest stored when the entry was written. A missing, unreadable, corrupt or stale entry is
rebuilt by opening the book again."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import astuple
from pathlib import Path
from typing import Sequence

from simulator import __version__
from simulator.exchange import BookSeed, Exchange, SetupReport
from simulator.market_spec import MarketSpec
from simulator.toolchain import PROJECT_ROOT

# Bumped when an entry's layout or what its key covers changes.
CACHE_FORMAT = 2
DEFAULT_FOLDER = PROJECT_ROOT / ".cache" / "books"
STATE_FILE, META_FILE = "state.bin", "meta.json"
# Beyond this, the entries used longest ago are removed (a 10,000-account chain book is ~30 MB).
MAX_BYTES = 2 * 1024**3


class BookCache:
    """Opened books under `folder`; `outcome` says what the last `open_book` did: "hit" (loaded
    and verified), "miss" (opened and stored) or "rebuilt" (the entry failed to load or verify,
    so the book was opened again and the entry replaced)."""

    def __init__(self, folder: Path = DEFAULT_FOLDER, max_bytes: int = MAX_BYTES):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.outcome: str | None = None
        self._stale: set[str] = set()  # keys whose entry failed: the next open rebuilds it

    def key(self, exchange: Exchange, markets: Sequence[MarketSpec], book: BookSeed, timestamp: int) -> str:
        digest = hashlib.sha256()
        for part in (CACHE_FORMAT, __version__, type(exchange).__name__, exchange.code_fingerprint(), timestamp,
                     [astuple(spec) for spec in markets], book.vault_collateral, book.insurance_fund):
            digest.update(repr(part).encode())
        for trader in book.traders:
            digest.update(repr((trader.address, trader.collateral, sorted(trader.positions.items()),
                                trader.isolated_market)).encode())
        return digest.hexdigest()[:32]

    def open_book(self, exchange: Exchange, markets: Sequence[MarketSpec], book: BookSeed,
                  timestamp: int) -> SetupReport:
        """Loads the opened book from the cache, or opens it and stores it."""
        key = self.key(exchange, markets, book, timestamp)
        entry = self.folder / key
        if (entry / META_FILE).is_file():
            report = self._load(exchange, entry)
            if report is not None:
                self.outcome = "hit"
                os.utime(entry / META_FILE)  # used now: the last to be pruned
                return report
            self._stale.add(key)
            shutil.rmtree(entry, ignore_errors=True)
            # A failed load may have left part of the state behind: only a fresh exchange is
            # known clean, so the caller's exchange must not be reused.
            raise StaleEntry(entry)
        self.outcome = "rebuilt" if key in self._stale else "miss"
        self._stale.discard(key)
        report = exchange.open_book(book, timestamp)
        self._store(exchange, entry, report)
        return report

    def _load(self, exchange: Exchange, entry: Path) -> SetupReport | None:
        try:
            meta = json.loads((entry / META_FILE).read_text())
            if meta.get("format") != CACHE_FORMAT:
                return None
            exchange.load_state((entry / STATE_FILE).read_bytes(), meta["timestamp"])
            if state_digest(exchange) != meta["digest"]:
                return None
            return SetupReport(accounts=meta["accounts"], positions_opened=meta["positions_opened"],
                               positions_rejected=[tuple(r) for r in meta["positions_rejected"]])
        except Exception:  # unreadable, truncated, another format, refused by the node: rebuild
            return None

    def _store(self, exchange: Exchange, entry: Path, report: SetupReport) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.folder))
        try:
            (staging / STATE_FILE).write_bytes(exchange.dump_state())
            meta = {"format": CACHE_FORMAT, "timestamp": exchange.timestamp, "digest": state_digest(exchange),
                    "accounts": report.accounts, "positions_opened": report.positions_opened,
                    "positions_rejected": [list(r) for r in report.positions_rejected]}
            (staging / META_FILE).write_text(json.dumps(meta))
            shutil.rmtree(entry, ignore_errors=True)
            try:
                os.replace(staging, entry)
            except OSError:  # another run (a sweep's other worker) stored the same book meanwhile
                return
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        try:
            self._prune(keep=entry)
        except OSError:  # entries removed by another run while this one looked: prune next time
            pass

    def _prune(self, keep: Path) -> None:
        """Removes the entries used longest ago while the cache holds more than `max_bytes`."""
        entries = []
        for path in self.folder.iterdir():
            if path != keep and (path / META_FILE).is_file():
                size = sum(f.stat().st_size for f in path.iterdir())
                entries.append(((path / META_FILE).stat().st_mtime, size, path))
        total = sum(size for _, size, _ in entries) + sum(f.stat().st_size for f in keep.iterdir())
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            shutil.rmtree(path, ignore_errors=True)
            total -= size


class StaleEntry(Exception):
    """An entry failed to load or verify and was removed: open the book on a fresh exchange."""

    def __init__(self, entry: Path):
        super().__init__(f"cached book {entry.name} failed to load or verify; it was removed")
        self.entry = entry


def state_digest(exchange: Exchange) -> str:
    """A hash of what the exchange reads back: market views, fund and vault, balance sheet, and
    every registered account's collateral, earmark and positions."""
    ids = exchange.account_ids()
    digest = hashlib.sha256()
    digest.update(repr((exchange.timestamp, exchange.snapshot(), exchange.balance_sheet(), ids)).encode())
    for start in range(0, len(ids), 2000):
        digest.update(repr(exchange.account_states(ids[start : start + 2000])).encode())
    return digest.hexdigest()
