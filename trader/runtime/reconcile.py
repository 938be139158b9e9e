"""Asking the symbols that hold something to check the account (a worker start, or
``starter.py reconcile``): one visibility list, one signal per holding symbol."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError

from trader import contracts as c
from trader.core.phases import Phase
from trader.observe.status_table import status_rows, traders_query

#: Phases in which a symbol holds coins or has an order in flight. ERROR reconciles by
#: itself; IDLE and COOLDOWN count only with inventory (read from the status memo).
HOLDING_OR_IN_FLIGHT = frozenset(
    p.value
    for p in (
        Phase.PLACE_BUY,
        Phase.WAIT_FILL,
        Phase.POSITION,
        Phase.EXIT_EVAL,
        Phase.PLACE_SELL,
        Phase.WAIT_SELL_FILL,
        Phase.POST_TRADE,
    )
)


async def request_reconciles(client: Client, task_queue: str, *, reason: str) -> list[str]:
    """Signal ``reconcile`` to every running symbol of ``task_queue`` that holds something;
    returns their workflow ids. Each checks at its next quiet phase (POSITION, or IDLE /
    COOLDOWN for inventory), so in-flight orders are never disturbed."""
    asked = []
    # Phase and memo only: no describe() per held symbol at every worker start.
    for row in await status_rows(client, traders_query(task_queue), live=False):
        if row.phase not in HOLDING_OR_IN_FLIGHT and not (row.memo and row.memo.inventory > 0):
            continue
        try:
            await client.get_workflow_handle(row.workflow_id).signal(
                "reconcile", c.ReconcileRequest(reason=reason)
            )
        except RPCError:  # finished meanwhile: nothing to check
            continue
        asked.append(row.workflow_id)
    return asked
