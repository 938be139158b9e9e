"""The hybrid validator's comparison: pure, from plain views of both engines and the exchange.

``compare`` takes what the ``hybrid_validate`` activity gathered (each engine's symbols as
``SideView``, its ledger trades as ``TradeView``, the exchange's balances and open orders)
and returns every ``Divergence`` it sees now; ``track`` decides which of them to report:
a divergence is reported once it has been seen on ``confirm_checks`` consecutive checks
(two engines a moment apart are not a divergence), then not again while it stays the same;
one that clears and comes back is reported again. How to read each kind and the tolerances:
docs/migration.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from types import MappingProxyType

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
        return f"{self.kind.value}:{self.symbol}:{self.fingerprint}"


class DivergenceTracker(_View):
    """What the validator carries from check to check (and through continue-as-new)."""

    seen: dict[str, int] = {}
    """Key -> consecutive checks it was seen on (only keys seen on the last check)."""
    reported: list[str] = []
    """Keys reported and not cleared since."""


def _close(a: Decimal, b: Decimal, rel: Decimal, floor: Decimal = ZERO) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), floor)


def _t(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return "-" if value is None else str(value)


def _direction(a: Decimal, b: Decimal) -> str:
    return "above" if a > b else "below"


def _pair(
    kind: DivergenceKind, sym: str, detail: str, fsm: str, legacy: str, fp: str
) -> Divergence:
    """A divergence between the engines: each one's value."""
    return Divergence(
        kind=kind, symbol=sym, detail=detail, values={"fsm": fsm, "legacy": legacy}, fingerprint=fp
    )


def compare_engines(
    fsm: EngineView,
    legacy: EngineView,
    tol: Tolerances | None = None,
    *,
    watchlist: Iterable[str] = (),
) -> list[Divergence]:
    """Per symbol: phase class, position, order in flight; then trade lists and PnL. A
    symbol unreadable on either side, or on the ``watchlist`` and not run by the FSM, is
    left to ``compare_running`` / ``unreadable_legacy``."""
    tol = tol or Tolerances()
    out: list[Divergence] = []
    skipped = {*fsm.unreadable, *legacy.unreadable, *(set(watchlist) - fsm.symbols.keys())}
    for symbol in sorted((fsm.symbols.keys() | legacy.symbols.keys()) - skipped):
        a, b = fsm.symbols.get(symbol), legacy.symbols.get(symbol)
        if a is None or b is None:
            side = "fsm" if a is None else "legacy"
            out.append(
                Divergence(
                    kind=DivergenceKind.SYMBOL_MISSING,
                    symbol=symbol,
                    detail=f"{symbol} is not run by the {side} engine",
                    values={
                        "fsm": "absent" if a is None else "running",
                        "legacy": "absent" if b is None else "running",
                    },
                    fingerprint=side,
                )
            )
            continue
        out.extend(_compare_symbol(a, b, tol))
    out.extend(_compare_trades(fsm.trades, legacy.trades, tol))
    return out


def _compare_symbol(a: SideView, b: SideView, tol: Tolerances) -> list[Divergence]:
    sym, ca, cb = a.symbol, a.phase_class, b.phase_class
    if ca is not cb:
        detail = f"{sym}: fsm {ca.value} ({a.phase.value}), legacy {cb.value} ({b.phase.value})"
        fp = f"{ca.value}/{cb.value}"
        return [_pair(DivergenceKind.PHASE_CLASS, sym, detail, a.phase.value, b.phase.value, fp)]
    out = []
    step = max(a.amount_step, b.amount_step)
    # Only both holding: buying or selling, a resting order partly filled and a shadow
    # filled at once hold different amounts by design (their orders are compared).
    if ca is PhaseClass.HOLDING and not _close(a.position, b.position, tol.amount_rel, step):
        pa, pb = _t(a.position), _t(b.position)
        detail = f"{sym}: fsm holds {pa}, legacy {pb}"
        fp = _direction(a.position, b.position)
        out.append(_pair(DivergenceKind.POSITION, sym, detail, pa, pb, fp))
    if a.order_side != b.order_side or not _close(
        a.order_amount, b.order_amount, tol.amount_rel, step
    ):
        oa, ob = _order(a), _order(b)
        detail = f"{sym}: order in flight fsm {oa}, legacy {ob}"
        fp = f"{_t(a.order_side and a.order_side.value)}/{_t(b.order_side and b.order_side.value)}"
        out.append(_pair(DivergenceKind.OPEN_ORDER, sym, detail, oa, ob, fp))
    return out


def _order(v: SideView) -> str:
    return "none" if v.order_side is None else f"{v.order_side.value} {_t(v.order_amount)}"


def _by_symbol(trades: Iterable[TradeView]) -> dict[str, list[TradeView]]:
    out: dict[str, list[TradeView]] = {}
    for t in sorted(trades, key=lambda t: t.closed_ts):
        out.setdefault(t.symbol, []).append(t)
    return out


def _trade_text(t: TradeView | None) -> str:
    if t is None:
        return "none"
    return f"{t.exit_reason} {_t(t.amount)} @ {_t(t.entry_price)} net {_t(t.net_pnl)}"


def _compare_trades(
    fsm: Sequence[TradeView], legacy: Sequence[TradeView], tol: Tolerances
) -> list[Divergence]:
    out = []
    ta, tb = _by_symbol(fsm), _by_symbol(legacy)
    for sym in sorted(ta.keys() | tb.keys()):
        a, b = ta.get(sym, []), tb.get(sym, [])
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if (
                x is not None
                and y is not None
                and x.exit_reason == y.exit_reason
                and _close(x.amount, y.amount, tol.amount_rel)
                and _close(x.entry_price, y.entry_price, tol.price_rel)
            ):
                continue
            detail = f"{sym}: trade {i + 1} differs (fsm {len(a)} trades, legacy {len(b)})"
            fx, fy = _trade_text(x), _trade_text(y)
            out.append(_pair(DivergenceKind.TRADES, sym, detail, fx, fy, f"trade{i + 1}"))
            break  # the first difference; later trades follow from it
        pa = sum((t.net_pnl for t in a), ZERO)
        pb = sum((t.net_pnl for t in b), ZERO)
        if not _close(pa, pb, tol.pnl_rel, tol.pnl_abs):
            detail = f"{sym}: realized PnL fsm {_t(pa)}, legacy {_t(pb)}"
            fp = _direction(pa, pb)
            out.append(_pair(DivergenceKind.REALIZED_PNL, sym, detail, _t(pa), _t(pb), fp))
    return out


NO_DUST: Mapping[str, Decimal] = MappingProxyType({})


def compare_running(engine: EngineView, *, watchlist: Iterable[str]) -> list[Divergence]:
    """The FSM side against the watchlist: a symbol with no running workflow (an orphaned
    position or order is then found by ``compare_exchange``), one whose state could not be
    read (``engine.unreadable``)."""
    out = [
        _one(
            DivergenceKind.SYMBOL_NOT_RUNNING,
            sym,
            "no SymbolTrader runs this watchlist symbol",
            fsm="not running",
        )
        for sym in sorted(set(watchlist) - engine.symbols.keys() - set(engine.unreadable))
    ]
    out += [_unreadable(DivergenceKind.FSM_STATE_UNAVAILABLE, s, "fsm") for s in engine.unreadable]
    return out


def unreadable_legacy(legacy: EngineView) -> list[Divergence]:
    return [
        _unreadable(DivergenceKind.LEGACY_STATE_UNAVAILABLE, s, "legacy") for s in legacy.unreadable
    ]


def _unreadable(kind: DivergenceKind, sym: str, engine: str) -> Divergence:
    what = f"the {engine} engine's state could not be read; not compared this check"
    return _one(kind, sym, what, **{engine: "unreadable"})


def ledger_unavailable(part: str, why: str) -> Divergence:
    return _one(DivergenceKind.LEDGER_UNAVAILABLE, "ledger", f"{part} unreadable: {why}")


def _one(kind: DivergenceKind, sym: str, what: str, **values: str) -> Divergence:
    """A part of the check that is absent or unreadable: one per symbol and episode."""
    return Divergence(kind=kind, symbol=sym, detail=f"{sym}: {what}", values=values)


def _bucket(diff: Decimal, held: Decimal) -> str:
    """The difference relative to what is held, as a power of two: a shortfall that grows
    (one step, then half of it) is a new divergence; one that wobbles is the same."""
    if held <= 0:
        return "nothing-held"
    return f"2^{int((diff / held).ln() / Decimal(2).ln() // 1)}"


def compare_exchange(
    primary: EngineView,
    exchange: ExchangeView,
    *,
    engine: str,
    dust: Mapping[str, Decimal] | None = NO_DUST,
    watchlist: Iterable[str] = (),
    exchange_id: Callable[[str], str] | None = None,
    tol: Tolerances | None = None,
) -> list[Divergence]:
    """The primary engine (``engine`` names it) against the account: open orders it does
    not know, and per base currency (of its symbols and the ``watchlist``'s) the balance
    against what its symbols hold (position + inventory + ``dust`` recorded in the ledger;
    within ``tol.amount_rel`` or one amount step).

    A currency with an order in flight, in ERROR or of a symbol whose state is unreadable
    is skipped: its balance moves before the engine's state does. Only a shortfall is
    reported for one that is also the quote of a symbol run (every entry there spends it)
    and for all when ``dust`` is None (the ledger could not be read). ``exchange_id`` maps
    a client order id to the form the exchange shows (OKX: a digest)."""
    out = []
    known = set()
    for v in primary.symbols.values():
        if v.client_order_id:
            known |= {v.client_order_id, (exchange_id or str)(v.client_order_id)}
    blind = set(primary.unreadable)
    for o in exchange.open_orders:
        if o.client_order_id in known or o.symbol in blind:
            continue
        out.append(
            Divergence(
                kind=DivergenceKind.UNKNOWN_ORDER,
                symbol=o.symbol,
                detail=f"{o.symbol}: open {o.side.value} order {o.client_order_id or o.order_id} "
                f"for {_t(o.amount)} that the {engine} engine does not know",
                values={"exchange": f"{o.side.value} {_t(o.amount)}", engine: "unknown"},
                fingerprint=o.client_order_id or o.order_id,
            )
        )
    out += [
        _one(
            DivergenceKind.ORDERS_UNAVAILABLE,
            sym,
            f"the exchange did not list its open orders: {why}",
            exchange="unreadable",
        )
        for sym, why in sorted(exchange.unreadable.items())
    ]
    out += _balances(
        primary, exchange, engine=engine, dust=dust, watchlist=watchlist, tol=tol or Tolerances()
    )
    return out


def _balances(
    primary: EngineView,
    exchange: ExchangeView,
    *,
    engine: str,
    dust: Mapping[str, Decimal] | None,
    watchlist: Iterable[str],
    tol: Tolerances,
) -> list[Divergence]:
    out = []
    bases: dict[str, list[SideView]] = {s.partition("/")[0]: [] for s in watchlist}
    for v in primary.symbols.values():
        bases.setdefault(v.base, []).append(v)
    quotes = {v.quote for v in primary.symbols.values()}
    skipped = {c for s in primary.unreadable for c in s.split("/")}
    for base, views in sorted(bases.items()):
        if base in skipped:
            continue
        if any(v.order_side is not None or v.phase is Phase.ERROR for v in views):
            continue
        held = sum((v.position + v.inventory for v in views), ZERO) + (dust or {}).get(base, ZERO)
        balance = exchange.balances.get(base, ZERO)
        step = max((v.amount_step for v in views), default=ZERO)
        if _close(balance, held, tol.amount_rel, step):
            continue
        if balance > held and (base in quotes or dust is None):
            continue  # the surplus may be the quote's or dust's: only a shortfall is sure
        holding = ", ".join(sorted(v.symbol for v in views if v.position > 0)) or "none"
        if held > 0 and balance <= 0:
            kind, what = DivergenceKind.POSITION_WITHOUT_BALANCE, "none on the account"
        elif balance < held:
            kind, what = DivergenceKind.BALANCE_SHORT, "less on the account"
        else:
            kind, what = DivergenceKind.BALANCE_SURPLUS, "more on the account"
        out.append(
            Divergence(
                kind=kind,
                symbol=base,
                detail=f"{base}: the {engine} engine holds {_t(held)} (positions: {holding}), "
                f"{what}: {_t(balance)}",
                values={"exchange": _t(balance), engine: _t(held)},
                fingerprint=_bucket(abs(balance - held), held),
            )
        )
    return out


def track(
    tracker: DivergenceTracker, current: Sequence[Divergence], *, confirm_checks: int
) -> tuple[DivergenceTracker, list[Divergence]]:
    """The tracker after this check and the divergences to report now."""
    keys = {d.key: d for d in current}
    seen = {k: tracker.seen.get(k, 0) + 1 for k in keys}
    reported = [k for k in tracker.reported if k in keys]  # a cleared one is forgotten
    new = [d for k, d in keys.items() if seen[k] >= confirm_checks and k not in reported]
    reported += [d.key for d in new]
    return DivergenceTracker(seen=seen, reported=reported), new
