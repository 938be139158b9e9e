"""Deterministic identifiers for decisions and orders.

Client order ids are the idempotency key of every order: derived from the workflow id, the
symbol's lineage (fixed at its first run) and a sequence number kept in ``CoinState``. They are
in the workflow history before the order activity runs, so a retried or re-run activity
always asks the exchange about the same id. Never built from the run id: reset and
continue-as-new change it.
"""

from __future__ import annotations

import hashlib
import re

# Binance allows 36 characters of [A-Za-z0-9._:/-]; most exchanges allow at least that.
_MAX_LEN = 36
_PREFIX = "dt"


def client_order_id(workflow_id: str, lineage: str, order_seq: int) -> str:
    """A ≤36-character id that is the same for the same (workflow, lineage, sequence)."""
    digest = hashlib.sha256(f"{workflow_id}|{lineage}|{order_seq}".encode()).hexdigest()
    return f"{_PREFIX}{digest[: _MAX_LEN - len(_PREFIX) - 6]}{order_seq % 1_000_000:06d}"


def decision_id(symbol: str, lineage: str, decision_seq: int) -> str:
    """Human-readable id of one entry decision, e.g. ``BTC-USDT:18c0f2a9b1e:7``.

    It names the trade in the ledger (idempotency key) and in the Portfolio's slots.
    """
    return f"{symbol_slug(symbol)}:{lineage}:{decision_seq}"


def notification_key(workflow_id: str, lineage: str, notify_seq: int) -> str:
    """The de-duplication key of one notification, e.g. ``trader:paper:BTC-USDT:18c0f:n3``:
    the same for a retried or re-run notify activity, new for every message decided."""
    return f"{workflow_id}:{lineage}:n{notify_seq}"


def symbol_slug(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC-USDT`` (workflow ids and file names cannot hold ``/`` nicely)."""
    return symbol.replace("/", "-")


def workflow_id_for(exchange: str, symbol: str) -> str:
    """The SymbolTrader workflow id: ``trader:<exchange>:<BASE-QUOTE>``."""
    return f"trader:{exchange}:{symbol_slug(symbol)}"


def portfolio_id_for(exchange: str, task_queue: str) -> str:
    """One Portfolio (trade-slot limit) per exchange account and deployment (task queue)."""
    return f"portfolio:{exchange}:{task_queue}"


def validator_id_for(exchange: str, task_queue: str) -> str:
    """The HybridValidator's workflow id: one per exchange account and deployment."""
    return f"hybrid-validator:{exchange}:{task_queue}"


_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


def is_valid_symbol(symbol: str) -> bool:
    """Unified spot symbol: ``BASE/QUOTE`` in capitals and digits."""
    return bool(_SYMBOL.match(symbol))
