"""durable-trader command line: launch the watchlist and operate it.

python starter.py                      start (embedded Temporal + worker + watchlist)
python starter.py force-exit BTC/USDT  sell a symbol's position now
python starter.py status --once        one table of every symbol's phase
python starter.py stuck --timeout 60   symbols stuck in a working phase (exit 1 if any)
python starter.py pause|resume|reconcile [SYMBOLS], stop [--close-positions]
                                       operate the symbols (both engines; FSM_MODE=legacy
                                       asks the running engine through its data dir;
                                       FSM_MODE=both: primary and shadow, docs/migration.md)
python starter.py backtest --data DIR  replay OHLCV candles through the rules (no Temporal)
python starter.py profit [--since 7d] [--symbol S] [--json] [--simulated] [--engine E]
                                       realized PnL from the ledger (real rows by default)

--config FILE goes before or after the command (python starter.py status --config FILE).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys

from temporalio.client import Client

from trader import contracts as c
from trader.backtest import cli as backtest
from trader.config import Settings, global_options, load_settings
from trader.core.errors import ConfigError, TraderError
from trader.ledger import profit as ledger_profit
from trader.observe.status_live import status_console
from trader.runtime import both, commands, hybrid, legacy, telegram_bot
from trader.runtime.client import (
    connect,
    default_identity,
    ensure_search_attributes,
    sdk_metrics_runtime,
)
from trader.runtime.devserver import start_dev_server
from trader.runtime.exchange import build_exchange
from trader.runtime.launch import start_watchlist, validate_watchlist
from trader.runtime.process import hard_exit
from trader.runtime.stuck import StuckSymbol, format_stuck, stuck_symbols
from trader.runtime.validator import start_validator, validator_setup
from trader.runtime.worker import run_worker

log = logging.getLogger("durable_trader")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Every command takes the global options too, so they may follow it.
    command = functools.partial(sub.add_parser, parents=[global_options(in_command=True)])
    start = command("start", help="start the watchlist (the default command)")
    start.add_argument(
        "--no-worker",
        action="store_true",
        help="only start the workflows; run `python worker.py` separately",
    )
    fx = command("force-exit", help="sell a symbol's position now")
    fx.add_argument("symbol", help="e.g. BTC/USDT")
    fx.add_argument("--reason", default="manual", help="recorded in the history and ledger")
    _wait_option(fx)
    for name, text in (
        ("pause", "stop new entries (open trades continue)"),
        ("resume", "allow new entries again"),
    ):
        p = command(name, help=text)
        p.add_argument("symbols", nargs="*", help="default: the whole watchlist")
        _wait_option(p)
    rec = command(
        "reconcile",
        help="check the account against what symbols hold (each reports any difference)",
    )
    rec.add_argument("symbols", nargs="*", help="default: the whole watchlist")
    _wait_option(rec)
    stop = command("stop", help="stop every symbol at its next quiet phase")
    stop.add_argument(
        "--close-positions",
        action="store_true",
        help="sell held positions first (default: keep them; resumed on start)",
    )
    _wait_option(stop)
    status = command("status", help="live table of every symbol (from visibility)")
    status.add_argument("--once", action="store_true", help="print one table and exit")
    status.add_argument(
        "--show-idle",
        action="store_true",
        help="also show IDLE/WARMUP symbols (RICH_TABLE_SHOW_IDLE)",
    )
    stuck = command(
        "stuck",
        help="list symbols stuck in a working phase; exit "
        "code 1 when there are any (for cron and alerts)",
    )
    stuck.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds in the same working phase that count as stuck "
        "(default STUCK_TIMEOUT_SECONDS, 60)",
    )
    command("telegram", help="answer Telegram commands (one process per bot: docs/telegram.md)")
    ledger_profit.add_arguments(
        command("profit", help="realized PnL, fees, win rate, drawdown from the ledger")
    )
    backtest.add_arguments(
        command("backtest", help="replay OHLCV/trade files through the rules on their clock")
    )
    parser.set_defaults(no_worker=False)
    return parser


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=legacy.REQUEST_TIMEOUT_S,
        metavar="SECONDS",
        help="FSM_MODE=legacy: how long to wait for the running engine to take the request "
        f"(default {legacy.REQUEST_TIMEOUT_S:g})",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.command = args.command or "start"
    return args


async def _client(settings: Settings, *, runs_worker: bool = False) -> Client:
    address = settings.temporal_address
    if address is None:  # embedded default: a local dev server (reused if already up)
        start_dev_server(
            data_dir=settings.data_dir / "temporal",
            port=settings.temporal_port,
            ui_port=settings.temporal_ui_port,
        )
        address = f"127.0.0.1:{settings.temporal_port}"
    identity = default_identity()
    # Only the process that runs the worker exports the SDK's metrics (one port each).
    runtime = sdk_metrics_runtime(settings, identity) if runs_worker else None
    client = await connect(address, settings.temporal_namespace, identity=identity, runtime=runtime)
    await ensure_search_attributes(client)
    return client


async def main(args: argparse.Namespace) -> int:
    # The FSM side's queues are its own when it is the shadow (hybrid.fsm_settings).
    settings = hybrid.fsm_settings(load_settings(args.config))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "backtest":  # no Temporal, no worker, no exchange
        return backtest.run(args, settings)
    if args.command == "telegram":  # the one poller of this bot's commands
        telegram_bot.check_settings(settings)
        legacy_mode = settings.effective_mode == "legacy"
        await telegram_bot.serve_commands(
            settings, None if legacy_mode else await _client(settings), _stop_on_signals()
        )
        return 0
    if args.command == "profit":  # the ledger only, either mode
        return await ledger_profit.run(
            args, settings.ledger_target, hybrid.profit_account(settings)
        )
    if settings.effective_mode == "legacy":  # no Temporal at all (trader/legacy)
        return await _legacy(args, settings)
    simulated = False
    if args.command == "start":  # refuse unknown symbols before anything starts
        exchange = build_exchange(settings)
        try:
            await validate_watchlist(exchange, settings.watchlist)
            simulated = exchange.simulated or not settings.global_trading
        finally:
            await exchange.close()
    if settings.effective_mode == "both" and args.command in legacy.CONTROLS:
        # Temporal only when the FSM side's turn comes: a legacy primary gets its command
        # even with no server (trader/runtime/both.py, control).
        return await _both_control(args, settings)
    client = await _client(settings, runs_worker=args.command == "start" and not args.no_worker)
    if settings.effective_mode == "both" and args.command == "start":
        fsm_simulated = await both.fsm_simulated(settings, exchange_simulated=simulated)
        await both.refuse_other_role(client, settings, simulated=fsm_simulated)
    if settings.effective_mode == "both" and args.command != "start":
        return await _both(args, settings, client)
    if args.command == "start":
        ids_ = await start_watchlist(client, settings)
        validator = await start_validator(client, validator_setup(settings))
        ui = f"http://localhost:{settings.temporal_ui_port}/namespaces/{client.namespace}/workflows"
        print(f"{len(ids_)} symbols running: {', '.join(ids_)}\nWeb UI: {ui}", flush=True)
        print(f"divergences checked by {validator}", flush=True)
        if args.no_worker:
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if settings.effective_mode == "both":  # the worker and the legacy engine, here
            await both.run_both(settings, client, stop)
        else:
            await run_worker(settings, client, stop=stop)
    elif args.command == "force-exit":
        print(await commands.force_exit(client, settings, args.symbol, args.reason))
    elif args.command in ("pause", "resume"):
        done = await commands.signal_all(
            client, settings, f"{args.command}_entries", symbols=args.symbols or None
        )
        print(f"{args.command}d: {', '.join(done)}")
    elif args.command == "reconcile":
        done = await commands.signal_all(
            client,
            settings,
            "reconcile",
            c.ReconcileRequest(reason="operator"),
            symbols=args.symbols or None,
        )
        print(f"asked to reconcile: {', '.join(done)}")
    elif args.command == "stop":
        done = await commands.stop(client, settings, close_positions=args.close_positions)
        print(f"stopping: {', '.join(done)}")
    elif args.command == "status":
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends the live table cleanly
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await commands.status(
            client, settings, once=args.once, show_idle=args.show_idle, stop_event=stop
        )
    elif args.command == "stuck":
        timeout = _stuck_timeout(args, settings)
        rows = await stuck_symbols(client, timeout_s=timeout, task_queue=settings.task_queue)
        return _print_stuck(rows, timeout)
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


def _stuck_timeout(args: argparse.Namespace, settings: Settings) -> float:
    timeout = settings.stuck_timeout_seconds if args.timeout is None else float(args.timeout)
    if timeout < 0:
        raise ConfigError(f"--timeout must be >= 0 seconds, got {timeout:g}")
    return timeout


def _print_stuck(rows: list[StuckSymbol], timeout: float) -> int:
    if not rows:
        print(f"no symbol stuck for more than {timeout:g}s")
        return 0
    print(f"{len(rows)} symbol(s) stuck for more than {timeout:g}s:")
    print(format_stuck(rows))
    return 1


async def _both(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    """FSM_MODE=both: status and stuck over both engines (trader/runtime/both.py)."""
    if args.command == "stuck":
        timeout = _stuck_timeout(args, settings)
        return _print_stuck(await both.stuck(settings, client, timeout_s=timeout), timeout)
    await both.status(
        settings,
        client,
        console=status_console(),
        once=args.once,
        show_idle=args.show_idle,
        stop=_stop_on_signals(),
    )
    return 0


async def _both_control(args: argparse.Namespace, settings: Settings) -> int:
    """FSM_MODE=both: an operator command to both engines, primary first."""
    if args.wait <= 0:
        raise ConfigError(f"--wait must be > 0 seconds, got {args.wait:g}")
    return await both.control(args, settings, functools.partial(_client, settings))


async def _legacy(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in legacy.CONTROLS:  # asks the running engine (no lock needed)
        if args.wait <= 0:
            raise ConfigError(f"--wait must be > 0 seconds, got {args.wait:g}")
        code, text = await asyncio.to_thread(legacy.control_command, settings, args)
        print(text)
        return code
    if args.command == "stuck":
        timeout = _stuck_timeout(args, settings)
        return _print_stuck(legacy.legacy_stuck(settings, timeout_s=timeout), timeout)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C stops the engine cleanly
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if args.command == "status":
        await legacy.legacy_status(
            settings, console=status_console(), once=args.once, show_idle=args.show_idle, stop=stop
        )
    else:  # start: the engine runs in the foreground
        await legacy.run_legacy(settings, stop)
    return 0


if __name__ == "__main__":
    try:
        hard_exit(asyncio.run(main(parse_args())))
    except (ConfigError, TraderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        hard_exit(2)
