"""One symbol's exact backtest step: the live engines' pure rules at one price point.

Both paths (``reference`` at every point, ``fast`` only at candidates) call
``SymbolSim.on_point``; everything in it is ``Decimal`` and the pure core's own functions:
``EntryWatch``, ``check_guards``, ``size_buy``, ``update_exit_rules``/``evaluate_exit``,
``plan_sell``, ``realized_pnl`` (through their plain-value forms: ``EntryWatch.step``,
``failed_guard``, ``buy_amount``, ``trailing_step``, ``exit_reason``, ``plan_sell_amount``,
``pnl_parts``, which the model-returning decisions wrap). The fill model is docs/backtesting.md's:

* a candle is four price points, open -> low -> high -> close (open -> high -> low -> close
  when it closes below its open), at ``t``, ``t + step/3``, ``t + 2 step/3``, ``t + step - 1``
  ms, exactly the path the paper exchange's replay feed walks;
* at each point the mid is that price, the book is the paper exchange's (``spread_bps``
  around the mid, bid rounded down and ask up to the tick);
* a buy fills its whole amount at the ask, a sell at the bid, each paying the paper
  exchange's taker fee on its value, in quote (the order must fit the book's first level:
  ``level_liquidity_quote``, checked up front);
* what an exit cannot sell (worth less than the market's minimum at the bid) is carried as
  the symbol's inventory with its cost and entry fee, as the live engines do
  (``trader/core/inventory.py``): it joins the symbol's next position, and the trade that
  sells it realizes its cost. Nothing bought is ever dropped from the books.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.backtest import kernel
from trader.backtest.data import VOLUME_UNIT, Series
from trader.core.errors import ConfigError
from trader.core.params import TraderParams
from trader.core.pnl import pnl_parts
from trader.core.rules import (
    EntryRecheck,
    EntryWatch,
    EntryWatchState,
    ExitReason,
    SmaWindow,
    exit_reason,
    failed_guard,
    trailing_step,
)
from trader.core.selling import plan_sell_amount
from trader.core.sizing import buy_amount, round_down, round_up

ZERO = Decimal(0)
_FRESH = EntryWatchState()
"""A fresh entry watch's state (read, never changed: ``EntryWatch`` copies it)."""
_BPS = Decimal(10_000)
_DAY_MS = 86_400_000
POINTS = 4
"""Price points per candle."""


@dataclass(frozen=True)
class SimConfig:
    """The trading parameters and the paper exchange's book and fee for the backtest."""

    params: TraderParams
    spread_bps: Decimal = Decimal(10)
    fee_rate: Decimal | None = None
    """None: the market's taker fee (the paper exchange's default)."""
    level_liquidity_quote: Decimal = Decimal(50_000)

    def check(self, quotes: set[str]) -> None:
        for quote in sorted(quotes):
            if self.params.budget_for(quote) > self.level_liquidity_quote:
                raise ConfigError(
                    f"budget {self.params.budget_for(quote)} {quote} is more than the book's "
                    f"first level ({self.level_liquidity_quote}): the candle fill model "
                    "fills at the touch only"
                )


@dataclass(frozen=True)
class Trade:
    """One closed trade, every figure exact."""

    symbol: str
    quote: str
    entry_ms: int
    exit_ms: int
    entry_price: Decimal
    exit_price: Decimal
    amount: Decimal
    reason: ExitReason
    entry_fee: Decimal
    exit_fee: Decimal
    gross: Decimal
    net: Decimal
    pct: Decimal
    carried_amount: Decimal = ZERO
    """Bought but not sold (below the market's minimum): carried as inventory with
    ``carried_cost`` (its cost and entry fee), outside this trade's figures."""
    carried_cost: Decimal = ZERO
    inventory_in_amount: Decimal = ZERO
    """Inventory of earlier trades that joined this one (sold in ``amount``)."""
    inventory_in_cost: Decimal = ZERO
    """Its cost and entry fee (part of this trade's cost basis and fees)."""

    @property
    def fees(self) -> Decimal:
        """The fees in ``net``: the entry fee of what was sold, and the exit fee."""
        return self.entry_fee + self.exit_fee


@dataclass(frozen=True)
class Holding:
    """What a symbol still holds at the end of the data: its open position, or the
    inventory it carries. Not realized: outside every realized figure."""

    symbol: str
    quote: str
    amount: Decimal
    cost: Decimal
    """Quote cost basis, fees excluded."""
    entry_fee: Decimal
    opened_ms: int | None
    """The open position's entry; None: inventory only (no position open)."""
    entry_price: Decimal
    """The open position's buy price; the inventory's average cost per unit."""


@dataclass(frozen=True)
class Outcome:
    """A backtest's result: the closed trades per symbol, and what each symbol still holds
    at the end of the data (only symbols that hold something)."""

    trades: dict[str, list[Trade]]
    holdings: dict[str, Holding]


@dataclass
class Position:
    entry_ms: int
    entry_price: Decimal
    amount: Decimal
    entry_cost: Decimal
    entry_fee: Decimal
    peak: Decimal
    """The exit rules' state (``ExitRulesState``: its one stateful rule, the trailing
    stop's peak and trigger), as plain values: ``trailing_step`` / ``exit_reason``."""
    trigger: Decimal
    inventory_in_amount: Decimal = ZERO
    inventory_in_cost: Decimal = ZERO


@dataclass
class Inventory:
    """Coins an exit could not sell, with their cost basis and entry fee."""

    amount: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO


@dataclass
class Slots:
    """MAX_TRADES across symbols: one shared count."""

    max_trades: int
    in_use: int = 0


def outcome(sims: Iterable[SymbolSim]) -> Outcome:
    """The trades and holdings of ``sims``, by symbol in name order."""
    done = sorted(sims, key=lambda sim: sim.series.symbol)
    held = {sim.series.symbol: sim.holding() for sim in done}
    return Outcome(
        trades={sim.series.symbol: sim.trades for sim in done},
        holdings={s: h for s, h in held.items() if h is not None},
    )


def point(series: Series, i: int, k: int) -> tuple[int, int]:
    """(time ms, price ticks) of point ``k`` of candle ``i`` (``kernel.candle_point``,
    compiled)."""
    s = series
    return kernel.point(s.ts, s.open, s.high, s.low, s.close, s.step_ms, i, k)


@dataclass
class SymbolSim:
    series: Series
    cfg: SimConfig
    slots: Slots
    watch: EntryWatch = field(init=False)
    position: Position | None = None
    cooldown_until_ms: int = -(2**62)
    trades: list[Trade] = field(default_factory=list)
    inventory: Inventory = field(default_factory=Inventory)

    def __post_init__(self) -> None:
        self.watch = EntryWatch(_FRESH, self.cfg.params)

    # --- the book at a point ------------------------------------------------------------
    def book(self, mid: Decimal) -> tuple[Decimal, Decimal]:
        """(bid, ask) around ``mid``: the paper exchange's top of book."""
        m = self.series.market
        half = mid * self.cfg.spread_bps / _BPS / 2
        bid = max(round_down(mid - half, m.price_tick), m.price_tick)
        return bid, max(round_up(mid + half, m.price_tick), bid + m.price_tick)

    def _quote_volume(self, i: int) -> Decimal:
        """Quote volume of the candles started in the 24 h up to candle ``i`` (included)."""
        s = self.series
        lo = int(s.ts.searchsorted(int(s.ts[i]) - _DAY_MS, side="right"))
        vols, closes = s.volume[lo : i + 1].tolist(), s.close[lo : i + 1].tolist()
        units: int = sum(v * c for v, c in zip(vols, closes, strict=True))  # Python ints: exact
        return units * VOLUME_UNIT * s.market.price_tick

    def _sma(self, i: int) -> Decimal | None:
        """SMA guard: the last ``sma_guard_period`` closes of the candles before ``i``."""
        period = self.cfg.params.sma_guard_period
        if period <= 0:
            return None
        sma = SmaWindow(period)
        for c in self.series.close[max(i - period, 0) : i]:
            sma.add(self.series.price(int(c)))
        return sma.value()

    def _fee_rate(self) -> Decimal:
        return self.cfg.fee_rate if self.cfg.fee_rate is not None else self.series.market.taker_fee

    # --- one point ----------------------------------------------------------------------
    def on_point(self, i: int, k: int, *, seen_high: int = 0) -> None:
        """Evaluate point ``k`` of candle ``i`` with the exact rules.

        ``seen_high`` (the fast path): the highest price (ticks) of the points it skipped
        since the last exact one, on none of which a rule fired. A position's exit rules
        take one step with the highest of it and this price: equal to the steps one by
        one, as the peak is a maximum and the trailing trigger monotone in it.
        """
        t_ms, ticks = point(self.series, i, k)
        self.on_price(i, t_ms, ticks, seen_high=seen_high)

    def on_price(self, i: int, t_ms: int, ticks: int, *, seen_high: int = 0) -> None:
        """``on_point`` with the point's time and price known (the fast path's kernels
        return them)."""
        price = self.series.price(ticks)
        if self.position is not None:
            top = self.series.price(seen_high) if seen_high > ticks else price
            self._exit_step(i, t_ms, price, top)
        elif t_ms >= self.cooldown_until_ms:
            self._entry_step(i, t_ms, price)

    def _entry_step(self, i: int, t_ms: int, price: Decimal) -> None:
        p = self.cfg.params
        if not self.watch.step(t_ms, price):  # EntryWatch.see, without the signal
            return
        # The ticker the watch would see: the book at this price, the 24 h volume.
        bid, ask = self.book(price)
        volume = self._quote_volume(i) if p.min_quote_volume > 0 else ZERO
        blocked = failed_guard(
            p, bid=bid, ask=ask, last=price, quote_volume=volume, sma=self._sma(i)
        )  # check_guards's reason
        if blocked is not None:
            self.watch.recheck = EntryRecheck.GUARDS  # the drop stands until guards pass
            return
        if self.slots.in_use >= self.slots.max_trades:
            self.watch.recheck = EntryRecheck.SLOT
            return
        self.watch.recheck = EntryRecheck.NONE
        market = self.series.market
        bought = buy_amount(p.budget_for(market.quote), ask, market)  # size_buy's amount
        if not bought:  # rejected: a fresh drop is needed (the anchor restarts here)
            self.watch = EntryWatch(EntryWatchState(anchor=price), p)
            return
        self.slots.in_use += 1
        cost = bought * ask
        inv = self.inventory
        # The inventory joins the position (``join_inventory``): its cost is realized by
        # the trade that sells it; the exit levels stay those of this buy's price.
        entry_price = cost / bought
        self.position = Position(
            entry_ms=t_ms,
            entry_price=entry_price,
            amount=bought + inv.amount,
            entry_cost=cost + inv.cost,
            entry_fee=cost * self._fee_rate() + inv.fee,
            peak=entry_price,  # ExitRulesState.opened
            trigger=ZERO,
            inventory_in_amount=inv.amount,
            inventory_in_cost=inv.cost + inv.fee,
        )
        self.inventory = Inventory()

    def _exit_step(self, i: int, t_ms: int, price: Decimal, top: Decimal) -> None:
        pos, p = self.position, self.cfg.params
        assert pos is not None
        # update_exit_rules then evaluate_exit, on the plain values
        pos.peak, pos.trigger = trailing_step(pos.peak, pos.trigger, top, pos.entry_price, p)
        reason = exit_reason(
            price=price,
            entry_price=pos.entry_price,
            trailing_trigger=pos.trigger,
            entry_ts=pos.entry_ms / 1000,
            now=t_ms / 1000,
            params=p,
        )
        if reason is None:
            return
        bid, _ = self.book(price)
        market = self.series.market
        sold = plan_sell_amount(  # plan_sell's amount
            remaining=pos.amount,
            free=pos.amount,
            total=pos.amount,
            bid=bid,
            market=market,
            attempt=0,
            ladder=p.sell_ladder_bps,
            finish=False,
        )
        # Amounts are on the step and the book's first level holds them: the whole plan
        # fills at the bid (a limit step fills at the better book price). Nothing is sold
        # when the position at the bid is worth less than the market's minimum: the trade
        # closes with its coins carried.
        proceeds = sold * bid
        exit_fee = proceeds * self._fee_rate()
        pnl = pnl_parts(  # realized_pnl's figures
            bought_amount=pos.amount,
            entry_cost=pos.entry_cost,
            entry_fee=pos.entry_fee,
            sold_amount=sold,
            exit_proceeds=proceeds,
            exit_fee=exit_fee,
        )
        self.trades.append(
            Trade(
                symbol=market.symbol,
                quote=market.quote,
                entry_ms=pos.entry_ms,
                exit_ms=t_ms,
                entry_price=pos.entry_price,
                exit_price=bid,
                amount=sold,
                reason=reason,
                entry_fee=pnl.fees - exit_fee,
                exit_fee=exit_fee,
                gross=pnl.gross,
                net=pnl.net,
                pct=pnl.pct,
                carried_amount=pnl.carried_amount,
                carried_cost=pnl.carried_cost + pnl.carried_fee,
                inventory_in_amount=pos.inventory_in_amount,
                inventory_in_cost=pos.inventory_in_cost,
            )
        )
        self.inventory = Inventory(pnl.carried_amount, pnl.carried_cost, pnl.carried_fee)
        self.position = None
        self.slots.in_use -= 1
        self.cooldown_until_ms = t_ms + int(p.cooldown_minutes * 60_000)
        # The cooldown ends with a fresh anchor, or the same one (use_drop_anchor).
        if p.use_drop_anchor:
            kept = self.watch.state().model_copy(update={"recheck": EntryRecheck.NONE})
            self.watch = EntryWatch(kept, p)
        else:
            self.watch = EntryWatch(_FRESH, p)

    def holding(self) -> Holding | None:
        """What is still held (after the last point), None: nothing."""
        m, pos, inv = self.series.market, self.position, self.inventory
        held: tuple[Decimal, Decimal, Decimal, int | None, Decimal]
        if pos is not None:
            held = (pos.amount, pos.entry_cost, pos.entry_fee, pos.entry_ms, pos.entry_price)
        elif inv.amount > 0:
            held = (inv.amount, inv.cost, inv.fee, None, inv.cost / inv.amount)
        else:
            return None
        amount, cost, fee, since, price = held
        return Holding(m.symbol, m.quote, amount, cost, fee, opened_ms=since, entry_price=price)
