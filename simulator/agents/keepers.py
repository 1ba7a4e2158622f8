"""Keepers: find liquidatable accounts from a batched health scan, liquidate them, and send the
canonical ADL ranking when the waterfall needs ADL."""

from __future__ import annotations

from simulator.chain.deploy import AdlRanking
from simulator.exchange import Action, Deleverage, Exchange, HealthScan, Liquidate


def adl_counterparties(ranking: list[int], sizes: list[int], size: int, pro_rata: bool) -> list[int]:
    """What a keeper sends to `deleverage`: the whole canonical ranking under PRO_RATA, else its
    shortest prefix whose positions cover `size`."""
    if pro_rata:
        return list(ranking)
    chosen, covered = [], 0
    for counterparty, held in zip(ranking, sizes):
        if covered >= size:
            break
        chosen.append(counterparty)
        covered += abs(held)
    return chosen


class Keepers:
    """Every liquidatable position is liquidated once per step (a slice per call); positions the
    book and the insurance fund cannot absorb are deleveraged, one per market and side per step
    (a second ADL in the same block would see a stale ranking)."""

    def __init__(self, rankings: list[AdlRanking]):
        self.rankings = rankings

    def plan(self, exchange: Exchange, scan: HealthScan) -> list[Action]:
        candidates = scan.liquidatable()
        if not candidates:
            return []
        pairs = [(a, m) for a, markets in zip(candidates, exchange.open_markets(candidates)) for m in markets]
        actions: list[Action] = []
        adl_sides_used: set[tuple[int, int]] = set()
        for (account, market), needs_adl in zip(pairs, exchange.adl_required(pairs)):
            if not needs_adl:
                actions.append(Liquidate(account, market))
                continue
            [size] = exchange.positions([account], market)
            side = 1 if size > 0 else -1
            if size == 0 or (market, side) in adl_sides_used:
                continue
            counterparties = self._counterparties(exchange, market, side, abs(size))
            if counterparties:
                adl_sides_used.add((market, side))
                actions.append(Deleverage(account, market, tuple(counterparties)))
        return actions

    def _counterparties(self, exchange: Exchange, market: int, side: int, size: int) -> list[int]:
        """The canonical ranking's prefix that covers `size` (PNL_LEVERAGE), or all of it (PRO_RATA)."""
        ranking = exchange.adl_ranking(market, side)
        pro_rata = self.rankings[market] is AdlRanking.PRO_RATA
        sizes = [] if pro_rata or not ranking else exchange.positions(ranking, market)
        return adl_counterparties(ranking, sizes, size, pro_rata)
