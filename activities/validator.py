"""The hybrid validator's one activity: gather the FSM side, the legacy side and the
exchange, compare them (``trader.core.divergence``), and log and count what is new.

Read-only everywhere: visibility and the ``state`` query (no history event) for the FSM
side, ``read_state`` (never blocks the engine) for the legacy side, the ledger for both
engines' trades, one balance request and the open orders of each symbol for the exchange.
The exchange is read first: an order the bot places meanwhile is in its state (its id is
decided before it is sent) by the time the engines are read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from trader import contracts as c
from trader import search as sa
from trader.core import divergence as dv
from trader.core.state import CoinState
from trader.exchange.port import Exchange
from trader.ledger import LedgerStore
from trader.legacy.store import read_state
from trader.observe.metrics import TraderMetrics
from trader.observe.status_table import traders_query

log = logging.getLogger(__name__)

DIVERGENCE_LOG = "hybrid_divergences.jsonl"
"""The divergence log's name under the data dir (not in ``logs/``: that is the phase log's)."""
QUERY_CONCURRENCY = 20


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
        setup = inp.setup
        legacy_path = Path(setup.legacy_state_path) if setup.legacy_state_path else None
        fsm_ids = await self._fsm_workflows(setup.task_queue, setup.exchange)
        symbols = set(fsm_ids)
        if legacy_path is not None:
            symbols |= (await asyncio.to_thread(read_state, legacy_path)).coins.keys()
        account = await self._exchange(sorted(symbols))
        trades = [
            t for t in await self.ledger.trades(since=inp.since_ts) if t.exchange == setup.exchange
        ]
        fsm = dv.EngineView(symbols=await self._fsm_states(fsm_ids), trades=_trades(trades, "fsm"))
        engines: dict[str, dv.EngineView] = {"fsm": fsm}
        current: list[dv.Divergence] = []
        if legacy_path is not None:
            coins = (await asyncio.to_thread(read_state, legacy_path)).coins
            engines["legacy"] = dv.EngineView(
                symbols={s: dv.SideView.of(v) for s, v in coins.items()},
                trades=_trades(trades, "legacy"),
            )
            current += dv.compare_engines(fsm, engines["legacy"], setup.tolerances)
        primary = engines.get(setup.primary)
        if primary is not None:
            current += dv.compare_exchange(
                primary, account, engine=setup.primary, dust=await self._dust(setup.exchange)
            )
        tracker, reported = dv.track(
            inp.tracker, current, confirm_checks=setup.tolerances.confirm_checks
        )
        if reported:
            await asyncio.to_thread(self._log, inp, reported)
        for d in reported:
            if self.metrics is not None:
                self.metrics.divergence(d.kind.value)
            log.warning("divergence %s: %s", d.kind.value, d.detail)
        return c.ValidateResult(
            tracker=tracker, reported=reported, current=len(current), symbols=len(symbols)
        )

    async def _fsm_workflows(self, task_queue: str, exchange: str) -> dict[str, str]:
        """Symbol -> workflow id of every running SymbolTrader of the deployment."""
        out = {}
        query = f'{traders_query(task_queue)} AND {sa.TRADING_EXCHANGE.name} = "{exchange}"'
        async for wf in self.client.list_workflows(query):
            state_symbol = wf.typed_search_attributes.get(sa.TRADING_SYMBOL)
            if state_symbol:
                out[state_symbol] = wf.id
        return out

    async def _fsm_states(self, ids: dict[str, str]) -> dict[str, dv.SideView]:
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def one(wf_id: str) -> CoinState | None:
            async with gate:
                try:
                    state: CoinState = await self.client.get_workflow_handle(wf_id).query(
                        "state", result_type=CoinState
                    )
                    return state
                except (RPCError, WorkflowQueryFailedError) as exc:
                    # Finished meanwhile: not running any more, so not compared.
                    log.info("state of %s unavailable: %s", wf_id, exc)
                    return None

        states = await asyncio.gather(*(one(i) for i in ids.values()))
        return {s.symbol: dv.SideView.of(s) for s in states if s is not None}

    async def _exchange(self, symbols: list[str]) -> dv.ExchangeView:
        balances = await self.exchange.fetch_balances()
        orders = []
        for symbol in symbols:  # one request each: the port has no all-symbols listing
            orders += await self.exchange.fetch_open_orders(symbol)
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
        )

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
