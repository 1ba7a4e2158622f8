"""Keepers: find liquidatable accounts from a health scan (in a run, the position index's screen,
confirmed exactly where its margins cannot decide), liquidate them, and send the canonical ADL
ranking when the waterfall needs ADL."""

from __future__ import annotations

import math
from typing import Sequence

from simulator.exchange import Action, Deleverage, Exchange, HealthScan, Liquidate, Snapshot, position_sizes
from simulator.market_spec import AdlRanking, BadDebtPolicy, MarketSpec
from simulator.model.depth import IMPACT_AT_DEPTH
from simulator.position_index import PositionIndex, Winner
from simulator.units import wad

# The order in which keepers liquidate a cross account's legs within a block: by market id, or
# the leg with the largest unrealised loss first (closing a profitable hedge first can restore the
# account's health and leave the losing leg open).
LEG_ORDERS = ("market_id", "largest_loss")
# The order in which keepers serve the block's liquidatable accounts: the registry's, or `health`
# (those still above zero first, the least margin first, then the bankrupt ones): when the own book
# cannot take every liquidation of a block, the accounts a fill can still close with equity left
# get it before the later fills of the block have walked it.
ACCOUNT_ORDERS = ("registry", "health")
# Wei of value beyond what the fund can pay below which `beyond_any_fill` leaves the answer to
# `adlRequired` (the rounding of the fill's fixed-point operations is a few wei).
ROUNDING_ROOM = 10**6


def beyond_any_fill(value: int | float, fund_for: int, size: int, book_consumed: int) -> bool:
    """Whether `adlRequired` surely answers True for a liquidatable position of `size` in a market
    whose policy is ADL and which has no rate limit, from its account's `value` (or the highest it
    can be: a lower value only makes the answer surer), what the fund can pay for it (`fund_for`:
    the free fund plus its earmark) and the market view's `book_consumed`, all read at the same
    state, with no price refused.

    The contract's `_plan` ends in USE_ADL along every path that does not fill (an empty or too
    thin book, a slice that worsens health escalates to the whole position or to ADL), and after a
    previewed fill it answers USE_ADL when -valueAfter > fund. A liquidation fill at the oracle
    price or worse only adds to the loss: valueAfter <= value, give or take a few wei of rounding,
    so an account below zero by more than the fund plus ROUNDING_ROOM needs ADL whatever the fill.
    A fill is better than the oracle price only when this block's fills walked the book the other
    way (a bankrupt short buys back after the block's sells pushed the book below the oracle
    price): then the contract decides."""
    closing_buys = size < 0
    walked_back = book_consumed < 0 if closing_buys else book_consumed > 0
    return value < 0 and -value > fund_for + ROUNDING_ROOM and not walked_back


def clear_of_any_fill(value: int | float, fund_for: int, size: int, price: int, depth2pct: int, book_consumed: int,
                      max_impact: int) -> bool:
    """Whether `adlRequired` surely answers False for a liquidatable position of `size` in a market
    whose policy is ADL and which has no rate limit, from its account's `value` (or the lowest it
    can be), what the fund can pay for it (`fund_for`), and the market's oracle `price`, depth,
    `book_consumed` and `max_impact` (WAD), all read at the same state, with no price refused.

    When the book can take the whole position (its notional within what is left of the book in
    the closing direction), `_plan` fills a slice or the whole position and never ends in the void:
    a slice that worsens health escalates to the whole position, which the book, the rate limit
    (none) and the caller (no maximum) allow. It answers USE_ADL only when valueAfter < -fund. The
    fill's loss against the oracle price is at most its notional times the average impact of the
    walk, the impact at the walk's midpoint: |consumed + consumedAfter| / 2 <= |consumed| + half
    the position's notional, 2% per `depth2pct`. A value above -fund by more than that loss (give
    or take ROUNDING_ROOM and a billionth for the float math) needs no ADL whatever the fill. Both
    sides of every comparison are bounded conservatively, so a position near either edge is left
    to the contract."""
    if depth2pct == 0:
        return False
    closing_buys = size < 0
    notional = abs(size) * (price / 1e18)
    edge = depth2pct * (max_impact / IMPACT_AT_DEPTH)
    room = edge - book_consumed if closing_buys else edge + book_consumed
    if notional * (1 + 1e-9) + ROUNDING_ROOM > room * (1 - 1e-9):
        return False
    loss = notional * (IMPACT_AT_DEPTH / 1e18) * (abs(book_consumed) + notional / 2) / depth2pct
    slack = 1e-9 * (abs(value) + fund_for + loss) + ROUNDING_ROOM
    return value + fund_for - loss > slack


def drain_count(sizes: Sequence[int], values: Sequence[int], size: int) -> int:
    """LEVERAGE_DRAIN: how many winners from the top of the ranking (leverage descending; `sizes`
    and account `values` in its order) a deleverage of `size` lists: the ones the draining reaches
    (docs/design.md §6.7). A winner at or below zero value joins while the size is not covered;
    any other joins while the size is not covered or its leverage is above the level the ones
    before it are drained to (|size| * E > R * value, exactly: E their values, R what they keep).
    The whole ranking when it cannot cover `size` (the contract then reverts AdlInsufficient)."""
    remaining, held, equity = size, 0, 0
    for count, (held_size, value) in enumerate(zip(sizes, values)):
        held_size = abs(held_size)
        if value <= 0:
            if remaining == 0:
                return count
            remaining -= min(remaining, held_size)
            continue
        if held >= remaining and held_size * equity <= (held - remaining) * value:
            return count
        held += held_size
        equity += value
    return len(sizes)


def adl_counterparties(ranking: list[int], sizes: list[int], size: int, pro_rata: bool,
                       values: list[int] | None = None) -> list[int]:
    """What a keeper sends to `deleverage`: the whole canonical ranking under PRO_RATA, the prefix
    the draining reaches under LEVERAGE_DRAIN (with the winners' account `values`), else the
    ranking's shortest prefix whose positions cover `size`."""
    if pro_rata:
        return list(ranking)
    if values is not None:
        return list(ranking[:drain_count(sizes, values, size)])
    chosen, covered = [], 0
    for counterparty, held in zip(ranking, sizes):
        if covered >= size:
            break
        chosen.append(counterparty)
        covered += abs(held)
    return chosen


class Keepers:
    """Every liquidatable position is liquidated once per step (a slice per call); positions the
    book and the insurance fund cannot absorb are deleveraged.

    Several bankrupt positions of one market and side are deleveraged in the same block on disjoint
    stretches of the ranking read at the start of the step: each ADL takes the next winners in
    ranking order, skipping accounts an earlier action of the block has touched (liquidated,
    deleveraged, or a counterparty: their scores may have changed, so a list with them could be out
    of order); they head the next step's ranking if they still rank first. An account is
    deleveraged at most once per block: after one ADL its value is back at its earmark, and its
    other positions may no longer need ADL. Under PRO_RATA every ADL takes the whole ranking, so
    one per market and side per step. An ADL that lists more winners than `max_adl_counterparties`
    (what one transaction's gas holds) goes out as several partial ADLs on consecutive stretches of
    its list, in the same block, under the rankings that take them (`AdlRanking.partial`).

    The keepers budget the free insurance fund over the block: each `adlRequired` answer assumes
    the whole fund, so without a budget a step with many underwater accounts sends liquidations the
    fund cannot pay once the first ones have drawn it, and they revert `UseDeleverage`. An account
    whose deficit (beyond the fund's earmark for it) no longer fits waits a step: by then it is
    either paid for by penalties or goes to ADL."""

    def __init__(self, rankings: list[AdlRanking], leg_order: str = "market_id",
                 fill_free_adl: Sequence[bool] | None = None, max_impacts: Sequence[int] | None = None,
                 account_order: str = "registry", max_adl_counterparties: int | None = None):
        if leg_order not in LEG_ORDERS:
            raise ValueError(f"leg_order must be one of {', '.join(LEG_ORDERS)}, not {leg_order!r}")
        if account_order not in ACCOUNT_ORDERS:
            raise ValueError(f"account_order must be one of {', '.join(ACCOUNT_ORDERS)}, not {account_order!r}")
        if max_adl_counterparties is not None and max_adl_counterparties < 1:
            raise ValueError(f"max_adl_counterparties must be at least 1, not {max_adl_counterparties}")
        self.rankings = rankings
        self.leg_order = leg_order
        # Most winners one `deleverage` lists (None: no limit); a longer ADL goes out in parts.
        self.max_adl_counterparties = max_adl_counterparties
        self.account_order = account_order
        # Per market: its policy is ADL and it has no rate limit, so `beyond_any_fill` can answer.
        self.fill_free_adl = list(fill_free_adl) if fill_free_adl is not None else [False] * len(rankings)
        # Per market, the book's maxImpact (WAD), for `clear_of_any_fill`; None: every "no" is asked.
        self.max_impacts = list(max_impacts) if max_impacts is not None else None
        self.held = 0  # liquidations held back by the fund budget, over the run
        self.settled = 0  # `adlRequired` answers the keepers gave without asking, over the run
        self.cleared = 0  # of which False (`clear_of_any_fill`)

    @classmethod
    def for_markets(cls, specs: Sequence[MarketSpec], leg_order: str = "market_id",
                    account_order: str = "registry", max_adl_counterparties: int | None = None) -> "Keepers":
        """Keepers of markets with these specifications (their rankings, policies and rate limits)."""
        return cls([spec.ranking for spec in specs], leg_order,
                   [spec.policy == BadDebtPolicy.ADL and not spec.rate_limit_notional for spec in specs],
                   [wad(spec.max_impact) for spec in specs], account_order, max_adl_counterparties)

    def plan(self, exchange: Exchange, scan: HealthScan, state: Snapshot | None = None,
             index: PositionIndex | None = None) -> list[Action]:
        """This step's keeper actions from `scan`. `state` is the exchange's snapshot at the scan's
        state: its free insurance fund is budgeted, and with its prices all usable `adlRequired` is
        asked only about positions whose answer a fill could still change (`beyond_any_fill`,
        `clear_of_any_fill`); None for neither.
        With the position `index` (at the scan's state), ADL counterparties are ranked from it;
        without, from the contract's `adlRanking` view over every account."""
        candidates = scan.liquidatable()
        if not candidates:
            return []
        if self.account_order == "health":
            candidates = scan.by_health(candidates)
        # Masks, earmarks and sizes are in the index, exact: the chain is asked only what it alone knows.
        reads = index if index is not None else exchange
        pairs = [(a, m) for a, markets in zip(candidates, reads.open_markets(candidates)) for m in markets]
        if self.leg_order == "largest_loss":
            pairs = self._losing_legs_first(exchange, pairs)
        actions: list[Action] = []
        queues: dict[tuple[int, int], _AdlQueue] = {}
        touched: set[int] = set()  # accounts an earlier action of this block changes
        deleveraged: set[int] = set()
        if state is not None:
            pairs = self._within_budget(pairs, self._fund_draws(reads, scan, candidates, state.insurance_fund),
                                        state.insurance_fund)
        needs = self.adl_required(exchange, reads, scan, state, pairs)
        sizes = position_sizes(reads, [pair for pair, need in zip(pairs, needs) if need])
        for (account, market), needs_adl in zip(pairs, needs):
            if not needs_adl:
                actions.append(Liquidate(account, market))
                touched.add(account)
                continue
            size = sizes[account, market]
            if size == 0 or account in deleveraged:
                continue
            side = 1 if size > 0 else -1
            if (market, side) not in queues:
                queues[market, side] = self._queue(exchange, market, side, index)
            counterparties = queues[market, side].take(abs(size), touched | {account})
            if counterparties:
                actions.extend(Deleverage(account, market, part) for part in self._parts(market, counterparties))
                deleveraged.add(account)
                touched.add(account)
                touched.update(counterparties)
        return actions

    def _parts(self, market: int, counterparties: list[int]) -> list[tuple[int, ...]]:
        """One ADL's list as the transactions that send it: whole, or, longer than
        `max_adl_counterparties` under a ranking that takes partial ADLs, consecutive stretches of
        it (each a partial ADL closing its winners whole, the last one the rest)."""
        cap = self.max_adl_counterparties
        if cap is None or len(counterparties) <= cap or not AdlRanking(self.rankings[market]).partial:
            return [tuple(counterparties)]
        return [tuple(counterparties[i:i + cap]) for i in range(0, len(counterparties), cap)]

    def adl_required(self, exchange: Exchange, reads: Exchange | PositionIndex, scan: HealthScan,
                      state: Snapshot | None, pairs: list[tuple[int, int]]) -> list[bool]:
        """`exchange.adl_required(pairs)`, the exchange asked only about the pairs the scan's value
        bounds cannot settle: `beyond_any_fill` from the highest value the scan allows an account,
        `clear_of_any_fill` from the lowest (with the markets' maxImpact known). With a price
        refused every pair is asked: the view's chunks revert whole, so which pairs share a chunk
        matters then."""
        if state is None or any(state.price_status) or not any(self.fill_free_adl[m] for _, m in pairs):
            return exchange.adl_required(pairs)
        # No exact health is asked: a pair the bounds cannot settle is asked instead.
        free = [(a, m) for a, m in pairs if self.fill_free_adl[m]]
        accounts = list(dict.fromkeys(a for a, _ in free))
        bounds = {a: scan.value_bounds(a) for a in accounts}
        settled: dict[tuple[int, int], bool] = {}
        if free:
            fund_for = {a: state.insurance_fund + r for a, r in zip(accounts, reads.fund_reserves(accounts))}
            sizes = position_sizes(reads, free)
            for a, m in free:
                low, high = bounds[a]
                if beyond_any_fill(high, fund_for[a], sizes[a, m], state.book_consumed[m]):
                    settled[a, m] = True
                elif self.max_impacts is not None and clear_of_any_fill(
                        low, fund_for[a], sizes[a, m], state.prices[m], state.depth2pct[m], state.book_consumed[m],
                        self.max_impacts[m]):
                    settled[a, m] = False
        self.settled += len(settled)
        self.cleared += sum(1 for answer in settled.values() if not answer)
        asked = [pair for pair in pairs if pair not in settled]
        answers = dict(zip(asked, exchange.adl_required(asked))) if asked else {}
        return [settled[pair] if pair in settled else answers[pair] for pair in pairs]

    @staticmethod
    def _losing_legs_first(exchange: Exchange, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Each account's legs by unrealised PnL at the oracle price, the largest loss first (ties
        in market-id order); accounts keep their order. Only accounts with several legs are asked."""
        legs: dict[int, list[int]] = {}
        for account, market in pairs:
            legs.setdefault(account, []).append(market)
        hedged = [(a, m) for a, markets in legs.items() if len(markets) > 1 for m in markets]
        pnl = dict(zip(hedged, exchange.unrealized_pnls(hedged))) if hedged else {}
        return [(a, m) for a, markets in legs.items() for m in sorted(markets, key=lambda m: (pnl.get((a, m), 0), m))]

    def _within_budget(self, pairs: list[tuple[int, int]], draws: dict[int, int | float],
                       fund: int) -> list[tuple[int, int]]:
        """The pairs to act on: an account whose draw fits the free fund but no longer what earlier
        accounts of the block left of it waits (not even asked about ADL: the fund would pay it
        alone). One whose draw exceeds the whole fund is kept: it is headed for ADL."""
        budget, kept, budgeted, waiting = fund, [], set(), set()
        for account, market in pairs:
            draw = draws.get(account, 0)
            if 0 < draw <= fund and account not in budgeted:
                if account in waiting or draw > budget:
                    waiting.add(account)
                    self.held += 1
                    continue
                budget -= draw
                budgeted.add(account)
            kept.append((account, market))
        return kept

    @staticmethod
    def _fund_draws(reads: Exchange | PositionIndex, scan: HealthScan, candidates: list[int],
                    fund: int) -> dict[int, int | float]:
        """What each underwater candidate would draw from the free `fund`: its deficit at the oracle
        prices beyond the fund's earmark for it (book impact comes on top; the budget is a floor).
        A draw surely beyond the whole fund is only what the budget needs to know of it (inf): the
        scan's bounds settle it, with no exact health asked."""
        maybe = [a for a in candidates if scan.value_bounds(a)[0] < 0]
        if not maybe:
            return {}
        reserves = dict(zip(maybe, reads.fund_reserves(maybe)))
        draws: dict[int, int | float] = {a: math.inf for a in maybe if scan.value_bounds(a)[1] < -(fund + reserves[a])}
        exact = scan.exact([a for a in maybe if a not in draws])
        draws.update((a, max(-value - reserves[a], 0)) for a, (value, _) in exact.items() if value < 0)
        return draws

    def _queue(self, exchange: Exchange, market: int, side: int, index: PositionIndex | None) -> "_AdlQueue":
        kind = AdlRanking(self.rankings[market])
        pro_rata, drain = kind.whole_ranking, kind is AdlRanking.LEVERAGE_DRAIN
        if index is not None:
            ranking = index.adl_ranking(market, side, by_score=not pro_rata, hyperliquid=kind is AdlRanking.HYPERLIQUID,
                                        largest=kind is AdlRanking.MIN_OVERSHOOT, drain=drain)
            return _AdlQueue(ranking, pro_rata, ranking.values if drain else None)
        ranking = exchange.adl_ranking(market, side)
        sizes = [0] * len(ranking) if pro_rata or not ranking else exchange.positions(ranking, market)
        values = None
        if drain:
            values = dict(zip(ranking, exchange.health_of(ranking)[0])) if ranking else {}
        return _AdlQueue([Winner(i, size, 0) for i, size in zip(ranking, sizes)], pro_rata, values)


class _AdlQueue:
    """The winners of one market and side for this step's ADLs, in ranking order (a sequence of
    `Winner`s: a list, or the index's ranking, exact as far as it is read); under LEVERAGE_DRAIN
    with each winner's account value (`values`, by id)."""

    def __init__(self, ranking: Sequence[Winner], pro_rata: bool, values: dict[int, int] | None = None):
        self.ranking, self.pro_rata, self.values = ranking, pro_rata, values
        self.next = 0  # first winner no ADL of this block has touched

    def take(self, size: int, touched: set[int]) -> list[int]:
        """Counterparties for an ADL of `size`: the shortest run of untouched winners from where the
        last ADL stopped that covers it, or [] when what is left cannot."""
        if self.pro_rata:
            ids = [winner.account_id for winner in self.ranking]
            if self.next or touched.intersection(ids):  # whole ranking, once, untouched
                return []
            self.next = len(ids)
            return ids
        if self.values is not None:
            return self._drained(size, touched)
        chosen, covered, index = [], 0, self.next
        while covered < size and index < len(self.ranking):
            winner = self.ranking[index]
            if winner.account_id not in touched:
                chosen.append(winner.account_id)
                covered += abs(winner.size)
            index += 1
        if covered < size:
            return []
        self.next = index
        return chosen

    def _drained(self, size: int, touched: set[int]) -> list[int]:
        """LEVERAGE_DRAIN: the untouched winners from where the last ADL stopped that the draining
        reaches (`drain_count`), or [] when they cannot cover `size`."""
        untouched, index = [], self.next
        while index < len(self.ranking):
            winner = self.ranking[index]
            if winner.account_id not in touched:
                untouched.append((index, winner))
            index += 1
        sizes = [winner.size for _, winner in untouched]
        count = drain_count(sizes, [self.values[winner.account_id] for _, winner in untouched], size)
        if sum(abs(s) for s in sizes) < size:
            return []
        self.next = untouched[count][0] if count < len(untouched) else len(self.ranking)
        return [winner.account_id for _, winner in untouched[:count]]
