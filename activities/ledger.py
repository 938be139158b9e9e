"""Ledger activities: record realized PnL, inventory movements (carried, shortfalls) and
dust, idempotently on their ids."""

from __future__ import annotations

import asyncio

from temporalio import activity

from trader import contracts as c
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics


class LedgerActivities:
    def __init__(self, store: LedgerStore, *, metrics: TraderMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics

    @activity.defn(name=c.RECORD_TRADE)
    async def record_trade(self, trade: c.TradeRecord) -> c.RecordResult:
        inserted = await asyncio.to_thread(self.store.record_trade, trade)
        if not inserted:
            activity.logger.info("trade %s already recorded", trade.trade_id)
        return c.RecordResult(inserted=inserted)

    @activity.defn(name=c.RECORD_INVENTORY)
    async def record_inventory(self, record: c.InventoryRecord) -> c.RecordResult:
        inserted = await asyncio.to_thread(self.store.record_inventory, record)
        if inserted and self.metrics is not None:  # once per movement, however many retries
            self.metrics.inventory_movement(record.symbol, record.kind, record.cost)
        return c.RecordResult(inserted=inserted)

    @activity.defn(name=c.RECORD_DUST)
    async def record_dust(self, dust: c.DustRecord) -> c.RecordResult:
        return c.RecordResult(inserted=await asyncio.to_thread(self.store.record_dust, dust))
