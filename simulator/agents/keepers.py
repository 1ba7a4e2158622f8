"""Keepers: find liquidatable accounts from a batched health scan, liquidate them, and send the
canonical ADL ranking when the waterfall needs ADL."""

from __future__ import annotations

from simulator.chain.deploy import AdlRanking
from simulator.exchange import Action, Deleverage, Exchange, HealthScan, Liquidate, position_sizes


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
    (a second ADL in the same block would see a stale ranking).

    The keepers budget the free insurance fund over the block: each `adlRequired` answer assumes
    the whole fund, so without a budget a step with many underwater accounts sends liquidations the
    fund cannot pay once the first ones have drawn it, and they revert `UseDeleverage`. An account
    whose deficit (beyond the fund's earmark for it) no longer fits waits a step: by then it is
    either paid for by penalties or goes to ADL."""

    def __init__(self, rankings: list[AdlRanking]):
        self.rankings = rankings
        self.held = 0  # liquidations held back by the fund budget, over the run

    def plan(self, exchange: Exchange, scan: HealthScan, insurance_fund: int | None = None) -> list[Action]:
        """This step's keeper actions from `scan`; `insurance_fund` is the free fund (WAD) to budget,
        None for no budget."""
        candidates = scan.liquidatable()
        if not candidates:
            return []
        pairs = [(a, m) for a, markets in zip(candidates, exchange.open_markets(candidates)) for m in markets]
        actions: list[Action] = []
        adl_sides_used: set[tuple[int, int]] = set()
        drawn = self._fund_draws(exchange, scan, candidates) if insurance_fund is not None else {}
        budget = insurance_fund or 0
        budgeted: set[int] = set()
        needs = exchange.adl_required(pairs)
        sizes = position_sizes(exchange, [pair for pair, need in zip(pairs, needs) if need])
        for (account, market), needs_adl in zip(pairs, needs):
            if not needs_adl:
                draw = drawn.get(account, 0)
                if draw and account not in budgeted:
                    if draw > budget:
                        self.held += 1
                        continue
                    budget -= draw
                    budgeted.add(account)
                actions.append(Liquidate(account, market))
                continue
            size = sizes[account, market]
            side = 1 if size > 0 else -1
            if size == 0 or (market, side) in adl_sides_used:
                continue
            counterparties = self._counterparties(exchange, market, side, abs(size))
            if counterparties:
                adl_sides_used.add((market, side))
                actions.append(Deleverage(account, market, tuple(counterparties)))
        return actions

    @staticmethod
    def _fund_draws(exchange: Exchange, scan: HealthScan, candidates: list[int]) -> dict[int, int]:
        """What each underwater candidate would draw from the free fund: its deficit at the oracle
        prices beyond the fund's earmark for it (book impact comes on top; the budget is a floor)."""
        value_of = dict(zip(scan.ids, scan.values))
        underwater = [a for a in candidates if value_of[a] < 0]
        if not underwater:
            return {}
        return {a: max(-int(value_of[a]) - reserved, 0)
                for a, reserved in zip(underwater, exchange.fund_reserves(underwater))}

    def _counterparties(self, exchange: Exchange, market: int, side: int, size: int) -> list[int]:
        """The canonical ranking's prefix that covers `size` (PNL_LEVERAGE), or all of it (PRO_RATA)."""
        ranking = exchange.adl_ranking(market, side)
        pro_rata = self.rankings[market] is AdlRanking.PRO_RATA
        sizes = [] if pro_rata or not ranking else exchange.positions(ranking, market)
        return adl_counterparties(ranking, sizes, size, pro_rata)
