"""Settings: TOML + env, precedence, validation messages, secrets kept out of params."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from trader.config import Settings, load_settings
from trader.config_docs import example_toml, markdown
from trader.core.errors import ConfigError
from trader.core.params import TraderParams

ROOT = Path(__file__).resolve().parents[1]
SEED_NAMES = [
    "FSM_ENABLED",
    "FSM_MODE",
    "PHASE_LOG_FILE",
    "PHASE_LOG_BUFFER_SIZE",
    "ENABLE_RICH_TABLE",
    "RICH_TABLE_REFRESH_HZ",
    "RICH_TABLE_SHOW_IDLE",
    "ENABLE_PROMETHEUS",
    "PROMETHEUS_PORT",
    "BUY_ORDER_TIMEOUT_SECONDS",
    "SELL_ORDER_TIMEOUT_SECONDS",
    "MAX_POSITION_HOLD_MINUTES",
    "FSM_MAX_RETRIES",
    "FSM_BACKOFF_BASE_SECONDS",
    "HYBRID_VALIDATION_INTERVAL_S",
    "HYBRID_LOG_DIVERGENCES",
    "MAX_TRADES",
    "GLOBAL_TRADING",
    "BACKFILL_MINUTES",
    "USE_DROP_ANCHOR",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(Settings.model_fields) + ["PAPER__SEED"]:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_are_the_seed_values():
    s = load_settings()
    assert (s.buy_order_timeout_seconds, s.sell_order_timeout_seconds) == (30, 20)
    assert s.max_position_hold_minutes == 60 and s.cooldown_minutes == 15
    assert (s.fsm_max_retries, s.fsm_backoff_base_seconds, s.fsm_backoff_max_seconds) == (
        5,
        10,
        300,
    )
    assert s.phase_log_buffer_size == 8192 and s.rich_table_refresh_hz == 2.0
    assert s.prometheus_port == 8000 and s.hybrid_validation_interval_s == 60


def test_every_seed_setting_is_a_field():
    for name in SEED_NAMES:
        assert name.lower() in Settings.model_fields, name


def test_toml_then_env_override(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'drop_trigger_pct = "0.7"\nmax_trades = 2\n[paper]\nseed = 3\nvolatility_bps = "12"\n'
    )
    s = load_settings(cfg)
    assert s.drop_trigger_pct == D("0.7") and s.max_trades == 2 and s.paper.seed == 3
    monkeypatch.setenv("MAX_TRADES", "4")
    monkeypatch.setenv("PAPER__SEED", "9")
    s = load_settings(cfg)
    assert s.max_trades == 4 and s.paper.seed == 9 and s.paper.volatility_bps == D(12)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('drop_trigger_pct = "abc"', "DROP_TRIGGER_PCT (drop_trigger_pct)"),
        ("buy_order_timeout_seconds = -1", "BUY_ORDER_TIMEOUT_SECONDS"),
        ('fsm_mode = "turbo"', "FSM_MODE (fsm_mode)"),
        ('watchlist = ["btc-usdt"]', "WATCHLIST (watchlist)"),
        ("prometheus_port = 70000", "PROMETHEUS_PORT"),
        ("drop_triger_pct = 1", "unknown setting 'drop_triger_pct'"),
        ('[paper]\nseed = "x"', "PAPER__SEED (paper.seed)"),
        ("x = [", "config error in"),
    ],
)
def test_bad_values_name_the_field(tmp_path, toml, expected):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert expected in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_stay_out_of_params_logs_and_repr(monkeypatch):
    monkeypatch.setenv("EXCHANGE_API_KEY", "key-SECRET-123")
    monkeypatch.setenv("TELEGRAM_TOKEN", "tok-SECRET-456")
    s = load_settings()
    assert s.exchange_api_key is not None
    assert s.exchange_api_key.get_secret_value() == "key-SECRET-123"
    for text in (s.trader_params().model_dump_json(), str(s.redacted()), repr(s), str(s)):
        assert "SECRET" not in text


def test_telegram_chat_ids_come_from_the_environment_only(monkeypatch, tmp_path):
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", " 4201, -100777 ,")
    s = load_settings()
    assert s.chat_ids == ["4201", "-100777"]
    assert "4201" not in repr(s) and "4201" not in str(s.redacted())
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('telegram_chat_ids = "4201"\n')
    with pytest.raises(ConfigError, match="TELEGRAM_CHAT_IDS"):
        load_settings(cfg)


def test_trader_params_carry_every_trading_field():
    s = load_settings(trade_budget=D("42"), max_position_hold_minutes=D("7"), anchor_mode="window")
    params = s.trader_params()
    assert params.trade_budget == D("42") and params.max_hold_minutes == D("7")
    for name in TraderParams.model_fields:
        if name != "max_hold_minutes":
            assert getattr(params, name) == getattr(s, name), name


def test_legacy_mode_from_the_master_switch():
    assert load_settings(fsm_enabled=False, fsm_mode="fsm").effective_mode == "legacy"
    assert load_settings(fsm_mode="both").effective_mode == "both"


@pytest.mark.parametrize("name", ["config.example.toml", "config/demo.toml"])
def test_shipped_configs_load(name):
    load_settings(ROOT / name)


def test_docs_and_example_are_generated_from_the_model():
    assert (ROOT / "config.example.toml").read_text() == example_toml()
    assert markdown() in (ROOT / "docs" / "configuration.md").read_text()


def test_the_order_consistency_window_must_fit_in_an_order_attempt():
    assert load_settings().order_consistency_window_seconds == 5
    assert (
        load_settings(
            order_consistency_window_seconds=14, order_activity_timeout_seconds=15
        ).order_consistency_window_seconds
        == 14
    )
    with pytest.raises(ConfigError, match="ORDER_CONSISTENCY_WINDOW_SECONDS.*cannot outlast"):
        load_settings(order_consistency_window_seconds=5, order_activity_timeout_seconds=5)
    with pytest.raises(ConfigError, match="ORDER_CONSISTENCY_WINDOW_SECONDS"):
        load_settings(order_consistency_window_seconds=0)


def test_balance_settle_window_must_fit_in_an_exchange_call():
    with pytest.raises(ConfigError) as err:
        load_settings(balance_settle_seconds=14.5, order_activity_timeout_seconds=15)
    assert (
        "BALANCE_SETTLE_SECONDS (14.5) must be at least 1 s below "
        "ORDER_ACTIVITY_TIMEOUT_SECONDS" in str(err.value)
    )
    assert load_settings(
        balance_settle_seconds=3,
        order_activity_timeout_seconds=5,
        order_consistency_window_seconds=3,
    )  # which a 5 s attempt needs
    assert load_settings(balance_settle_seconds=3).balance_settle_seconds == 3


def test_the_stream_stall_and_the_poll_must_fit_in_the_price_age_limit():
    with pytest.raises(ConfigError, match=r"STREAM_STALL_SECONDS \(5.0\) must be below"):
        load_settings(stream_stall_seconds=5, max_price_age_seconds=5)
    with pytest.raises(ConfigError, match=r"must exceed twice MARKET_POLL_INTERVAL_S \(2.0\)"):
        load_settings(market_poll_interval_s=2, max_price_age_seconds=4, stream_stall_seconds=1)
    assert load_settings(stream_stall_seconds=4.5, max_price_age_seconds=5).stream_stall_seconds


def test_an_order_price_may_be_no_older_than_a_decisions():
    with pytest.raises(ConfigError, match=r"ORDER_PRICE_AGE_SECONDS \(6.0\) must not exceed"):
        load_settings(order_price_age_seconds=6, max_price_age_seconds=5)
    settings = load_settings(order_price_age_seconds=5, max_price_age_seconds=5)
    assert settings.order_price_age_seconds == 5
    assert load_settings(order_price_age_seconds=0).order_price_age_seconds == 0
