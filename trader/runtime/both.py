"""``FSM_MODE=both`` in one process: the SymbolTrader worker and the legacy engine on one
market-data hub, one primary, one shadow (``trader.runtime.hybrid``), and the operator's
commands, status table and stuck list over both.

Operator commands go to **both** sides, primary first: a force exit, pause, resume,
reconcile or stop the operator gives is an intervention both engines must see, or the shadow
would go on with a trade the primary closed and every later comparison would differ. Each
side's answer is printed on its own line, prefixed with its engine and role.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from rich.console import Console, RenderableType
from temporalio.client import Client

from activities.notify import build_notifier, close_notifier
from trader import contracts as c
from trader.config import Settings
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.store import StateLocked, StateStore, state_path
from trader.observe.metrics import ShadowHealth, TraderMetrics
from trader.observe.status_table import build_table, status_rows, traders_query
from trader.runtime import commands, hybrid, legacy, shadow
from trader.runtime.exchange import build_exchange, build_hub
from trader.runtime.roles import RoleChanged as RoleChanged
from trader.runtime.roles import fsm_simulated as fsm_simulated
from trader.runtime.roles import refuse_other_role as refuse_other_role
from trader.runtime.stuck import StuckSymbol, stuck_symbols
from trader.runtime.validator import validator_worker
from trader.runtime.worker import run_worker, start_validator_logged

log = logging.getLogger(__name__)


async def run_both(settings: Settings, client: Client, stop: asyncio.Event) -> None:
    """Run the worker and the legacy engine until ``stop`` is set. The operator's ``stop``
    ends the legacy engine; the worker (whose workflows stop too) runs on until Ctrl-C.
    The primary's failure stops both (as in its single mode); the shadow's never stops the
    primary: it runs supervised (``trader.runtime.shadow``), everything of it built in its
    own run."""
    roles = hybrid.roles(settings)
    legacy_shadow = roles.shadow == hybrid.LEGACY
    # The store first: refused if another engine runs (as FSM_MODE=legacy), the shadow's
    # too; a shadow's first run takes it over, and only a later run's own open is contained.
    store = _open_store(settings, contained=legacy_shadow)
    stores = _Stores(settings, primary=None if legacy_shadow else store, first=store)
    try:
        real = build_exchange(settings)
    except BaseException:
        stores.close()
        raise
    hub = build_hub(settings, real)
    path = settings.phase_log_path()
    print(
        f"FSM_MODE=both on {real.name}: {hybrid.label(settings, hybrid.FSM)}, "
        f"{hybrid.label(settings, hybrid.LEGACY)}",
        flush=True,
    )
    try:
        await hub.start()  # this process runs it: a shadow's SharedHub never starts or stops it
        with legacy.engine_listeners(
            settings, path.with_name(f"{path.stem}_legacy{path.suffix}"), client.identity
        ) as legacy_metrics:
            health = None
            if legacy_metrics is not None:
                health = ShadowHealth(roles.shadow or hybrid.LEGACY, client.identity)
                legacy_metrics.serve_health(health)
                if not legacy_shadow:  # the primary's endpoint outlives the shadow's worker
                    legacy_metrics.serve(settings.prometheus_port, settings.prometheus_bind_address)
            legacy_run = functools.partial(
                _run_legacy_side, settings, stop, real, hub, legacy_metrics, stores
            )
            fsm_run = functools.partial(
                _run_fsm_side, settings, client, stop, real, hub, legacy_metrics
            )
            supervised = functools.partial(
                shadow.supervise, stop=stop, health=health, backoff_max_s=shadow.backoff_max_s()
            )
            if legacy_shadow:
                legacy_run = functools.partial(supervised, hybrid.LEGACY, legacy_run)
            else:
                fsm_run = functools.partial(supervised, hybrid.FSM, fsm_run)
            legacy_task = asyncio.create_task(legacy_run(), name="legacy-engine")
            worker_task = asyncio.create_task(fsm_run(), name="worker")
            primary = worker_task if legacy_shadow else legacy_task
            # Beside an FSM shadow, the validator's worker is the process's (supervised
            # too, never the shadow's): it reconciles the legacy primary while the shadow
            # is down or restarting (docs/migration.md, "When the shadow fails").
            helpers: set[asyncio.Task[None]] = set()
            if not legacy_shadow:
                validating = functools.partial(
                    _run_validator, settings, client, stop, real, legacy_metrics
                )
                helpers.add(
                    asyncio.create_task(
                        shadow.supervise(
                            "hybrid",
                            validating,
                            stop=stop,
                            health=None,
                            backoff_max_s=shadow.backoff_max_s(),
                            role="validator",
                        ),
                        name="validator",
                    )
                )
            try:
                await asyncio.wait({legacy_task, worker_task}, return_when=asyncio.FIRST_COMPLETED)
                if _returned(legacy_task) and not stop.is_set():
                    if not legacy_shadow:  # the engine stops the hub it was given
                        await hub.start()  # the workflows' watches go on
                    print("legacy engine stopped (operator's stop); the worker runs on", flush=True)
                else:
                    stop.set()  # the primary failed (or Ctrl-C): the other ends too
                await asyncio.wait({legacy_task, worker_task})
            except asyncio.CancelledError:
                stop.set()
                for task in (legacy_task, worker_task, *helpers):
                    task.cancel()
                # Nothing closed under them.
                await asyncio.wait({legacy_task, worker_task, *helpers})
                raise
            finally:
                # Supervised, a helper ends on stop (its worker shut down in order), or
                # cancelled; the exchange and hub it uses are closed only after it.
                if not stop.is_set():
                    for task in helpers:
                        task.cancel()
                if helpers:
                    await asyncio.wait(helpers)
            # The primary's outcome is the process's (a supervised shadow only ever ends
            # by returning, or by an exception that is no failure: SystemExit).
            for task in (primary, worker_task if primary is legacy_task else legacy_task):
                if task.cancelled():
                    raise asyncio.CancelledError(f"{task.get_name()} was cancelled")
                if (exc := task.exception()) is not None:
                    raise exc
    finally:
        await hub.stop()
        stores.close()
        await real.close()


def _returned(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _open_store(settings: Settings, *, contained: bool) -> StateStore | None:
    """The legacy engine's state store, its lock taken: ``StateLocked`` (another process
    runs on this DATA_DIR) always propagates; another failure to open only when not
    ``contained`` (a shadow's: its supervised run opens it again, and fails on its own)."""
    try:
        return StateStore(state_path(settings.data_dir))
    except StateLocked:
        raise
    except Exception:
        if not contained:
            raise
        log.exception("FSM_MODE=both: the legacy shadow's state store did not open")
        return None


class _Stores:
    """The legacy side's state store: the primary's, the process's for its life; or the
    shadow's first run's, opened at start (so a second process is refused at once), which
    that run takes over; each later shadow run opens its own."""

    def __init__(
        self, settings: Settings, *, primary: StateStore | None, first: StateStore | None
    ) -> None:
        self.path = state_path(settings.data_dir)
        self.primary = primary
        self.first = None if primary is not None else first

    def take(self) -> tuple[StateStore, bool]:
        """(the store, whether the caller closes it)."""
        if self.primary is not None:
            return self.primary, False
        first, self.first = self.first, None
        return first or StateStore(self.path), True

    def close(self) -> None:
        for store in (self.primary, self.first):
            if store is not None:
                store.close()


async def _run_legacy_side(
    settings: Settings,
    stop: asyncio.Event,
    real: Exchange,
    hub: MarketHub,
    metrics: TraderMetrics | None,
    stores: _Stores,
) -> None:
    """The legacy engine on its side's exchange; a shadow's run owns its state store (the
    first the one opened at start) and opens its simulated account here, so a failure of
    either is the shadow's own."""
    store, own = stores.take()
    try:
        exchange = hybrid.side_exchange(settings, hybrid.LEGACY, real, hub=hub)
        try:
            shadow_ = hybrid.is_shadow(settings, hybrid.LEGACY)
            await legacy.run_engine(
                settings,
                stop,
                store=store,
                exchange=exchange,
                hub=hybrid.side_hub(settings, hybrid.LEGACY, hub),
                metrics=metrics,
                notifier=hybrid.shadow_notifier(hybrid.LEGACY) if shadow_ else None,
                lineage_prefix=hybrid.LEGACY_LINEAGE_PREFIX,
                role="shadow" if shadow_ else "primary",
            )
        finally:
            await hybrid.close_side(exchange, real)
    finally:
        if own:
            store.close()


async def _run_validator(
    settings: Settings,
    client: Client,
    stop: asyncio.Event,
    real: Exchange,
    metrics: TraderMetrics | None,
) -> None:
    """The validator's worker on its own queue, beside an FSM shadow: its checks read the
    real account (the legacy primary's), its ledger connection and notifier are its own
    (the primary's notifier: a divergence is sent, never a shadow's "not sent")."""
    store = LedgerStore(settings.ledger_target)
    await store.open_or_warn()
    notifier = build_notifier(settings)
    try:
        worker = validator_worker(
            settings, client, primary=real, ledger=store, notifier=notifier, metrics=metrics
        )
        async with worker:
            await start_validator_logged(client, settings)
            await stop.wait()
    finally:
        await store.close()
        await close_notifier(notifier)


async def _run_fsm_side(
    settings: Settings,
    client: Client,
    stop: asyncio.Event,
    real: Exchange,
    hub: MarketHub,
    legacy_metrics: TraderMetrics | None,
) -> None:
    """The worker on its side's exchange: the primary serves the metrics endpoint (the
    legacy engine's beside its own); a shadow's series go on the legacy primary's."""
    exchange = hybrid.side_exchange(settings, hybrid.FSM, real, hub=hub)
    primary = not hybrid.is_shadow(settings, hybrid.FSM)
    try:
        await run_worker(
            settings,
            client,
            stop=stop,
            market=(exchange, hybrid.side_hub(settings, hybrid.FSM, hub)),
            alongside=legacy_metrics if primary else None,
            served_by=None if primary else legacy_metrics,
        )
    finally:
        await hybrid.close_side(exchange, real)


# --- operator commands ------------------------------------------------------------------------
Connect = Callable[[], Awaitable[Client]]


async def control(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    """One operator command to both sides, **primary first**, each side's failure only its
    own answer: a shadow that cannot be reached (no Temporal server, no worker, a hung
    update) never keeps the command from the primary. ``connect``: the Temporal client,
    asked for only when the FSM side's turn comes (and bounded).

    Returns 0: both took it; 1: a side refused it (or a symbol was not running); 2: a side
    did not answer (no legacy engine, or no Temporal server)."""
    sides = {hybrid.FSM: functools.partial(_fsm_side, args, settings, connect)}
    sides[hybrid.LEGACY] = functools.partial(_legacy_side, args, settings)
    roles = hybrid.roles(settings)
    code = 0
    for engine in (roles.primary, roles.shadow or ""):
        side_code, lines = await sides[engine]()
        code = max(code, side_code)
        for line in lines:
            print(f"{hybrid.label(settings, engine)}: {line}", flush=True)
    return code


async def _legacy_side(args: argparse.Namespace, settings: Settings) -> tuple[int, list[str]]:
    try:
        code, text = await asyncio.to_thread(legacy.control_command, settings, args)
    except legacy.NoEngine as exc:
        return 2, [str(exc)]
    except Exception as exc:  # this side's failure is its own answer
        log.exception("the legacy engine's %s failed", args.command)
        return 2, [f"failed: {exc or type(exc).__name__}"]
    return code, text.splitlines()


async def _fsm_side(
    args: argparse.Namespace, settings: Settings, connect: Connect
) -> tuple[int, list[str]]:
    try:
        client = await asyncio.wait_for(connect(), timeout=commands.SYMBOL_TIMEOUT_S)
    except Exception as exc:  # TimeoutError too: the server did not answer
        log.warning("FSM side: no Temporal client: %r", exc)
        return 2, [f"not reached: Temporal did not answer ({exc or type(exc).__name__})"]
    try:
        lines = await _fsm_command(args, settings, client)
    except Exception as exc:  # e.g. visibility down while listing the deployment
        log.exception("the FSM side's %s failed", args.command)
        return 2, [f"failed: {exc or type(exc).__name__}"]
    if any("no answer" in x or "failed:" in x for x in lines):
        return 2, lines  # a symbol's workflow did not answer in time (no worker?)
    return (1 if any("rejected" in x or "not running" in x for x in lines) else 0), lines


async def _fsm_command(args: argparse.Namespace, settings: Settings, client: Client) -> list[str]:
    symbols = getattr(args, "symbols", None) or None
    if args.command == "force-exit":  # bounded: an Update waits for a worker to run it
        return await commands.force_exit_each(client, settings, [args.symbol], args.reason)
    if args.command in ("pause", "resume"):
        done = await commands.signal_all(
            client, settings, f"{args.command}_entries", symbols=symbols
        )
        return [f"{args.command}d: {', '.join(done)}"]
    if args.command == "reconcile":
        request = c.ReconcileRequest(reason="operator")
        done = await commands.signal_all(client, settings, "reconcile", request, symbols=symbols)
        return [f"asked to reconcile: {', '.join(done)}"]
    done = await commands.stop(client, settings, close_positions=args.close_positions)
    return [f"stopping: {', '.join(done)}"]


# --- status and stuck --------------------------------------------------------------------------
async def status(
    settings: Settings,
    client: Client,
    *,
    console: Console,
    once: bool,
    show_idle: bool,
    stop: asyncio.Event,
) -> None:
    """Both sides' tables, each titled with its engine and role (the shadow's rows are
    marked ``(sim)`` by their memo too)."""
    show_idle = show_idle or settings.rich_table_show_idle
    query = traders_query(settings.task_queue)

    async def frame() -> list[RenderableType]:
        rows = {
            hybrid.FSM: await status_rows(client, query),
            hybrid.LEGACY: legacy.legacy_rows(settings),
        }
        return [
            build_table(r, show_idle=show_idle, title=hybrid.label(settings, engine))
            for engine, r in rows.items()
        ]

    await legacy.repaint(
        console, frame, once=once, refresh_hz=settings.rich_table_refresh_hz, stop=stop
    )


async def stuck(settings: Settings, client: Client, *, timeout_s: float) -> list[StuckSymbol]:
    """Both sides' stuck symbols (the legacy engine's ids start ``legacy:``)."""
    fsm = await stuck_symbols(client, timeout_s=timeout_s, task_queue=settings.task_queue)
    return [*fsm, *legacy.legacy_stuck(settings, timeout_s=timeout_s)]
