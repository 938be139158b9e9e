"""Trading rules as pure functions returning decisions with an enumerated reason.

Entry: a drop trigger relative to an anchor (peak / fixed / rolling-window high).
Guards: max spread, min volume, price above SMA. Exits: stop-loss, take-profit, trailing
stop (activation + distance, never lowered) and max hold. Nothing here mutates its inputs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum, StrEnum

from pydantic import BaseModel, ConfigDict

from trader.core.market import Ticker
from trader.core.params import AnchorMode, TraderParams

_HUNDRED = Decimal(100)
_BPS = Decimal(10_000)
ZERO = Decimal(0)


class _Decision(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- entry -------------------------------------------------------------------------------
class EntryReason(StrEnum):
    DROP_TRIGGER = "drop_trigger"


class EntrySignal(_Decision):
    triggered: bool
    reason: EntryReason | None
    price: Decimal
    anchor: Decimal
    trigger_price: Decimal
    drop_pct: Decimal
    """How far the price is below the anchor, in percent (negative when above)."""


def drop_trigger_price(anchor: Decimal, drop_trigger_pct: Decimal) -> Decimal:
    return anchor * (1 - drop_trigger_pct / _HUNDRED)


def drop_fires(price: Decimal, anchor: Decimal, params: TraderParams) -> bool:
    """The drop trigger's test: ``evaluate_entry``'s ``triggered`` without the signal
    (the backtest's hot path)."""
    return anchor > 0 and price <= drop_trigger_price(anchor, params.drop_trigger_pct)


def evaluate_entry(price: Decimal, anchor: Decimal, params: TraderParams) -> EntrySignal:
    """Buy signal when the price is ``drop_trigger_pct`` or more below the anchor."""
    trigger = drop_trigger_price(anchor, params.drop_trigger_pct)
    drop = (1 - price / anchor) * _HUNDRED if anchor > 0 else ZERO
    fired = drop_fires(price, anchor, params)
    return EntrySignal(
        triggered=fired,
        reason=EntryReason.DROP_TRIGGER if fired else None,
        price=price,
        anchor=anchor,
        trigger_price=trigger,
        drop_pct=drop,
    )


def next_anchor(
    anchor: Decimal, price: Decimal, mode: AnchorMode, *, window_high: Decimal | None = None
) -> Decimal:
    """The anchor after seeing ``price`` (0 means unset)."""
    if mode is AnchorMode.FIXED:
        return anchor if anchor > 0 else price
    if mode is AnchorMode.WINDOW and window_high is not None:
        return window_high
    return max(anchor, price)


class RollingHigh:
    """Highest price of the last ``lookback_ms`` (monotonic deque: amortized O(1))."""

    def __init__(self, lookback_ms: int) -> None:
        self.lookback_ms = lookback_ms
        self._items: deque[tuple[int, Decimal]] = deque()

    def add(self, ts_ms: int, price: Decimal) -> None:
        while self._items and self._items[-1][1] <= price:
            self._items.pop()  # can never be the high again
        self._items.append((ts_ms, price))
        while self._items and self._items[0][0] < ts_ms - self.lookback_ms:
            self._items.popleft()

    def high(self) -> Decimal | None:
        return self._items[0][1] if self._items else None

    def items(self) -> list[tuple[int, Decimal]]:
        """The candidates (decreasing prices), enough to resume the window elsewhere."""
        return list(self._items)


class SmaWindow:
    """Simple moving average of the last ``period`` prices, O(1) per price."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._items: deque[Decimal] = deque()
        self._sum = ZERO

    def add(self, price: Decimal) -> None:
        self._items.append(price)
        self._sum += price
        if len(self._items) > self.period:
            self._sum -= self._items.popleft()

    def value(self) -> Decimal | None:
        if self.period <= 0 or len(self._items) < self.period:
            return None
        return self._sum / self.period


def sma_of(closes: Sequence[Decimal], period: int) -> Decimal | None:
    """SMA of the last ``period`` closes (the SMA guard's), None while fewer are known or
    the guard is off (``period`` 0)."""
    if period <= 0:
        return None
    sma = SmaWindow(period)
    for close in closes[-period:]:
        sma.add(close)
    return sma.value()


# --- the entry watch: its state, carried as it is everywhere ----------------------------
WINDOW_CARRY = 64
"""Most rolling-window candidates carried between watches (the newest ones)."""


class EntryRecheck(StrEnum):
    """What a drop blocked by a guard or a full portfolio still waits for."""

    NONE = ""
    GUARDS = "guards"
    """The drop fires again only when the guards pass on the same tick."""
    SLOT = "slot"
    """The drop fires again only when a trade slot is free."""


class EntryWatchState(BaseModel):
    """The entry rule's evolving state: in ``CoinState``, the watch activity's input,
    result and heartbeat, and the legacy engine, always as this one model."""

    anchor: Decimal = ZERO
    """The price the drop is measured from (0: unset, taken from the next price)."""
    anchor_ts: str | None = None
    """ts_ms of the ticker the anchor was last updated on (display)."""
    window: list[tuple[int, Decimal]] = []
    """Rolling-window candidates (ts_ms, price) for the WINDOW anchor mode."""
    recheck: EntryRecheck = EntryRecheck.NONE


class EntryWatch:
    """The drop trigger over a stream of prices, resumable from an ``EntryWatchState``."""

    def __init__(self, state: EntryWatchState, params: TraderParams) -> None:
        self.params = params
        self.anchor = state.anchor
        self.anchor_ts = state.anchor_ts
        self.recheck = state.recheck
        self._window = RollingHigh(params.drop_lookback_seconds * 1000)
        for ts, price in state.window:
            self._window.add(ts, price)

    def see(self, ts_ms: int, price: Decimal) -> EntrySignal:
        """Move the anchor with ``price`` and judge the drop; a drop that no longer holds
        ends a blocked episode (the next one is judged afresh)."""
        self.step(ts_ms, price)
        return evaluate_entry(price, self.anchor, self.params)

    def step(self, ts_ms: int, price: Decimal) -> bool:
        """``see`` without building the signal: whether the drop fires (the backtest's
        hot path)."""
        self._window.add(ts_ms, price)
        mode = self.params.anchor_mode
        high = self._window.high() if mode is AnchorMode.WINDOW else None
        self.anchor = next_anchor(self.anchor, price, mode, window_high=high)
        fired = drop_fires(price, self.anchor, self.params)
        if not fired:
            self.recheck = EntryRecheck.NONE
        return fired

    def state(self) -> EntryWatchState:
        return EntryWatchState(
            anchor=self.anchor,
            anchor_ts=self.anchor_ts,
            window=self._window.items()[-WINDOW_CARRY:],
            recheck=self.recheck,
        )


# --- guards ------------------------------------------------------------------------------
class GuardReason(str, Enum):
    SPREAD_TOO_WIDE = "spread_too_wide"
    VOLUME_TOO_LOW = "volume_too_low"
    BELOW_SMA = "below_sma"
    SMA_NOT_READY = "sma_not_ready"


class GuardDecision(_Decision):
    passed: bool
    reason: GuardReason | None
    detail: str


def _spread_bps(bid: Decimal, ask: Decimal) -> Decimal:
    mid = (bid + ask) / 2  # Ticker.mid
    return (ask - bid) / mid * _BPS if mid > 0 else Decimal("Infinity")


def failed_guard(
    params: TraderParams,
    *,
    bid: Decimal,
    ask: Decimal,
    last: Decimal,
    quote_volume: Decimal,
    sma: Decimal | None,
) -> GuardReason | None:
    """``check_guards``'s reason on a ticker's values, without the decision (None: every
    guard passes; the backtest's hot path, which builds no ticker)."""
    if _spread_bps(bid, ask) > params.max_spread_bps:
        return GuardReason.SPREAD_TOO_WIDE
    if quote_volume < params.min_quote_volume:
        return GuardReason.VOLUME_TOO_LOW
    if params.sma_guard_period > 0:
        if sma is None:
            return GuardReason.SMA_NOT_READY
        if last <= sma:
            return GuardReason.BELOW_SMA
    return None


def check_guards(ticker: Ticker, params: TraderParams, *, sma: Decimal | None) -> GuardDecision:
    """Market guards in order: spread, 24 h volume, price above SMA. First failure wins."""
    t = ticker
    reason = failed_guard(
        params, bid=t.bid, ask=t.ask, last=t.last, quote_volume=t.quote_volume, sma=sma
    )
    spread = _spread_bps(ticker.bid, ticker.ask)
    if reason is None:
        detail = f"guards passed (spread {spread:.1f} bps)"
    elif reason is GuardReason.SPREAD_TOO_WIDE:
        detail = f"spread {spread:.1f} bps > max {params.max_spread_bps} bps"
    elif reason is GuardReason.VOLUME_TOO_LOW:
        detail = f"24h volume {ticker.quote_volume} < min {params.min_quote_volume}"
    elif reason is GuardReason.SMA_NOT_READY:
        detail = f"SMA({params.sma_guard_period}) not available yet"
    else:
        detail = f"price {ticker.last} <= SMA {sma}"
    return GuardDecision(passed=reason is None, reason=reason, detail=detail)


# --- exits -------------------------------------------------------------------------------
class ExitReason(StrEnum):
    # StrEnum: a reason reads as its value in notes and messages (f"{reason}").
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"
    MAX_HOLD = "max_hold"
    FORCE_EXIT = "force_exit"
    SHUTDOWN = "shutdown"
    SHORTFALL = "shortfall"
    """The account holds less than the position: what is left is closed (written off)."""
    UNSELLABLE = "unsellable"
    """A buy filled only an amount the exchange would not take back: carried as inventory."""


class TrailingState(_Decision):
    peak: Decimal = ZERO
    trigger: Decimal = ZERO
    """0 while the trailing stop is not armed."""


def update_trailing(
    state: TrailingState, price: Decimal, entry_price: Decimal, params: TraderParams
) -> TrailingState:
    """Raise the peak; arm past the activation; the trigger only ever moves up."""
    peak, trigger = trailing_step(state.peak, state.trigger, price, entry_price, params)
    return TrailingState(peak=peak, trigger=trigger)


def trailing_step(
    peak: Decimal, trigger: Decimal, price: Decimal, entry_price: Decimal, params: TraderParams
) -> tuple[Decimal, Decimal]:
    """``update_trailing`` on plain values: (peak, trigger) after ``price`` (the
    backtest's hot path)."""
    peak = max(peak, price)
    if params.trailing_enabled and peak >= entry_price * (
        1 + params.trailing_activation_pct / _HUNDRED
    ):
        trigger = max(trigger, peak * (1 - params.trailing_distance_pct / _HUNDRED))
    return peak, trigger


class ExitRulesState(_Decision):
    """The evolving state of every stateful exit rule: in ``CoinState.trade``, the exit
    watch's input, result and heartbeat, as this one model. A new stateful rule adds its
    field here, its step to ``update_exit_rules`` and its check to ``evaluate_exit``."""

    trailing: TrailingState = TrailingState()

    @classmethod
    def opened(cls, entry_price: Decimal) -> ExitRulesState:
        """The state when a position opens at ``entry_price``."""
        return cls(trailing=TrailingState(peak=entry_price, trigger=ZERO))


def update_exit_rules(
    state: ExitRulesState, price: Decimal, entry_price: Decimal, params: TraderParams
) -> ExitRulesState:
    """Every stateful exit rule's state after seeing ``price``."""
    return ExitRulesState(trailing=update_trailing(state.trailing, price, entry_price, params))


def exit_levels(entry_price: Decimal, params: TraderParams) -> tuple[Decimal, Decimal]:
    """(take-profit price, stop-loss price); 0 where the level is disabled."""
    tp = entry_price * (1 + params.take_profit_pct / _HUNDRED) if params.take_profit_pct else ZERO
    sl = entry_price * (1 - params.stop_loss_pct / _HUNDRED) if params.stop_loss_pct else ZERO
    return tp, sl


class ExitDecision(_Decision):
    exit: bool
    reason: ExitReason | None
    price: Decimal
    detail: str


def exit_reason(
    *,
    price: Decimal,
    entry_price: Decimal,
    trailing_trigger: Decimal,
    entry_ts: float,
    now: float | None,
    params: TraderParams,
) -> ExitReason | None:
    """``evaluate_exit``'s reason without the decision (None: hold; the backtest's hot
    path): stop-loss, take-profit, trailing stop, max hold, in that priority. ``now``
    None: max hold is not judged here (the caller's timer owns it)."""
    tp, sl = exit_levels(entry_price, params)
    if sl > 0 and price <= sl:
        return ExitReason.STOP_LOSS
    if tp > 0 and price >= tp:
        return ExitReason.TAKE_PROFIT
    if trailing_trigger > 0 and price <= trailing_trigger:
        return ExitReason.TRAILING_STOP
    # Time is not money: float seconds are fine here.
    if (
        now is not None
        and params.max_hold_minutes > 0
        and now - entry_ts >= float(params.max_hold_minutes) * 60
    ):
        return ExitReason.MAX_HOLD
    return None


def evaluate_exit(
    *,
    price: Decimal,
    entry_price: Decimal,
    rules: ExitRulesState,
    entry_ts: float,
    now: float | None,
    params: TraderParams,
) -> ExitDecision:
    """Exit check in priority order: stop-loss, take-profit, trailing stop, max hold.

    ``now`` is the clock max hold is judged on; None leaves max hold out, for a check
    whose caller holds a timer for it (the SymbolTrader's exit watch: the workflow's timer
    is the one clock of that rule, docs/migration.md, "Found")."""
    trailing = rules.trailing
    reason = exit_reason(
        price=price,
        entry_price=entry_price,
        trailing_trigger=trailing.trigger,
        entry_ts=entry_ts,
        now=now,
        params=params,
    )
    if reason is None:
        return ExitDecision(exit=False, reason=None, price=price, detail=f"holding at {price}")
    tp, sl = exit_levels(entry_price, params)
    if reason is ExitReason.STOP_LOSS:
        detail = f"price {price} <= stop-loss {sl}"
    elif reason is ExitReason.TAKE_PROFIT:
        detail = f"price {price} >= take-profit {tp}"
    elif reason is ExitReason.TRAILING_STOP:
        detail = f"price {price} <= trailing stop {trailing.trigger} (peak {trailing.peak})"
    else:  # max hold: only judged with a clock
        assert now is not None
        detail = f"held {now - entry_ts:.0f}s >= max hold"
    return ExitDecision(exit=True, reason=reason, price=price, detail=detail)
