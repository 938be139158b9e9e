"""The hybrid validator's one activity: gather the FSM side, the legacy side and the
exchange, compare them (``trader.core.divergence``), and log and count what is new.

Read-only everywhere: visibility and the ``state`` query (no history event) for the FSM
side, ``read_symbols`` (never blocks the engine; this exchange's rows) for the legacy side,
the ledger for both engines' trades (``both`` mode only) and dust, one balance request and
the open orders of the symbols (running, on the watchlist, or in the legacy state) for the
exchange: one all-symbols listing on the exchange's reconciliation budget where it has one
(``Exchange.fetch_all_open_orders``), else one request per symbol. The exchange is read
first: an order the bot places meanwhile is in its state (its id is decided before it is
sent) by the time the engines are read.

Each part stands alone: a symbol whose state or open orders cannot be read, a legacy row
that does not parse, the ledger down, each is a divergence of its own and skips only what
depends on it; only the FSM listing, the balances and the all-symbols open-orders listing
fail the check (retried, then skipped: ``trader_validator_checks_total{outcome="failed"}``).
It heartbeats between parts, and while an exchange read waits (``beating``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c
from trader import search as sa
from trader.core import divergence as dv
from trader.core.errors import ExchangeError
from trader.core.market import Balance, Order
from trader.core.state import CoinState
from trader.exchange.port import Exchange
from trader.ledger import LedgerStore
from trader.legacy.store import engine_running, read_symbols
from trader.observe.metrics import TraderMetrics
from trader.observe.status_table import traders_query

log = logging.getLogger(__name__)

DIVERGENCE_LOG = "hybrid_divergences.jsonl"
"""The divergence log's name under the data dir (not in ``logs/``: that is the phase log's)."""
QUERY_CONCURRENCY = 20
QUERY_TIMEOUT = timedelta(seconds=10)
"""A ``state`` query not answered in this (no worker polls it): that symbol is unreadable."""
T = TypeVar("T")
BEAT_EVERY_S = 10.0
"""Heartbeat this often while an exchange read waits (its client's throttler, the
network): well within the check's heartbeat timeout, however slow the exchange's pacing."""


async def beating(what: str, read: Awaitable[T], *, every_s: float = BEAT_EVERY_S) -> T:
    """``read``, heartbeating while it waits: a read waiting its turn is progress, not a
    stuck attempt. Cancelled with the attempt (its heartbeat brings the cancellation), so a
    timed-out attempt's read gives up its place in the throttler's queue."""
    task = asyncio.ensure_future(read)
    try:
        while not (await asyncio.wait({task}, timeout=every_s))[0]:
            activity.heartbeat(f"waiting: {what}")
        return task.result()
    finally:
        task.cancel()  # nothing when it is done


def divergence_log_path(data_dir: Path) -> Path:
    return data_dir / DIVERGENCE_LOG


class ValidatorActivities:
    def __init__(
        self,
        client: Client,
        exchange: Exchange,
        ledger: LedgerStore,
        *,
        divergence_log: Path,
        metrics: TraderMetrics | None = None,
    ) -> None:
        self.client = client
        self.exchange = exchange
        self.ledger = ledger
        self.divergence_log = divergence_log
        self.metrics = metrics

    @activity.defn(name=c.VALIDATE)
    async def validate(self, inp: c.ValidateInput) -> c.ValidateResult:
        ok = False
        try:
            result = await self._validate(inp)
            ok = True
            return result
        finally:
            if self.metrics is not None:
                self.metrics.validator_check(ok=ok)

    async def _validate(self, inp: c.ValidateInput) -> c.ValidateResult:
        # Each part on its own: one that cannot be read is a divergence of its own (or a
        # skip) and the rest still runs; only the FSM listing and the balances fail a check.
        setup = inp.setup
        fsm_ids = await self._fsm_workflows(setup.task_queue, setup.exchange)
        activity.heartbeat("listed")
        symbols = set(fsm_ids) | set(setup.watchlist)
        balances = await beating("balances", self.exchange.fetch_balances(reconcile=True))
        activity.heartbeat("balances")
        listed = await beating("open orders", self.exchange.fetch_all_open_orders())
        activity.heartbeat("open orders")
        orders, unreadable = await self._open_orders(sorted(symbols), listed)
        legacy: dv.EngineView | None = None
        current: list[dv.Divergence] = []
        if setup.legacy_state_path is not None:  # read once per check, after the orders
            coins, bad = await asyncio.to_thread(
                read_symbols, Path(setup.legacy_state_path), setup.exchange
            )
            alive = await asyncio.to_thread(engine_running, Path(setup.legacy_state_path))
            legacy = dv.EngineView(
                symbols={s: dv.SideView.of(v) for s, v in coins.items()},
                unreadable=bad,
                down=alive is False,  # None: no lock file (no engine ever ran there)
            )
            current += dv.unreadable_legacy(legacy)
            more = sorted({*coins, *bad} - symbols)  # e.g. dropped, managed exit only
            symbols |= set(more)
            more_orders, more_unreadable = await self._open_orders(more, listed)
            orders += more_orders
            unreadable |= more_unreadable
        account = _account(balances, orders, unreadable)
        fsm = await self._fsm_states(fsm_ids)
        # A whole side missing is one divergence; its per-symbol and engine ones are held
        # meanwhile: counted (they neither clear nor restart), not reported.
        sides = dv.missing_sides(fsm, legacy)
        current += sides.divergences
        held: list[dv.Divergence] = []
        running = dv.compare_running(fsm, watchlist=setup.watchlist)
        (held if sides.fsm else current).extend(running)
        # Trades only against the legacy engine (unused in fsm mode).
        if legacy is not None:
            trades, failed = await self._part("ledger trades", self._trades(inp))
            if failed is not None:
                current.append(failed)
            else:
                fsm = fsm.model_copy(update={"trades": _trades(trades or [], "fsm")})
                legacy = legacy.model_copy(update={"trades": _trades(trades or [], "legacy")})
            engines = dv.compare_engines(fsm, legacy, setup.tolerances, watchlist=setup.watchlist)
            (held if sides.fsm or sides.legacy else current).extend(engines)
        primary = {"fsm": fsm, "legacy": legacy}.get(setup.primary)
        if primary is not None:
            dust, failed = await self._part("ledger dust", self._dust(setup.exchange))
            current += [failed] if failed is not None else []
            current += dv.compare_exchange(
                primary,
                account,
                engine=setup.primary,
                dust=dust,
                watchlist=setup.watchlist,
                exchange_id=self.exchange.exchange_client_id,
                tol=setup.tolerances,
            )
        tracker, reported = dv.track(
            inp.tracker,
            current,
            confirm_checks=setup.tolerances.confirm_checks,
            clear_checks=setup.tolerances.clear_checks,
            held=held,
        )
        if reported:
            await asyncio.to_thread(self._log, inp, reported)
        for d in reported:
            if self.metrics is not None:
                self.metrics.divergence(d.kind.value)
            log.warning("divergence %s: %s", d.kind.value, d.detail)
        return c.ValidateResult(
            tracker=tracker,
            reported=[c.ReportedDivergence.of(d) for d in reported],
            current=len(current),
            symbols=len(symbols),
        )

    async def _part(
        self, name: str, read: Awaitable[T]
    ) -> tuple[T, None] | tuple[None, dv.Divergence]:
        """A part the rest of the check does without: its failure is a divergence."""
        try:
            value = await read
        except Exception as exc:  # isolation: any failure of this part, logged and reported
            log.warning("validator: %s unavailable: %s", name, exc)
            return None, dv.ledger_unavailable(name, f"{type(exc).__name__}: {exc}")
        activity.heartbeat(name)
        return value, None

    async def _trades(self, inp: c.ValidateInput) -> list[c.TradeRecord]:
        rows = await self.ledger.trades(since=inp.since_ts)
        return [t for t in rows if t.exchange == inp.setup.exchange]

    async def _fsm_workflows(self, task_queue: str, exchange: str) -> dict[str, str]:
        """Symbol -> workflow id of every running SymbolTrader of the deployment."""
        out = {}
        query = f'{traders_query(task_queue)} AND {sa.TRADING_EXCHANGE.name} = "{exchange}"'
        async for wf in self.client.list_workflows(query):
            state_symbol = wf.typed_search_attributes.get(sa.TRADING_SYMBOL)
            if state_symbol:
                out[state_symbol] = wf.id
        return out

    async def _fsm_states(self, ids: dict[str, str]) -> dv.EngineView:
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)
        unanswered: list[str] = []

        async def one(symbol: str, wf_id: str) -> CoinState | str | None:
            async with gate:
                try:
                    state: CoinState = await self.client.get_workflow_handle(wf_id).query(
                        "state", result_type=CoinState, rpc_timeout=QUERY_TIMEOUT
                    )
                except RPCError as exc:
                    if exc.status is RPCStatusCode.NOT_FOUND:
                        return None  # gone meanwhile: not running any more
                    log.warning("state of %s unreadable: %s", wf_id, exc)
                    if _unanswered(exc):
                        unanswered.append(symbol)
                    return symbol
                except WorkflowQueryFailedError as exc:  # a worker answered, with an error
                    log.warning("state of %s unreadable: %s", wf_id, exc)
                    return symbol
                finally:
                    activity.heartbeat(wf_id)
                return state

        got = await asyncio.gather(*(one(s, i) for s, i in ids.items()))
        return dv.EngineView(
            symbols={s.symbol: dv.SideView.of(s) for s in got if isinstance(s, CoinState)},
            unreadable=sorted(s for s in got if isinstance(s, str)),
            unanswered=sorted(unanswered),
        )

    async def _open_orders(
        self, symbols: list[str], listed: list[Order] | None
    ) -> tuple[list[Order], dict[str, str]]:
        """The open orders of each symbol, and why for those the exchange refused: from
        the account's listing when the exchange gave one (orders on other symbols are not
        the bot's business), else one request per symbol."""
        if listed is not None:
            wanted = set(symbols)
            return [o for o in listed if o.symbol in wanted], {}
        orders: list[Order] = []
        unreadable = {}
        for symbol in symbols:
            try:
                read = self.exchange.fetch_open_orders(symbol, reconcile=True)
                orders += await beating(symbol, read)
            except ExchangeError as exc:  # e.g. delisted (BadSymbol): that symbol only
                unreadable[symbol] = f"{type(exc).__name__}: {exc}"
            activity.heartbeat(symbol)
        return orders, unreadable

    async def _dust(self, exchange: str) -> dict[str, Decimal]:
        """Coins recorded as dust (a buy that filled below the market minimum): on the
        account, held by no symbol."""
        out: dict[str, Decimal] = {}
        for d in await self.ledger.dust():
            if d.exchange == exchange:
                base = d.symbol.partition("/")[0]
                out[base] = out.get(base, Decimal(0)) + d.amount
        return out

    def _log(self, inp: c.ValidateInput, reported: Iterable[dv.Divergence]) -> None:
        self.divergence_log.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        with self.divergence_log.open("a", encoding="utf-8") as f:
            for d in reported:
                line = {
                    "ts": now,
                    "validator": inp.validator_id,
                    "check": inp.check,
                    "id": f"{inp.validator_id}:c{inp.check}:{d.key}",
                    "kind": d.kind.value,
                    "symbol": d.symbol,
                    "detail": d.detail,
                    "values": d.values,
                    "primary": inp.setup.primary,
                }
                f.write(json.dumps(line, sort_keys=True) + "\n")


def _unanswered(exc: RPCError) -> bool:
    """No worker answered the query: it timed out, or the server saw no poller on its
    queue. Any other error (the server refusing it, a bad request) is that symbol's."""
    if exc.status is RPCStatusCode.DEADLINE_EXCEEDED:
        return True
    return exc.status is RPCStatusCode.FAILED_PRECONDITION and "poller" in exc.message.lower()


def _account(
    balances: dict[str, Balance], orders: Iterable[Order], unreadable: dict[str, str]
) -> dv.ExchangeView:
    return dv.ExchangeView(
        balances={k: b.total for k, b in balances.items()},
        open_orders=[
            dv.ExchangeOrder(
                symbol=o.symbol,
                client_order_id=o.client_order_id,
                order_id=o.id,
                side=o.side,
                amount=o.amount - o.filled,
            )
            for o in orders
            if not o.is_final
        ],
        unreadable=unreadable,
    )


def _trades(rows: Iterable[c.TradeRecord], engine: str) -> list[dv.TradeView]:
    return [
        dv.TradeView(
            symbol=t.symbol,
            exit_reason=t.exit_reason,
            amount=t.bought_amount,
            entry_price=t.entry_price,
            net_pnl=t.net_pnl,
            closed_ts=t.closed_ts,
        )
        for t in rows
        if t.engine == engine
    ]
