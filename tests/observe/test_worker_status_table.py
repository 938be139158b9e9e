"""The worker's live status table (ENABLE_RICH_TABLE) failing is logged when it fails, not
only when the worker stops hours later (the operator would see a frozen table and no
reason); and it is logged once."""

from __future__ import annotations

import asyncio
import logging

from trader.config import Settings
from trader.runtime.worker import _start_status_table, _stop_status_table


class _BrokenVisibility:
    def list_workflows(self, query: str):  # noqa: ANN201
        raise ValueError("memo of an unknown shape")


async def test_a_failed_table_is_logged_at_once_and_once(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, enable_rich_table=True)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="trader.runtime.worker"):
        task = _start_status_table(settings, _BrokenVisibility(), stop)  # type: ignore[arg-type]  # not a Client: list_workflows only
        await asyncio.wait({task}, timeout=5)
        assert task.done()
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
        failed = [r for r in caplog.records if "status table failed" in r.getMessage()]
        assert len(failed) == 1 and "memo of an unknown shape" in caplog.text
        stop.set()
        await _stop_status_table(task, stopped=True)
    assert len([r for r in caplog.records if "status table failed" in r.getMessage()]) == 1
