"""The order activity's consistency window: finding an order an earlier attempt may have
created, and confirming its absence before an attempt creates again.

An exchange's order query can miss a fresh order for seconds, and Binance accepts a final
order's client id again, so "the lookup found nothing" is no proof after a create whose
answer was lost. A retry therefore looks, for the length of the window
(``trader/core/consistency.py`` says from when), at every source the port offers: the order
query by client id, the symbol's open orders and its recent orders and trades. It returns
the order the moment one of them shows it, and reports "absent" only when, after the window,
all of them answer without it. Every outcome is logged.

An attempt that learned the order's exchange id (the create answered, reading its fills
failed) records it in its heartbeat details (``Progress``), and the next attempt only reads
that order. The sdk-core bundled with temporalio 1.35 sends an attempt's latest heartbeat
details with its failure (``RespondActivityTaskFailed.last_heartbeat_details``, throttling
notwithstanding), but a crashed or timed-out attempt leaves only what a heartbeat RPC
delivered: the details speed the retry up, the window is what makes it correct.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio import activity

from trader import contracts as c
from trader.core.consistency import AttemptTimes, Seen
from trader.core.errors import (
    OrderAcceptedUnread,
    OrderNotFound,
    OrderStatusUnknown,
    RetryableExchangeError,
)
from trader.core.market import Order
from trader.exchange.order_lists import find_listed
from trader.exchange.port import Exchange


class Progress(BaseModel):
    """What an attempt records in its heartbeat details for the attempts after it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: str | None = None
    """The exchange accepted the create under this id: every retry reads it, none creates."""

    @classmethod
    def of(cls, details: Sequence[Any]) -> Progress:
        """From ``activity.info().heartbeat_details`` (a dict once through the converter);
        anything unreadable counts as nothing learned, which only costs the window."""
        if not details:
            return cls()
        try:
            return cls.model_validate(details[0])
        except ValidationError:
            activity.logger.warning("unreadable heartbeat details %r ignored", details[0])
            return cls()

    def record(self) -> None:
        activity.heartbeat(self.model_dump(mode="json"))


class OrderWindow:
    """One attempt's looks at the exchange for the order ``inp`` names."""

    def __init__(
        self, exchange: Exchange, inp: c.PlaceOrderInput, times: AttemptTimes, *, poll_s: float
    ) -> None:
        self.exchange, self.inp, self.times, self.poll_s = exchange, inp, times, poll_s

    def _log(self, msg: str, *args: object, warn: bool = False) -> None:
        log = activity.logger.warning if warn else activity.logger.info
        log("%s %s: " + msg, self.inp.client_order_id, self.inp.symbol, *args)

    def _since_start(self) -> float:
        return time.monotonic() - self.times.window_start

    async def _pause(self, until: float) -> bool:
        """Sleep one poll interval (not past ``until``); False when ``until`` has come."""
        left = until - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(self.poll_s, left))
        return True

    # --- the sources ---------------------------------------------------------------------
    async def _lookup(self) -> Order | None:
        try:
            return await self.exchange.fetch_order(self.inp.symbol, self.inp.client_order_id)
        except OrderNotFound:
            return None

    async def _lists(self, *, recent: bool = True) -> tuple[Seen, Order | None, str]:
        i = self.inp
        return await find_listed(
            self.exchange,
            i.symbol,
            i.client_order_id,
            sides=(i.side,),
            since_ms=self.times.since_ms,
            recent=recent,
        )

    async def _look(self, *, lists: bool, recent: bool = True) -> tuple[Order | None, str]:
        """One look (lookup, then the lists if asked); a source that fails transiently is
        logged and counts as no answer."""
        try:
            if (order := await self._lookup()) is not None:
                return order, "lookup"
            if lists:
                seen, order, source = await self._lists(recent=recent)
                if order is not None:
                    return order, source
        except RetryableExchangeError as exc:
            self._log("a look at the exchange failed (no answer): %s", exc)
        return None, ""

    # --- what the attempt asks -----------------------------------------------------------
    async def confirm_absent(self) -> Order | None:
        """Our order if an earlier attempt created it; None once every source has answered
        without it after the window. Raises ``OrderStatusUnknown`` (retryable) when that
        cannot be known before this attempt's deadline."""
        t = self.times
        order, source = await self._look(lists=True)
        while order is None and await self._pause(min(t.window_end, t.deadline)):
            order, source = await self._look(lists=False)  # the cheap source, often
        if order is not None:
            self._log("found by %s %.1f s after the window opened", source, self._since_start())
            return order
        if time.monotonic() < t.window_end:
            self._log(
                "window still open at the attempt's deadline (%.1f s of %.1f s): not created",
                self._since_start(),
                t.window_end - t.window_start,
                warn=True,
            )
            raise OrderStatusUnknown(
                f"order {self.inp.client_order_id}: absence not confirmed"
                " before the attempt's deadline; not created"
            )
        # Past the window: now every source must answer, and answer "not there".
        if (order := await self._lookup()) is not None:
            self._log("found by lookup %.1f s after the window opened", self._since_start())
            return order
        seen, order, source = await self._lists()
        if order is not None:
            self._log("found by %s %.1f s after the window opened", source, self._since_start())
            return order
        if seen is Seen.UNATTRIBUTED:
            self._log("a trade whose order cannot be told yet may be ours: not created", warn=True)
            raise OrderStatusUnknown(
                f"order {self.inp.client_order_id}: an unattributed trade on its side; not created"
            )
        self._log(
            "absence confirmed after %.1f s (window %.1f s): creating",
            self._since_start(),
            t.window_end - t.window_start,
        )
        return None

    async def read_created(self, order_id: str) -> Order:
        """The order an earlier attempt created as ``order_id``, read by that id, once the
        exchange shows it (and its fills). Never creates: until this attempt's deadline a
        miss or a transient failure only means asking again."""
        while True:
            try:
                order = await self.exchange.fetch_order(
                    self.inp.symbol, self.inp.client_order_id, order_id=order_id
                )
                self._log("created earlier as %s; read by its id", order_id)
                return order
            except (OrderNotFound, RetryableExchangeError) as exc:
                last = exc
                if not await self._pause(self.times.deadline):
                    break
        self._log("created earlier as %s, not readable yet: %s", order_id, last, warn=True)
        raise OrderAcceptedUnread(
            f"order {self.inp.client_order_id} was created as "
            f"{order_id} but is not readable yet: {last}",
            order_id=order_id,
        )

    async def find_existing(self) -> Order:
        """The exchange refused our id as a duplicate, so an order with it exists: find it
        (the lookup may lag). Never creates."""
        while True:  # a duplicate is an open order (Binance): the open orders show it
            order, source = await self._look(lists=True, recent=False)
            if order is not None:
                self._log("duplicate: found by %s", source)
                return order
            if not await self._pause(self.times.deadline):
                break
        self._log("duplicate, but not visible yet", warn=True)
        raise OrderStatusUnknown(
            f"order {self.inp.client_order_id} exists (duplicate) but is not visible yet"
        )
