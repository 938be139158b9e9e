"""The visibility queries the README documents are valid on a real server, and the
phase filters find the scene's workflows where they are."""

from __future__ import annotations

import re
from pathlib import Path

from tests.observe.scene import Scene, visible_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_queries() -> list[str]:
    text = README.read_text()
    section = text[text.index("## The Temporal Web UI") : text.index("## The command line")]
    [block] = re.findall(r"```\n(.*?)```", section, flags=re.S)
    return [line for line in block.splitlines() if line.strip()]


async def test_documented_queries_run_and_find_the_scene(scene: Scene):
    client = scene.bench.client
    await visible_rows(scene)  # visibility has caught up with the scene
    queries = _documented_queries()
    assert len(queries) >= 4
    for query in queries:  # an invalid query raises (INVALID_ARGUMENT)
        await client.count_workflows(query)
    mine = f' AND TaskQueue = "{scene.bench.task_queue}"'

    async def ids(query: str) -> set[str]:
        return {wf.id async for wf in client.list_workflows(query + mine)}

    assert scene.failing.id in await ids('TradingPhase = "error"')
    assert await ids('TradingPhase = "position"') == {scene.holder.id}
    assert scene.holder.id in await ids(
        'WorkflowType = "SymbolTrader" AND TradingExchange = "paper" AND TradingPhase != "idle"'
    )
