from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from trader.telegram.notifier import TelegramNotifier
from trader.telegram_sim import FakeBotApi

TOKEN = "777000:TEST-token-never-logged-Zq9"
CHAT = "4201"
OTHER_CHAT = "9999"


@pytest.fixture
def sim() -> Iterator[FakeBotApi]:
    with FakeBotApi() as api:
        yield api


@pytest.fixture
async def telegram(sim: FakeBotApi, tmp_path: Path) -> AsyncIterator[TelegramNotifier]:
    notifier = TelegramNotifier(
        token=TOKEN, chat_ids=[CHAT], api_url=sim.url, sent_log=tmp_path / "sent.sqlite"
    )
    yield notifier
    await notifier.close()
