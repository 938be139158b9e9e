"""The status table's "waiting" note: a symbol whose watch judges nothing because its
price is too old (``MAX_PRICE_AGE_SECONDS``) says so.

The watch puts ``{"price_wait": PriceWait}`` into its heartbeat details while it waits
(``activities/market.py``); the table reads them from the workflow's pending activity with
one ``describe`` per shown row in a watching phase: POSITION always (at most MAX_TRADES
rows), IDLE only when idle rows are shown. ``describe`` is answered by the server and wakes
no worker. The note goes once the watch heartbeats a fresh tick again (the SDK sends a
heartbeat at most every 0.8 x its timeout: within a few seconds).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from temporalio.client import Client

from trader.contracts import PRICE_WAIT_KEY, PriceWait
from trader.core.phases import Phase
from trader.observe.status_table import StatusRow


def price_wait_of(details: list[Any]) -> PriceWait | None:
    """The wait a watch's heartbeat details carry, if any."""
    for item in details:
        if isinstance(item, dict) and PRICE_WAIT_KEY in item:
            return PriceWait.model_validate(item[PRICE_WAIT_KEY])
    return None


async def _waiting(client: Client, workflow_id: str) -> str | None:
    desc = await client.get_workflow_handle(workflow_id).describe()
    for pending in desc.raw_description.pending_activities:
        details = await client.data_converter.decode(pending.heartbeat_details.payloads)
        if (wait := price_wait_of(details)) is not None:
            return wait.note()
    return None


async def with_price_waits(
    client: Client, rows: list[StatusRow], *, show_idle: bool = False
) -> list[StatusRow]:
    """The rows, each watching one that waits for a fresh price with ``waiting`` set."""
    watching = {Phase.POSITION.value} | ({Phase.IDLE.value} if show_idle else set())
    targets = [r for r in rows if r.phase in watching]
    notes = await asyncio.gather(
        *(_waiting(client, r.workflow_id) for r in targets), return_exceptions=True
    )
    # A row whose describe failed (the run just ended) is shown as it is.
    waits = {r.workflow_id: n for r, n in zip(targets, notes, strict=True) if isinstance(n, str)}
    return [dataclasses.replace(r, waiting=waits.get(r.workflow_id)) for r in rows]
