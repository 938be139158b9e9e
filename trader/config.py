"""Settings: read once at the edge from a TOML file plus environment variables.

Precedence: explicit overrides > environment > TOML file > defaults. The trading settings are
derived from ``TraderParams``'s fields (declared once, there). Env names are the
upper-case field names (the seed's names, e.g. ``BUY_ORDER_TIMEOUT_SECONDS``); TOML keys are
the lower-case names. Secrets are ``SecretStr`` and never reach workflow parameters.

``trader.config_docs`` renders docs/configuration.md's table and config.example.toml from
these fields, so the docs cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import tomllib
from copy import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from trader.config_paper import PaperSettings
from trader.core.consistency import window_problem
from trader.core.errors import ConfigError
from trader.core.ids import is_valid_symbol
from trader.core.params import TraderParams, param
from trader.hub import ORDER_PRICE_AGE_S

# A worker's own phase log file name: host and pid (the Temporal identity's parts) tell
# apart workers started in the same second, in containers too (each one's pid may be 1).
_RUN_NAME = "_".join(
    (
        datetime.now(UTC).strftime("%Y%m%d_%H%M%S"),
        re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()),
        str(os.getpid()),
    )
)


_f = param  # the edge's own settings are declared the same way (default, doc, unit, limits)

_SEED_NAMES = {"max_hold_minutes": "max_position_hold_minutes"}
"""Trading parameters whose setting keeps the seed's name (``MAX_POSITION_HOLD_MINUTES``)."""


def setting_name(param_name: str) -> str:
    """The setting (TOML key; upper-case: env name) of a ``TraderParams`` field."""
    return _SEED_NAMES.get(param_name, param_name)


def _trading_settings() -> type[BaseSettings]:
    # Every TraderParams field as a setting: its type, default, doc text, unit and constraint
    # are the parameter's own (a copy of its FieldInfo), so nothing here repeats them.
    fields: dict[str, Any] = {
        setting_name(name): (field.annotation, copy(field))
        for name, field in TraderParams.model_fields.items()
    }
    return create_model("TradingSettings", __base__=BaseSettings, **fields)


_TradingSettings = _trading_settings()


# A generated base is opaque to mypy: the trading settings type-check as Any on a Settings;
# typed code reads them from ``trader_params()`` (a TraderParams, fully typed).
class Settings(_TradingSettings):  # type: ignore[misc,valid-type]
    """Every setting of durable-trader (see docs/configuration.md).

    The trading settings come first, one per ``TraderParams`` field (see ``setting_name``);
    the fields below are the edge's own: modes, connections, observability, secrets.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    # --- mode and observability ----------------------------------------------------------
    fsm_enabled: bool = _f(True, "False = legacy engine (as in the seed); True = FSM_MODE.")
    fsm_mode: Literal["legacy", "fsm", "both"] = _f("fsm", "legacy, fsm or both (hybrid).")
    hybrid_primary: Literal["fsm", "legacy"] = _f(
        "fsm",
        "FSM_MODE=both: the engine that sends the real orders; the other runs in shadow "
        "(simulated fills on the same tickers, docs/migration.md).",
    )
    phase_log_file: Path | None = _f(
        None,
        "JSONL phase log, one file per worker (the "
        "directory's *.jsonl files are one log); default "
        "<data_dir>/logs/phase_events_<run timestamp>_<host>"
        "_<pid>.jsonl.",
    )
    phase_log_buffer_size: int = _f(
        8192,
        "Phase log: most bytes per write call (whole lines, written as they come).",
        "bytes",
        gt=0,
    )
    enable_rich_table: bool = _f(False, "Show the live status table in the worker.")
    rich_table_refresh_hz: float = _f(2.0, "Status table refreshes per second.", "Hz", gt=0)
    rich_table_show_idle: bool = _f(False, "Show IDLE/WARMUP symbols in the status table.")
    enable_prometheus: bool = _f(False, "Serve Prometheus metrics from the worker.")
    prometheus_port: int = _f(8000, "Prometheus metrics port.", ge=1, le=65535)
    prometheus_bind_address: str = _f(
        "127.0.0.1", "Address the metrics endpoints bind to; 0.0.0.0 in containers."
    )
    temporal_metrics_port: int = _f(
        8001,
        "Port of the Temporal SDK's own Prometheus metrics (with ENABLE_PROMETHEUS); 0 = off.",
        ge=0,
        le=65535,
    )
    stuck_timeout_seconds: float = _f(
        60.0, "A symbol this long in a working phase is stuck (trader_stuck_symbols).", "s", gt=0
    )
    stuck_check_interval_seconds: float = _f(
        30.0, "How often the worker recounts stuck symbols.", "s", gt=0
    )
    hybrid_validation_interval_s: int = _f(60, "Hybrid validator period, seconds.", "s", gt=0)
    hybrid_log_divergences: bool = _f(True, "Notify each divergence reported (always logged).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f("INFO", "Log level.")
    workflow_sandbox: bool = _f(
        True,
        "Run workflow code in temporalio's sandbox, which fails a non-deterministic call at "
        "once. False: ~4-8 ms less per decision (docs/benchmarks.md); determinism then "
        "rests on the replay tests.",
    )

    # --- what to trade where -------------------------------------------------------------
    watchlist: list[str] = _f(["BTC/USDT", "ETH/USDT", "SOL/USDT"], "Symbols to trade, BASE/QUOTE.")
    launch_concurrency: int = _f(
        64, "Symbols the starter launches (starts or finds) at the same time.", "symbols", ge=1
    )
    exchange_sandbox: bool = _f(False, "Use the exchange's testnet (ccxt sandbox mode).")
    exchange_api_url: str | None = _f(
        None,
        "Base URL replacing the exchange's API host "
        "(testnet, proxy, local test server); unset = ccxt's.",
    )
    exchange_timeout_seconds: float = _f(10.0, "HTTP timeout of one exchange request.", "s", gt=0)
    exchange_rate_limit_ms: float | None = _f(
        None,
        "Request pacing, ms per unit of request weight; unset = ccxt's model of the "
        "exchange (Binance: 50, i.e. 1200 weight/min). Half of it goes to market data, 45 % "
        "to orders, 5 % to the validator's open-orders listing.",
        "ms",
        gt=0,
    )
    tickers_chunk_size: int = _f(
        100, "Symbols per batched ticker request (the exchange's limit).", "symbols", gt=0
    )
    data_dir: Path = _f(Path("data"), "Folder for the dev server, ledger and paper exchange.")
    ledger_url: str = _f(
        "",
        "Ledger database: postgresql://user@host:port/db (password from PGPASSWORD, kept "
        "out of the URL) or a SQLite file path; empty = SQLite file <data_dir>/ledger.sqlite.",
    )

    market_poll_interval_s: float = _f(0.5, "Market-data hub poll period, seconds.", "s", gt=0)
    market_streams: bool = _f(
        True,
        "Stream top-of-book prices over the exchange's WebSocket (ccxt.pro) where it has one, "
        "polling REST only while the stream is down or silent; paper and dry-run always poll.",
    )
    max_price_age_seconds: float = _f(
        5.0,
        "A price older than this is never used for a decision: the watch waits (and says so "
        "in its heartbeat and the status table).",
        "s",
        gt=0,
    )
    order_price_age_seconds: float = _f(
        ORDER_PRICE_AGE_S,
        "An order's limit price comes from the hub's held price while the hub accepted it "
        "at most this long ago (streamed, or polled; monotonic time), else from a ticker "
        "request of its own; 0 = always the request. A warm-up's anchor and a "
        "reconciliation's ticker always ask. 0.5 s covers the path from a "
        "price to its order (p99 ~0.25 s on the stream) and stays well inside the buy "
        "limit's offset on a liquid market.",
        "s",
        ge=0,
    )
    stream_stall_seconds: float = _f(
        2.0,
        "A stream connection without a frame for this long counts as stalled: its symbols "
        "are polled over REST until frames flow again.",
        "s",
        gt=0,
    )

    # --- Temporal ------------------------------------------------------------------------
    temporal_address: str | None = _f(None, "host:port of Temporal; unset = embedded dev server.")
    temporal_namespace: str = _f("default", "Temporal namespace.")
    temporal_port: int = _f(7233, "Embedded dev server gRPC port.", ge=1, le=65535)
    temporal_ui_port: int = _f(8233, "Embedded dev server Web UI port.", ge=1, le=65535)
    task_queue: str = _f("durable-trader", "Task queue of workflows and order activities.")
    watch_task_queue: str = _f("durable-trader-watch", "Task queue of watch activities.")

    # --- paper exchange and secrets ------------------------------------------------------
    paper: PaperSettings = _f(PaperSettings(), "The [paper] table.")
    exchange_api_key: SecretStr | None = _f(None, "Exchange API key (env only, never logged).")
    exchange_api_secret: SecretStr | None = _f(None, "Exchange API secret.")
    telegram_token: SecretStr | None = _f(None, "Telegram bot token (env only, never logged).")
    telegram_chat_ids: SecretStr | None = _f(
        None, "Telegram chat ids, comma-separated: messages go to these, commands from them."
    )
    telegram_api_url: str = _f(
        "https://api.telegram.org", "Telegram Bot API base URL (a local fake in tests)."
    )

    @field_validator("watchlist")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not is_valid_symbol(s)]
        if bad:
            raise ValueError(f"symbols must look like BTC/USDT (capitals and digits), got {bad}")
        if not value:
            raise ValueError("the watchlist is empty")
        return value

    @field_validator("order_consistency_window_seconds")
    @classmethod
    def _window(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("order_activity_timeout_seconds")
        if timeout is not None and (problem := window_problem(value, timeout)):
            raise ValueError(f"{problem}: raise ORDER_ACTIVITY_TIMEOUT_SECONDS or lower it")
        return value

    @model_validator(mode="after")
    def _settle_fits(self) -> Settings:
        # One reconcile attempt reads the order and the ticker too: leave it a second.
        if self.balance_settle_seconds + 1 > self.order_activity_timeout_seconds:
            raise ValueError(
                f"BALANCE_SETTLE_SECONDS ({self.balance_settle_seconds}) must be at least 1 s "
                f"below ORDER_ACTIVITY_TIMEOUT_SECONDS ({self.order_activity_timeout_seconds}):"
                " a reconcile attempt re-reads a short balance that long, and must finish"
            )
        return self

    @model_validator(mode="after")
    def _price_ages_fit(self) -> Settings:
        # The stream must be found stalled (REST takes over) before its price outlives the
        # age limit, and a polled price must survive a late cycle.
        if self.stream_stall_seconds >= self.max_price_age_seconds:
            raise ValueError(
                f"STREAM_STALL_SECONDS ({self.stream_stall_seconds}) must be below "
                f"MAX_PRICE_AGE_SECONDS ({self.max_price_age_seconds}): a stalled stream "
                "must hand over to REST before its price is too old to use"
            )
        if self.order_price_age_seconds > self.max_price_age_seconds:
            raise ValueError(
                f"ORDER_PRICE_AGE_SECONDS ({self.order_price_age_seconds}) must not exceed "
                f"MAX_PRICE_AGE_SECONDS ({self.max_price_age_seconds}): a price too old for "
                "a decision must never price an order"
            )
        if self.max_price_age_seconds <= 2 * self.market_poll_interval_s:
            raise ValueError(
                f"MAX_PRICE_AGE_SECONDS ({self.max_price_age_seconds}) must exceed twice "
                f"MARKET_POLL_INTERVAL_S ({self.market_poll_interval_s}): a polled price "
                "must outlive one late cycle"
            )
        return self

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, value: str) -> str:
        import ccxt  # the edge: only here does the config know ccxt's ids

        if value != "paper" and value not in ccxt.exchanges:
            raise ValueError(
                f"{value!r} is neither 'paper' nor a ccxt exchange id (e.g. binance, kraken, okx)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def effective_mode(self) -> str:
        return self.fsm_mode if self.fsm_enabled else "legacy"

    @property
    def ledger_target(self) -> str | Path:
        """What ``LedgerStore`` opens: the URL, or the SQLite file."""
        return self.ledger_url or self.data_dir / "ledger.sqlite"

    @property
    def chat_ids(self) -> list[str]:
        """TELEGRAM_CHAT_IDS as a list (empty when unset)."""
        raw = self.telegram_chat_ids.get_secret_value() if self.telegram_chat_ids else ""
        return [part.strip() for part in raw.split(",") if part.strip()]

    def phase_log_path(self) -> Path:
        return self.phase_log_file or self.data_dir / "logs" / f"phase_events_{_RUN_NAME}.jsonl"

    def trader_params(self) -> TraderParams:
        """The per-workflow parameters (plain values, no secrets)."""
        return TraderParams(
            **{name: getattr(self, setting_name(name)) for name in TraderParams.model_fields}
        )

    def redacted(self) -> dict[str, Any]:
        """For logging: secrets are shown as '***'."""
        shown: dict[str, Any] = self.model_dump(mode="json")  # SecretStr: '**********'
        return shown


def global_options(*, in_command: bool = False) -> argparse.ArgumentParser:
    """The options of starter.py and worker.py that go before or after the command.

    A parent parser, for the main parser and (``in_command``) for every command's own: the
    command's copies default to ``SUPPRESS``, so ``--config FILE status`` keeps the FILE
    given before the command, and ``status --config FILE`` sets it after.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS if in_command else None,
        help="TOML config file (see config.example.toml); before or after the command",
    )
    return options


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate; raises ConfigError naming every bad field and what it expects."""
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path is not None:
        _refuse_file_secrets(path)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        settings = _FromFile(**overrides) if path else Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except ValueError as exc:  # e.g. TOML syntax
        raise ConfigError(f"config error in {path}: {exc}") from None
    return settings


_SECRET_FIELDS = ("exchange_api_key", "exchange_api_secret", "telegram_token", "telegram_chat_ids")


def _refuse_file_secrets(path: Path) -> None:
    """Credentials come from the environment only: a file is copied, committed, shared."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return  # reported by the settings source with its own message
    found = [k for k in data if k.lower() in _SECRET_FIELDS]
    if found:
        raise ConfigError(
            f"config error in {path}: {', '.join(found)} must be set in the "
            f"environment ({', '.join(k.upper() for k in found)}), never in a file"
        )


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc)
        env = "__".join(p.upper() for p in loc if not p.isdigit())  # an item: its list's env
        got = err.get("input")
        if not loc:  # a rule across fields: its message names them
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        elif err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key!r} (not a field; see config.example.toml)")
        else:
            lines.append(f"{env} ({key}): {err['msg']}; got {got!r}")
    where = f" in {path}" if path else ""
    return f"config error{where}:\n  " + "\n  ".join(lines)
