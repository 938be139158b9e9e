"""The validator's plain views of both engines and the exchange, what a divergence is,
and the tracker that reports each once per episode (``track``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict

from trader.core.market import OrderSide
from trader.core.phases import Phase
from trader.core.state import CoinState

ZERO = Decimal(0)


class PhaseClass(str, Enum):
    """What a phase means for the account: the engines agree on this, not on the phase (one
    may be in PLACE_BUY while the other already waits in WAIT_FILL)."""

    FLAT = "flat"
    BUYING = "buying"
    HOLDING = "holding"
    SELLING = "selling"


_CLASS = {
    Phase.WARMUP: PhaseClass.FLAT,
    Phase.IDLE: PhaseClass.FLAT,
    Phase.ENTRY_EVAL: PhaseClass.FLAT,  # deciding: nothing sent yet
    Phase.COOLDOWN: PhaseClass.FLAT,
    Phase.PLACE_BUY: PhaseClass.BUYING,
    Phase.WAIT_FILL: PhaseClass.BUYING,
    Phase.POSITION: PhaseClass.HOLDING,
    Phase.EXIT_EVAL: PhaseClass.HOLDING,
    Phase.PLACE_SELL: PhaseClass.SELLING,
    Phase.WAIT_SELL_FILL: PhaseClass.SELLING,
    Phase.POST_TRADE: PhaseClass.SELLING,  # sold, books closing
}
ORDER_PHASES = frozenset({Phase.PLACE_BUY, Phase.WAIT_FILL, Phase.PLACE_SELL, Phase.WAIT_SELL_FILL})


class DivergenceKind(str, Enum):
    """Every kind the validator reports (the metric's ``kind`` label)."""

    # FSM against legacy (FSM_MODE=both)
    SYMBOL_MISSING = "symbol_missing"
    PHASE_CLASS = "phase_class"
    POSITION = "position"
    OPEN_ORDER = "open_order"
    TRADES = "trades"
    REALIZED_PNL = "realized_pnl"
    # the primary engine against the exchange (FSM_MODE=fsm and both)
    UNKNOWN_ORDER = "unknown_order"
    BALANCE_SHORT = "balance_short"
    BALANCE_SURPLUS = "balance_surplus"
    POSITION_WITHOUT_BALANCE = "position_without_balance"
    # a part the check could not read (the rest of the check still runs)
    SYMBOL_NOT_RUNNING = "symbol_not_running"
    """A watchlist symbol with no running SymbolTrader (failed, terminated, completed)."""
    FSM_STATE_UNAVAILABLE = "fsm_state_unavailable"
    """A running SymbolTrader's ``state`` query failed: its orders and currency are skipped."""
    LEGACY_STATE_UNAVAILABLE = "legacy_state_unavailable"
    """A legacy row that does not parse: that symbol is skipped."""
    ORDERS_UNAVAILABLE = "orders_unavailable"
    """The exchange refused a symbol's open orders (e.g. delisted: BadSymbol)."""
    LEDGER_UNAVAILABLE = "ledger_unavailable"
    """The ledger could not be read: trades not compared, or dust unknown (no surplus)."""
    SIDE_MISSING = "side_missing"
    """A whole engine is not there (no worker answers the FSM's SymbolTraders; no legacy
    state): one divergence for the side, its per-symbol ones not reported meanwhile."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Tolerances(_View):
    """How far two values may differ and still agree (docs/migration.md, "Tolerances")."""

    amount_rel: Decimal = Decimal("0.001")
    """Amounts agree within 0.1 % of the larger one, or one amount step of the market."""
    price_rel: Decimal = Decimal("0.002")
    """Trade entry prices agree within 0.2 % (the shadow fills at the touch it saw)."""
    pnl_abs: Decimal = Decimal("0.01")
    """Realized PnL (quote) agrees within this, or ``pnl_rel`` of the larger value."""
    pnl_rel: Decimal = Decimal("0.01")
    confirm_checks: int = 2
    """Consecutive checks a divergence must be seen on before it is reported."""
    clear_checks: int = 3
    """Consecutive checks a reported divergence must be absent from before its episode
    ends (then it is reported again when it comes back): one that blinks out for a check
    or two (a balance read mid-fill, a listing a moment behind) is the same divergence."""


class SideView(_View):
    """One symbol as one engine holds it (from its ``CoinState``)."""

    symbol: str
    base: str
    quote: str = ""
    phase: Phase
    position: Decimal = ZERO
    """Base still held by the open trade (0 when flat)."""
    inventory: Decimal = ZERO
    order_side: OrderSide | None = None
    """The side of the order in flight (an order phase, or ERROR with an order)."""
    order_amount: Decimal = ZERO
    client_order_id: str | None = None
    amount_step: Decimal = ZERO

    came_from: Phase | None = None
    """ERROR only: the phase it was entered from (its class is that phase's)."""

    @classmethod
    def of(cls, s: CoinState) -> SideView:
        order = s.trade.order
        came_from = None
        if s.phase is Phase.ERROR and s.phase_history and s.phase_history[-1].dst is Phase.ERROR:
            came_from = s.phase_history[-1].src
        # ``trade.order`` stays after its fill: in flight only in (or in ERROR from) an
        # order phase, and not once it is all filled.
        order_phase = s.phase in ORDER_PHASES or (
            s.phase is Phase.ERROR and (came_from is None or came_from in ORDER_PHASES)
        )
        done = order.amount > 0 and order.filled_applied >= order.amount
        in_flight = order.client_order_id is not None and order_phase and not done
        return cls(
            symbol=s.symbol,
            came_from=came_from,
            base=s.market.base if s.market else s.symbol.partition("/")[0],
            quote=s.market.quote if s.market else s.symbol.partition("/")[2],
            phase=s.phase,
            position=s.remaining if s.holds_position else ZERO,
            inventory=s.inventory.amount,
            order_side=order.side if in_flight else None,
            order_amount=order.amount if in_flight else ZERO,
            client_order_id=order.client_order_id if in_flight else None,
            amount_step=s.market.amount_step if s.market else ZERO,
        )

    @property
    def phase_class(self) -> PhaseClass:
        if self.phase is Phase.ERROR:
            cls = _CLASS.get(self.came_from) if self.came_from else None
            if cls is None or (cls is PhaseClass.FLAT and self.position > 0):
                # ERROR never forgets a position
                return PhaseClass.HOLDING if self.position > 0 else PhaseClass.FLAT
            return cls
        return _CLASS[self.phase]


class TradeView(_View):
    """One closed trade in the ledger."""

    symbol: str
    exit_reason: str
    amount: Decimal
    entry_price: Decimal
    net_pnl: Decimal
    closed_ts: float


class ExchangeOrder(_View):
    symbol: str
    client_order_id: str
    order_id: str
    side: OrderSide
    amount: Decimal


class ExchangeView(_View):
    balances: dict[str, Decimal] = {}
    """Total (free + locked) per currency."""
    open_orders: list[ExchangeOrder] = []
    unreadable: dict[str, str] = {}
    """Symbol -> why its open orders could not be read (not in ``open_orders``)."""


class EngineView(_View):
    symbols: dict[str, SideView] = {}
    trades: list[TradeView] = []
    """Closed trades of this engine since the validator started, oldest first."""
    unreadable: list[str] = []
    """Symbols it runs whose state could not be read: not compared, not gone."""
    unanswered: list[str] = []
    """Those of ``unreadable`` whose state query no worker answered (it timed out, or the
    server saw no poller): the engine's worker may be gone, rather than the symbol broken."""
    down: bool = False
    """The legacy side only: its state file is there, but no engine holds it (stopped, or
    killed): its rows are the last ones written, not a running engine's."""


class Divergence(_View):
    kind: DivergenceKind
    symbol: str
    """The symbol, or the currency of a balance divergence."""
    detail: str
    values: dict[str, str]
    """Each side's value (``fsm``, ``legacy``, ``exchange``, ``bot``), as text."""
    fingerprint: str = ""
    """What makes it the same divergence: a changed fingerprint is a new one."""

    @property
    def key(self) -> str:
        return divergence_key(self.kind.value, self.symbol, self.fingerprint)


def divergence_key(kind: str, symbol: str, fingerprint: str) -> str:
    """What the tracker knows a divergence by (``Divergence.key``)."""
    return f"{kind}:{symbol}:{fingerprint}"


class DivergenceTracker(_View):
    """What the validator carries from check to check (and through continue-as-new)."""

    seen: dict[str, int] = {}
    """Key -> consecutive checks it was seen on (only keys seen on the last check)."""
    reported: list[str] = []
    """Keys reported and not cleared since."""
    absent: dict[str, int] = {}
    """Reported key -> consecutive checks it has been absent from (only while fewer than
    ``clear_checks``; not there: seen on the last check). Added after the first release:
    an older tracker (continue-as-new input, activity result in a history) has none."""


def _close(a: Decimal, b: Decimal, rel: Decimal, floor: Decimal = ZERO) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), floor)


def _t(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return "-" if value is None else str(value)


def _direction(a: Decimal, b: Decimal) -> str:
    return "above" if a > b else "below"


def track(
    tracker: DivergenceTracker,
    current: Sequence[Divergence],
    *,
    confirm_checks: int,
    clear_checks: int,
    held: Sequence[Divergence] = (),
) -> tuple[DivergenceTracker, list[Divergence]]:
    """The tracker after this check and the divergences to report now: one is reported
    after ``confirm_checks`` consecutive checks, and its episode ends (it is forgotten)
    only after ``clear_checks`` consecutive checks without it. ``held``: those of a side
    that is missing (``missing_sides``), seen but not reported on this check: their count
    goes on and they do not clear, so an outage neither hides one that stays (a side that
    blinks missing on every other check) nor ends a standing one's episode."""
    keys = {d.key: d for d in current}
    kept = {d.key for d in held} - keys.keys()
    seen = {k: tracker.seen.get(k, 0) + 1 for k in [*keys, *sorted(kept)]}
    absent = {
        k: tracker.absent.get(k, 0) + 1 for k in tracker.reported if k not in keys and k not in kept
    }
    absent = {k: n for k, n in absent.items() if n < clear_checks}
    reported = [k for k in tracker.reported if k in keys or k in kept or k in absent]
    new = [d for k, d in keys.items() if seen[k] >= confirm_checks and k not in reported]
    reported += [d.key for d in new]
    return DivergenceTracker(seen=seen, reported=reported, absent=absent), new
