"""Ledger activities: record realized PnL, inventory movements (carried, shortfalls) and
dust, idempotently on their ids.

A write that fails (the database is down, locked, unreachable) counts in
``trader_ledger_errors_total`` and raises: the workflow's retry policy retries it until the
database is back (the row is in the activity's input, in history: never lost). The record
runs after the sell has filled (POST_TRADE), so a down database never holds up an exit.
"""

from __future__ import annotations

from collections.abc import Awaitable

from temporalio import activity

from trader import contracts as c
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics


class LedgerActivities:
    def __init__(self, store: LedgerStore, *, metrics: TraderMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics

    async def _write(self, call: str, write: Awaitable[bool]) -> bool:
        try:
            return await write
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.ledger_error(call, type(exc).__name__)
            raise

    @activity.defn(name=c.RECORD_TRADE)
    async def record_trade(self, trade: c.TradeRecord) -> c.RecordResult:
        inserted = await self._write("record_trade", self.store.record_trade(trade))
        if not inserted:
            activity.logger.info("trade %s already recorded", trade.trade_id)
        return c.RecordResult(inserted=inserted)

    @activity.defn(name=c.RECORD_INVENTORY)
    async def record_inventory(self, record: c.InventoryRecord) -> c.RecordResult:
        inserted = await self._write("record_inventory", self.store.record_inventory(record))
        if inserted and self.metrics is not None:  # once per movement, however many retries
            self.metrics.inventory_movement(record.symbol, record.kind, record.cost)
        return c.RecordResult(inserted=inserted)

    @activity.defn(name=c.RECORD_DUST)
    async def record_dust(self, dust: c.DustRecord) -> c.RecordResult:
        return c.RecordResult(
            inserted=await self._write("record_dust", self.store.record_dust(dust))
        )
