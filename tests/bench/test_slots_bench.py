"""bench/slots.py in small, through the real broker, Portfolio and dev server: a burst
with the local attempt first (as SymbolTrader's since the slot-local patch)."""

from __future__ import annotations

import pytest

from bench import slots

pytestmark = [pytest.mark.e2e, pytest.mark.bench]


async def test_a_small_burst_with_the_local_attempt_first_is_all_answered() -> None:
    out = await slots.main(
        40, per_request=False, rate=None, max_trades=5, timeout_s=120, probes=2, local_first=True
    )
    assert out["answered"] == 40 and out["unanswered_at_timeout"] == 0
    assert out["granted"] == 5  # the limit held across both paths
    answered_locally = out["answered_locally"]
    assert isinstance(answered_locally, int) and 0 < answered_locally <= 40
    # Local grants are answers too (granted or all slots in use); every other request was
    # answered by the slot queue's activity after its local attempt was refused or failed.
    attempts = out["activity_attempts"]
    assert isinstance(attempts, int) and attempts >= 40
