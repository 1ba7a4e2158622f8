"""The cache of opened books (simulator/book_cache.py): a run whose book comes from the cache gives
the same events and summary as one that opened it; a corrupt, truncated or tampered entry is
rebuilt, never trusted; the key follows the book; the cache stays within its size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.book_cache import META_FILE, STATE_FILE, BookCache
from simulator.runner import opening_book, run_scenario
from tests.golden import FILES, chain_exchange, comparable_summary, folder, model_exchange, scenario_for


def _run(name: str, mode: str, out: Path, cache: BookCache, max_steps: int | None = None) -> tuple[dict, dict]:
    factory = chain_exchange if mode == "chain" else model_exchange
    result = run_scenario(scenario_for(name, mode), out, factory, max_steps=max_steps, book_cache=cache)
    files = {file: (out / file).read_text() for file in FILES}
    return comparable_summary(result.summary), files


def _tamper(cache: BookCache, how: str) -> None:
    [entry] = [path for path in cache.folder.iterdir() if (path / META_FILE).is_file()]
    state = entry / STATE_FILE
    if how == "garbage":
        state.write_bytes(b"\x1f\x8b not a state")
    elif how == "truncated":
        state.write_bytes(state.read_bytes()[: len(state.read_bytes()) // 2])
    elif how == "digest":  # loads fine, reads back other than what was stored
        meta = json.loads((entry / META_FILE).read_text())
        meta["digest"] = "0" * 64
        (entry / META_FILE).write_text(json.dumps(meta))


def test_open_book_model_hit_gives_the_golden_run(tmp_path):
    cache = BookCache(tmp_path / "books")
    golden = folder("oct-2025", "model")
    want = (json.loads((golden / "summary.json").read_text()), {f: (golden / f).read_text() for f in FILES})
    assert _run("oct-2025", "model", tmp_path / "first", cache) == want
    assert cache.outcome == "miss"
    assert _run("oct-2025", "model", tmp_path / "second", cache) == want
    assert cache.outcome == "hit"


@pytest.mark.parametrize("how", ["garbage", "truncated", "digest"])
def test_open_book_model_bad_entry_is_rebuilt(tmp_path, how):
    cache = BookCache(tmp_path / "books")
    first = _run("whale-short", "model", tmp_path / "first", cache, max_steps=20)
    _tamper(cache, how)
    assert _run("whale-short", "model", tmp_path / "second", cache, max_steps=20) == first
    assert cache.outcome == "rebuilt"
    # The entry was replaced by a good one: it loads and verifies.
    from simulator.model.exchange import ModelExchange

    [entry] = [path for path in cache.folder.iterdir() if (path / META_FILE).is_file()]
    assert cache._load(ModelExchange(scenario_for("whale-short", "model").market_specs()), entry) is not None


def test_open_book_chain_hit_and_rebuild_give_the_same_run(tmp_path):
    """On anvil: stored, loaded (anvil_loadState, block number and time included), then an entry
    that loads but reads back wrong is replaced from a fresh devnet."""
    cache = BookCache(tmp_path / "books")
    first = _run("whale-short", "chain", tmp_path / "first", cache, max_steps=30)
    assert cache.outcome == "miss"
    assert _run("whale-short", "chain", tmp_path / "second", cache, max_steps=30) == first
    assert cache.outcome == "hit"
    _tamper(cache, "digest")
    assert _run("whale-short", "chain", tmp_path / "third", cache, max_steps=30) == first
    assert cache.outcome == "rebuilt"


def test_key_follows_the_book(tmp_path):
    from simulator.model.exchange import ModelExchange

    cache = BookCache(tmp_path / "books")
    scenario = scenario_for("calm", "model")
    exchange = ModelExchange(scenario.market_specs())
    specs = scenario.market_specs()

    def key(seed=0, accounts=40, timestamp=exchange.timestamp + 1, markets=specs):
        book, _, _ = opening_book(scenario, seed, accounts)
        return cache.key(exchange, markets, book, timestamp)

    assert key() == key()
    assert len({key(), key(seed=1), key(accounts=41), key(timestamp=exchange.timestamp + 2),
                key(markets=[specs[0].__class__(**{**specs[0].__dict__, "imr": "0.2"}), *specs[1:]])}) == 5


def test_store_prunes_the_entries_used_longest_ago(tmp_path):
    cache = BookCache(tmp_path / "books", max_bytes=1)  # room for the newest entry only
    _run("whale-short", "model", tmp_path / "a", cache, max_steps=5)
    [first] = list(cache.folder.iterdir())
    _run("calm", "model", tmp_path / "b", cache, max_steps=5)
    entries = list(cache.folder.iterdir())
    assert len(entries) == 1 and entries[0] != first
