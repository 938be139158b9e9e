"""Choosing the exchange from the settings: paper, a ccxt id, dry-run; credentials stay in
the environment and out of every repr."""

from __future__ import annotations

import pytest

from trader.config import Settings, load_settings
from trader.core.errors import ConfigError
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.exchange.dry_run import DryRunExchange
from trader.exchange.paper import PaperExchange
from trader.runtime.exchange import build_exchange

KEY, SECRET = "kEy0123456789PUBLIC", "sEcReT0123456789PRIVATE"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_unknown_exchange_id_is_refused_with_the_choices():
    with pytest.raises(ConfigError) as err:
        load_settings(exchange="binanse")
    assert "EXCHANGE" in str(err.value) and "ccxt exchange id" in str(err.value)
    assert load_settings(exchange="kraken").exchange == "kraken"


def test_credentials_in_a_file_are_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'exchange = "binance"\nexchange_api_secret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "EXCHANGE_API_SECRET" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.parametrize(
    ("exchange", "global_trading", "kind", "simulated"),
    [
        ("paper", True, PaperExchange, True),
        ("binance", True, CcxtExchange, False),
        ("binance", False, DryRunExchange, True),
    ],
)
async def test_build_exchange(tmp_path, monkeypatch, exchange, global_trading, kind, simulated):
    monkeypatch.setenv("EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("EXCHANGE_API_SECRET", SECRET)
    settings = load_settings(
        exchange=exchange,
        global_trading=global_trading,
        data_dir=tmp_path,
        exchange_api_url="http://127.0.0.1:9",
    )
    ex = build_exchange(settings)
    try:
        assert type(ex) is kind and ex.simulated is simulated
        if isinstance(ex, DryRunExchange):  # public data only: it cannot sign an order
            live = ex.live
            assert isinstance(live, CcxtExchange)
            assert not live._secrets and not live._ex.apiKey and not live._ex.secret
        for text in (repr(ex), repr(settings), str(settings.redacted())):
            assert KEY not in text and SECRET not in text
    finally:
        await ex.close()


def test_sandbox_switches_to_the_testnet_and_a_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="EXCHANGE_API_URL"):
        CcxtExchange("binance", api_url="ftp://127.0.0.1")
    sandbox = CcxtExchange("binance", sandbox=True)._ex.urls["api"]["public"]
    assert sandbox.startswith("https://testnet.binance.vision")
    local = CcxtExchange("binance", sandbox=True, api_url="http://127.0.0.1:9/")
    assert local._ex.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
