"""``FSM_MODE=both``: which engine is primary, which is the shadow, and where each side lives.

The primary (``HYBRID_PRIMARY``, ``fsm`` by default) trades on the configured exchange. The
shadow sees the same market data (one market-data hub in the process) and sends its orders
to a ``DryRunExchange``: the paper fill model matched against the real exchange's tickers,
with simulated balances of its own in ``shadow_db_path`` (SQLite, kept across restarts). So
everything the shadow does is ``simulated``: its ledger rows, phase events, status memo,
details. Its notifications are suppressed (logged as ``shadow, not sent``): only the
primary's trades reach the operator's chat.

Where each side lives (the same in every mode, primary or shadow):
- FSM: the SymbolTrader workflows ``trader:<exchange>:<BASE-QUOTE>`` on ``TASK_QUEUE``;
- legacy: its persisted state at ``trader.legacy.store.state_path(data_dir)`` (read it with
  ``read_state``, which never blocks the engine), its requests beside it.

Ids never collide: the legacy engine prefixes the lineage of every symbol it starts in
``both`` mode with ``LEGACY_LINEAGE_PREFIX`` (not a hex digit; the workflows' lineages are
hex), so its decision ids, trade ids and inventory record ids differ from the workflows'
(the ledger keeps the first row per id); client order ids differ by their engine prefix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from activities.notify import LogNotifier
from trader.config import Settings
from trader.exchange.dry_run import DryRunExchange
from trader.exchange.port import Exchange
from trader.hub import MarketHub, SharedHub
from trader.ledger.profit import Counted, account
from trader.observe.events import Listener, PhaseEvent
from trader.runtime.exchange import build_dry_run

log = logging.getLogger(__name__)

FSM, LEGACY = "fsm", "legacy"
LEGACY_LINEAGE_PREFIX = "lg"


@dataclass(frozen=True)
class Roles:
    """Who trades for real in this deployment, and who (if anyone) shadows it."""

    primary: str
    shadow: str | None

    def role(self, engine: str) -> str:
        """``primary``, ``shadow`` or ``off`` (an engine this mode does not run)."""
        return "primary" if engine == self.primary else "shadow" if engine == self.shadow else "off"


def roles(settings: Settings) -> Roles:
    mode = settings.effective_mode
    if mode == "both":
        primary = settings.hybrid_primary
        return Roles(primary=primary, shadow=LEGACY if primary == FSM else FSM)
    return Roles(primary=LEGACY if mode == LEGACY else FSM, shadow=None)


def label(settings: Settings, engine: str) -> str:
    """How both mode names a side in its answers and tables: ``legacy (shadow, simulated)``."""
    role = roles(settings).role(engine)
    return f"{engine} ({role}{', simulated' if role == 'shadow' else ''})"


def profit_account(settings: Settings) -> Counted:
    """What ``starter.py profit`` and ``/profit`` count unless told: the primary engine's
    own account (docs/ledger.md)."""
    return account(
        exchange=settings.exchange,
        global_trading=settings.global_trading,
        both_primary=roles(settings).primary if is_both(settings) else None,
    )


def is_both(settings: Settings) -> bool:
    return settings.effective_mode == "both"


def is_shadow(settings: Settings, engine: str) -> bool:
    return roles(settings).shadow == engine


SHADOW_QUEUE_SUFFIX = "-shadow"


def fsm_settings(settings: Settings) -> Settings:
    """The settings the FSM side runs with: when it is the shadow, its task queues (main,
    watch, and so slots; the Portfolio and validator ids follow the main one) are its own,
    ``<queue>-shadow``. Only a worker that is itself a both-mode FSM shadow polls them, so
    a worker configured live (``FSM_MODE=fsm``, or both with the FSM primary) on the same
    ``TASK_QUEUE`` never runs a shadow's warm-up or orders against the real account. Read
    once at the edge (starter.py, worker.py): applied twice it would suffix twice."""
    if not is_shadow(settings, FSM):
        return settings
    own: Settings = settings.model_copy(
        update={
            "task_queue": settings.task_queue + SHADOW_QUEUE_SUFFIX,
            "watch_task_queue": settings.watch_task_queue + SHADOW_QUEUE_SUFFIX,
        }
    )
    return own


def shadow_db_path(settings: Settings, engine: str) -> Path:
    """The shadow's simulated account (orders, fills, balances) for ``engine``."""
    return settings.data_dir / f"shadow-{engine}-{settings.exchange}.sqlite"


def side_exchange(
    settings: Settings, engine: str, real: Exchange, *, hub: MarketHub | None = None
) -> Exchange:
    """What ``engine`` trades on: ``real`` when it is primary (or in a single-engine mode),
    else a shadow account priced from ``real``'s tickers (never an order to ``real``):
    those the primary's ``hub`` holds, so the shadow spends none of the primary's rate
    limit (``MarketHub.shared_ticker``); without a hub, asked of ``real``."""
    if not is_shadow(settings, engine):
        return real
    db_path = shadow_db_path(settings, engine)
    log.warning(
        "FSM_MODE=both: %s is the SHADOW (orders simulated against %s's tickers, account %s)",
        engine,
        real.name,
        db_path,
    )
    prices = hub.shared_ticker if hub is not None else None
    return build_dry_run(settings, real, db_path=db_path, prices=prices)


def primary_exchange(settings: Settings, fsm_exchange: Exchange) -> Exchange:
    """The account the primary trades on, from the worker's (FSM's) exchange: the validator
    reconciles the primary against it, so a shadow FSM's simulated account is not it."""
    if is_shadow(settings, FSM) and isinstance(fsm_exchange, DryRunExchange):
        return fsm_exchange.live
    return fsm_exchange


def side_hub(settings: Settings, engine: str, hub: MarketHub) -> MarketHub:
    """The hub ``engine`` watches: the process's one hub, as a shadow sees it when it is
    the shadow (``SharedHub``: its direct ticker requests come from the hub's prices)."""
    return SharedHub(hub) if is_shadow(settings, engine) else hub


async def close_side(exchange: Exchange, real: Exchange) -> None:
    """Close what ``side_exchange`` made; ``real`` stays open (its owner closes it)."""
    if exchange is not real and isinstance(exchange, DryRunExchange):
        await exchange.close_own()


def shadow_notifier(engine: str) -> LogNotifier:
    """The shadow's notifier: logs what it would have sent, sends nothing (the operator's
    chat hears the primary only; the validator reports where the two differ)."""
    return LogNotifier(prefix=f"{engine} shadow, not sent")


class EngineOnly:
    """A sink listener that passes on one engine's events only (both engines publish to
    one process's sink in ``both`` mode; each metrics registry counts its own)."""

    def __init__(self, engine: str, listener: Listener) -> None:
        self.engine, self.listener = engine, listener

    def __call__(self, event: PhaseEvent) -> None:
        if event.engine == self.engine:
            self.listener(event)
