"""Stuck-symbol alert texts: one text per episode (the notifier de-duplicates on key and
text), times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from trader.core.messages import format_stuck_alert, format_unstuck

SINCE = datetime(2025, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)


def test_the_stuck_alert_names_symbol_phase_threshold_and_start_in_utc():
    local = SINCE.astimezone(timezone(timedelta(hours=2)))
    text = format_stuck_alert(symbol="BTC/USDT", phase="place_buy", timeout_s=60, since=local)
    assert text == "⚠ BTC/USDT stuck in place_buy for over 60 s (since 2025-03-01 12:00:05 UTC)"
    unknown = format_stuck_alert(symbol="BTC/USDT", phase="place_buy", timeout_s=0.5, since=None)
    assert unknown == "⚠ BTC/USDT stuck in place_buy for over 0.5 s (since an unknown time)"


def test_the_end_of_an_episode():
    text = format_unstuck(symbol="BTC/USDT", phase="wait_fill", since=SINCE)
    assert text == "BTC/USDT no longer stuck (was in wait_fill since 2025-03-01 12:00:05 UTC)"
