"""FSM against legacy (``FSM_MODE=both``): per symbol phase class, position and order in
flight; per symbol the closed trades and realized PnL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trader.core.divergence.views import (
    ZERO,
    Divergence,
    DivergenceKind,
    EngineView,
    PhaseClass,
    SideView,
    Tolerances,
    TradeView,
    _close,
    _direction,
    _t,
)


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
