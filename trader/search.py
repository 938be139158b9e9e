"""Search attributes that make the Web UI's workflow list useful.

Search attributes are stored in plaintext even when payloads are encrypted, so no amounts
go here: phase, symbol, exchange and the time of the last phase change only.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TRADING_PHASE = SearchAttributeKey.for_keyword("TradingPhase")
TRADING_SYMBOL = SearchAttributeKey.for_keyword("TradingSymbol")
TRADING_EXCHANGE = SearchAttributeKey.for_keyword("TradingExchange")
PHASE_SINCE = SearchAttributeKey.for_datetime("PhaseSince")

ALL_KEYS = (TRADING_PHASE, TRADING_SYMBOL, TRADING_EXCHANGE, PHASE_SINCE)
