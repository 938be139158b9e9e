"""The primary engine against the exchange (``FSM_MODE=fsm`` and ``both``): open orders it
does not know, balances against what it holds; and the parts a check could not read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType

from trader.core.divergence.views import (
    ZERO,
    Divergence,
    DivergenceKind,
    EngineView,
    ExchangeView,
    SideView,
    Tolerances,
    _close,
    _t,
)
from trader.core.phases import Phase

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
    d = _one(DivergenceKind.LEDGER_UNAVAILABLE, "ledger", f"{part} unreadable: {why}")
    return d.model_copy(update={"fingerprint": part})  # trades and dust: each its own


def _one(kind: DivergenceKind, sym: str, what: str, **values: str) -> Divergence:
    """A part of the check that is absent or unreadable: one per symbol and episode."""
    return Divergence(kind=kind, symbol=sym, detail=f"{sym}: {what}", values=values)


def _bucket(diff: Decimal) -> str:
    """The difference itself as a power of two: a shortfall that grows (one step, then
    half the position) is a new divergence; one that wobbles is the same, and so is a
    standing surplus while positions open and close (relative to what is held, it jumped
    buckets with every trade)."""
    return f"2^{int(diff.ln() / Decimal(2).ln() // 1)}"


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
                fingerprint=_bucket(abs(balance - held)),
            )
        )
    return out
