"""A base balance read until it covers what is expected (both engines read it so before a
shortfall counts)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal

from trader.core.market import Balance
from trader.exchange.port import Exchange

NO_BALANCE = Balance(free=Decimal(0), total=Decimal(0))
SETTLE_POLL_S = 0.5


async def settled_balance(
    exchange: Exchange,
    base: str,
    *,
    expect: Decimal | None,
    settle_seconds: float,
    symbol: str,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    on_wait: Callable[[], None] = lambda: None,
) -> Balance:
    """``base``'s balance, read again while below ``expect`` until ``settle_seconds`` pass:
    an exchange's balance can lag a fill by a moment, and a shortfall reported on a stale
    read would write off coins the account does hold."""
    deadline = time.monotonic() + settle_seconds
    while True:
        balance = (await exchange.fetch_balances()).get(base, NO_BALANCE)
        short = expect is not None and min(balance.free, balance.total) < expect
        if not short or time.monotonic() >= deadline:
            if short:
                logger.warning(
                    "%s: %s free %s / total %s, below the %s expected (after %.1fs)",
                    symbol,
                    base,
                    balance.free,
                    balance.total,
                    expect,
                    settle_seconds,
                )
            return balance
        on_wait()
        await asyncio.sleep(SETTLE_POLL_S)
