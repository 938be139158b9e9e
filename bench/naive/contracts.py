"""What crosses the naive workflow's boundary: one input and one result per activity.

The field names the load bench reads from histories (``fired``, ``ticker.ts_ms``, the
``Order``) are those of the real design's watch and place-order results, so one analysis
reads both."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import Order, OrderSide, Ticker
from trader.core.params import TraderParams
from trader.core.rules import EntryWatchState, ExitRulesState

ENTRY_TICK = "naive_entry_tick"
EXIT_TICK = "naive_exit_tick"
PLACE = "naive_place"
TICK_S = 1.0
"""The poll interval: one timer and one activity per symbol per second (timers fire at
1-second resolution on a stock server, docs: DESIGN section 13)."""


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Holding(_Msg):
    amount: Decimal
    entry_price: Decimal
    entry_ts: float
    rules: ExitRulesState = ExitRulesState()


class NaiveState(_Msg):
    entry: EntryWatchState = EntryWatchState()
    holding: Holding | None = None
    orders: int = 0
    """Orders placed so far: the client order id's sequence number."""


class NaiveInput(_Msg):
    symbol: str
    params: TraderParams
    tick_s: float = TICK_S
    state: NaiveState = NaiveState()


class EntryTickInput(_Msg):
    symbol: str
    params: TraderParams
    state: EntryWatchState


class EntryTickResult(_Msg):
    fired: bool
    ticker: Ticker
    state: EntryWatchState


class ExitTickInput(_Msg):
    symbol: str
    params: TraderParams
    holding: Holding


class ExitTickResult(_Msg):
    fired: bool
    ticker: Ticker
    rules: ExitRulesState


class PlaceInput(_Msg):
    symbol: str
    side: OrderSide
    client_order_id: str
    amount: Decimal | None = None
    """Base amount to sell; a buy spends ``budget`` instead."""
    budget: Decimal = Decimal(0)


PlaceResult = Order
