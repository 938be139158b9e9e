"""Ledger activities: record realized PnL and dust, idempotently on their ids."""

from __future__ import annotations

import asyncio

from temporalio import activity

from trader import contracts as c
from trader.ledger import LedgerStore


class LedgerActivities:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    @activity.defn(name=c.RECORD_TRADE)
    async def record_trade(self, trade: c.TradeRecord) -> c.RecordResult:
        inserted = await asyncio.to_thread(self.store.record_trade, trade)
        if not inserted:
            activity.logger.info("trade %s already recorded", trade.trade_id)
        return c.RecordResult(inserted=inserted)

    @activity.defn(name=c.RECORD_DUST)
    async def record_dust(self, dust: c.DustRecord) -> c.RecordResult:
        return c.RecordResult(inserted=await asyncio.to_thread(self.store.record_dust, dust))
