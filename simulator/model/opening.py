"""The model's own fast path for the opening book's taker trades, beside the mirror
(perp_engine.py), not a mirror of any contract: the same state as `open_position` /
`open_isolated_position` leave, computed faster.

The opening (simulator/exchange.py `open_book`) sends tens of thousands of deposits and trades,
each trade opening a fresh position against the vault. Through the mirror each one is a transaction (a snapshot of the
engine's state), three full health computations (the trader's before and after, the vault's over
every market) and storage references. `taker_trade` applies the same trade in locals first:

- the market's funding accrual and the book's walk, as `_accrue_funding` and `_walk_book` would
  write them;
- the trader's fill (`_fill`: its funding and social-loss indices set to the market's, the
  position opened by `PositionMath.apply_fill`, the open interest), the minimum-notional check and
  the initial-margin check on its health after the fill;
- the vault's fill (its funding and social loss settled, the fill applied) and, where its exposure
  grows, the vault-capacity check on its health;
- the open-interest cap.

Only when every check passes is anything written. A trade outside what the fast path covers (a
position already open in the market, an unregistered account, an earmark, events being logged) or
one that any check would refuse goes through the mirror, which applies it or reverts with the
contract's error: the fast path never decides a refusal. tests/model/test_opening.py compares the
whole state and every outcome with the mirror's on opening books with refusals of every kind."""

from __future__ import annotations

from simulator.model import depth as DepthCurve
from simulator.model import fixed_point as fp
from simulator.model import funding as FundingMath
from simulator.model import liquidation as LiquidationMath
from simulator.model import margin as MarginMath
from simulator.model import position as PositionMath
from simulator.model.errors import ModelRevert
from simulator.model.perp_engine import ADDRESS_MASK, PerpEngine


class OpeningTrades:
    """Deposits and taker trades of the opening on `engine`, through the fast path where it
    applies."""

    def __init__(self, engine: PerpEngine):
        self.engine = engine
        self.fast = 0  # calls the fast path applied
        self.through_mirror = 0  # calls it handed to the mirror

    def deposit_for(self, account: int, amount: int, sender: int) -> None:
        """`engine.deposit_for(account, amount, sender)`: the same state, or the mirror's revert.
        The fast path (`_deposit`: the tokens pulled, the account registered if new, credited, at
        least `min_collateral` after) writes only when the credit leaves the account at the
        minimum or above."""
        if not self._deposit(account, amount):
            self.through_mirror += 1
            self.engine.deposit_for(account, amount, sender=sender)

    def _deposit(self, account: int, amount: int) -> bool:
        e = self.engine
        if e.logging or e._tx_depth or account == 0 or amount == 0:
            return False
        row = e._rows.get(account)
        try:
            credit = fp.to_int(amount * e.token_scale)
            collateral = (e._collateral[row] if row is not None else 0) + credit
            if collateral < fp.to_int(e.min_collateral):
                return False
        except ModelRevert:
            return False
        e.token_balance += amount  # _pullTokens
        if row is None or not e._registered[row]:  # _register
            row = e._writable_row(account)
            e._registered[row] = True
            e.account_ids.append(account)
            e._registered_rows.append(row)
        e._collateral[row] = collateral
        self.fast += 1
        return True

    def open_position(self, account: int, market_id: int, size_delta: int, price_limit: int) -> None:
        """`engine.open_position(account, ...)`: the same state, or the mirror's revert."""
        if not self._taker_trade(account, market_id, size_delta, price_limit):
            self.through_mirror += 1
            self.engine.open_position(account, market_id, size_delta, price_limit)

    def open_isolated_position(self, account: int, market_id: int, size_delta: int, price_limit: int) -> None:
        """`engine.open_isolated_position(account, ...)`: the same state, or the mirror's revert."""
        if not self._taker_trade(self.engine.isolated_account_id(account, market_id), market_id, size_delta,
                                 price_limit):
            self.through_mirror += 1
            self.engine.open_isolated_position(account, market_id, size_delta, price_limit)

    def _taker_trade(self, account_id: int, market_id: int, size_delta: int, price_limit: int) -> bool:
        """Applies the trade and returns True, or changes nothing and returns False (the mirror
        then takes it)."""
        e = self.engine
        if e.logging or e._tx_depth or not 0 <= market_id < len(e.markets) or size_delta == 0:
            return False
        vault = e.vault
        if vault == 0 or (account_id & ADDRESS_MASK) == vault:
            return False
        row, vault_row = e._rows.get(account_id), e._rows.get(vault)
        if (row is None or vault_row is None or not e._registered[row] or not e._registered[vault_row]
                or e._size[row, market_id] != 0 or e.fund_reserve_of(account_id) or e.fund_reserve_of(vault)):
            return False
        try:
            return self._apply(account_id, row, vault_row, market_id, size_delta, price_limit)
        except ModelRevert:  # a price refused, a book walked past its end: the mirror's to say
            return False

    def _apply(self, account_id: int, row: int, vault_row: int, market_id: int, size_delta: int,
               price_limit: int) -> bool:
        e = self.engine
        market = e.markets[market_id]
        params = market.params
        price = e._price_of(market_id)
        # _accrue_funding
        accrued = market.last_funding_time != e.timestamp
        index = e._current_funding_index(market_id, price) if accrued else market.funding_index
        # _walk_book
        consumed = market.book_consumed if market.book_block == e.block_number else 0
        fill_price, consumed_after = DepthCurve.fill(market_id, price, size_delta, consumed, params.depth2pct,
                                                     params.max_impact)
        if (fill_price > price_limit) if size_delta > 0 else (fill_price < price_limit):
            return False
        social_index = market.social_loss_index

        # The trader's fill (_fill_and_check): a fresh position, opened at the fill price.
        new_size, new_open_notional, _ = PositionMath.apply_fill(0, 0, size_delta, fill_price)
        minimum = params.min_position_notional
        if fp.w_mul_down(fp.abs(new_size), price) < minimum:
            return False
        value, _, im = self._health(row, market_id, (new_size, new_open_notional, index, social_index), price, index)
        value += e._collateral[row]
        if value < fp.to_int(im):
            return False

        # The vault's fill (_fill_vault): its funding and social loss settled, then the fill.
        vault_size = e._size[vault_row, market_id]
        vault_open_notional = e._open_notional[vault_row, market_id]
        funding_owed = FundingMath.owed(vault_size, index, e._funding_index[vault_row, market_id])
        social_owed = LiquidationMath.social_loss_owed(vault_size, social_index,
                                                       e._social_loss_index[vault_row, market_id])
        vault_collateral = e._collateral[vault_row] - funding_owed - fp.to_int(social_owed)
        vault_new_size, vault_new_open_notional, realized = PositionMath.apply_fill(
            vault_size, vault_open_notional, -size_delta, fill_price)
        vault_collateral += realized
        vault_position = (vault_new_size, vault_new_open_notional, index, social_index)
        if PerpEngine._increases(vault_size, vault_new_size):
            vault_value, _, vault_im = self._health(vault_row, market_id, vault_position, price, index)
            if vault_value + vault_collateral < fp.to_int(vault_im):
                return False

        # The open-interest cap (_update_open_interest, _check_open_interest_cap).
        long_oi, short_oi = market.long_open_interest, market.short_open_interest
        if new_size > 0:
            long_oi += new_size
        else:
            short_oi += -new_size
        cap = params.max_open_interest
        if cap != 0 and ((long_oi > cap and long_oi > market.long_open_interest)
                         or (short_oi > cap and short_oi > market.short_open_interest)):
            return False

        # Every check passed: the writes of the mirror's trade.
        if accrued:
            market.funding_index = index
            market.last_funding_time = e.timestamp
        market.book_block = e.block_number
        market.book_consumed = consumed_after
        e._size[row, market_id] = new_size
        e._open_notional[row, market_id] = new_open_notional
        e._funding_index[row, market_id] = index
        e._social_loss_index[row, market_id] = social_index
        market.long_open_interest, market.short_open_interest = long_oi, short_oi
        e._size[vault_row, market_id] = vault_new_size
        e._open_notional[vault_row, market_id] = vault_new_open_notional
        e._funding_index[vault_row, market_id] = index
        e._social_loss_index[vault_row, market_id] = social_index
        e._collateral[vault_row] = vault_collateral
        self.fast += 1
        return True

    def _term(self, market_id: int, position: tuple[int, int, int, int], price: int,
              index_now: int) -> tuple[int, int, int]:
        """One market's part of `_health`: (uPnL - funding owed - social loss owed, MM, IM)."""
        e = self.engine
        size, open_notional, funding_index, social_index = position
        value = (MarginMath.unrealized_pnl(size, open_notional, price)
                 - FundingMath.owed(size, index_now, funding_index)
                 - fp.to_int(LiquidationMath.social_loss_owed(size, e.markets[market_id].social_loss_index,
                                                              social_index)))
        notional = MarginMath.notional(size, price)
        mm = e._position_maintenance_margin(market_id, size, price)
        return value, mm, MarginMath.initial_margin(notional, e.markets[market_id].params.imr, mm)

    def _stored(self, row: int, market_id: int) -> tuple[int, int, int, int]:
        e = self.engine
        return (e._size[row, market_id], e._open_notional[row, market_id], e._funding_index[row, market_id],
                e._social_loss_index[row, market_id])

    def _health(self, row: int, market_id: int, position: tuple[int, int, int, int], price: int,
                index_now: int) -> tuple[int, int, int]:
        """`_health` of the account of `row` without its collateral, with `position` in
        `market_id` (at `price`, its funding index accrued to `index_now`) and its stored positions
        elsewhere: the same terms, summed in the same order."""
        e = self.engine
        value = mm = im = 0
        for m in range(len(e.markets)):
            if m == market_id:
                part = self._term(m, position, price, index_now) if position[0] != 0 else (0, 0, 0)
            elif e._size[row, m] != 0:
                price_m = e._price_of(m)
                part = self._term(m, self._stored(row, m), price_m, e._current_funding_index(m, price_m))
            else:
                continue
            value += part[0]
            mm += part[1]
            im += part[2]
        return value, mm, im
