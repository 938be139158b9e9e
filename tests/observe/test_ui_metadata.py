"""What the Web UI shows, read through the same APIs the UI uses: the workflow's current
details (the built-in metadata query) and the activities' summaries (user metadata in the
history), for real workflows."""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import cast

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.observe.scene import Scene
from tests.workflows.harness import TraderHandle
from trader import contracts as c


async def _details(scene: Scene, handle: TraderHandle) -> str:
    # A built-in query, by name: the SDK types what it returns as Any.
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return cast(WorkflowMetadata, meta).current_details


async def _summaries(scene: Scene, handle: TraderHandle) -> list[tuple[str, object]]:
    """(summary, decoded input) of every scheduled activity, in order."""
    conv = scene.bench.client.data_converter
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        [summary] = await conv.decode([event.user_metadata.summary], [str])
        attrs = event.activity_task_scheduled_event_attributes
        arg = None
        if attrs.activity_type.name == c.PLACE_ORDER:
            [arg] = await conv.decode(attrs.input.payloads, [c.PlaceOrderInput])
        found.append((summary, arg))
    return found


async def test_current_details_show_position_pnl_and_last_reason(scene):
    held = await scene.bench.state(scene.holder)
    details = await _details(scene, scene.holder)
    pnl = (held.current_price / held.trade.entry_price - 1) * 100
    assert "phase `position`" in details
    assert f"unrealized {pnl:+.2f} %" in details
    last = held.phase_history[-1]
    assert (
        f"last transition: {last.src.value} → position ({last.trigger.value}): "
        f"{last.note}" in details
    )

    failed = await scene.bench.state(scene.failing)
    details = await _details(scene, scene.failing)
    assert "phase `error`" in details and f"last error: {failed.last_error}" in details


async def test_activity_summaries_name_amount_reference_price_and_mode(scene):
    held = await scene.bench.state(scene.holder)
    summaries = await _summaries(scene, scene.holder)
    [(buy, order)] = [(s, a) for s, a in summaries if s.startswith("place_buy")]
    match = re.fullmatch(r"place_buy BTC/USDT (\S+) @ ~(\S+) IOC", buy)
    assert match, buy
    assert isinstance(order, c.PlaceOrderInput) and D(match[1]) == order.amount
    # The reference price is the ask the decision saw: the fill is within the limit offset.
    assert abs(D(match[2]) - held.trade.entry_price) / held.trade.entry_price < D("0.002")
    watches = [s for s, _ in summaries if s.startswith("watch_exit")]
    assert watches and f"from {held.trade.entry_price.normalize():f}" in watches[-1]

    sells = [s for s, _ in await _summaries(scene, scene.failing) if s.startswith("place_sell")]
    # A sell's reference is the bid it is priced from (and its minimum checked at): the
    # paper book's bid at mid 2100 with a 10 bps spread.
    bid, _ = scene.bench.exchange.top_of_book("ETH/USDT")
    assert bid == D("2098.95")
    assert sells and re.fullmatch(
        rf"place_sell ETH/USDT \S+ @ ~{bid} IOC -0bps \(\w+\)", sells[0]
    ), sells
