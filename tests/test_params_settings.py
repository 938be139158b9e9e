"""Every trading parameter is declared once (TraderParams) and is a setting derived from it.

Each field is set through the environment and through TOML, and a value outside its
constraint is refused by the settings (a ConfigError naming it) and by TraderParams itself.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from decimal import Decimal
from enum import Enum
from typing import Any

import annotated_types as at
import pytest
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from trader import config
from trader.config import Settings, load_settings, setting_name
from trader.config_docs import toml_value
from trader.core.errors import ConfigError
from trader.core.params import TraderParams

PARAMS = list(TraderParams.model_fields)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def _bounds(field: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for m in field.metadata:
        for kind in ("gt", "ge", "lt", "le"):
            if isinstance(m, getattr(at, kind.capitalize())):
                found[kind] = getattr(m, kind)
    return found


def _good(name: str) -> Any:
    """A valid value other than the default."""
    field = TraderParams.model_fields[name]
    default = field.default
    if isinstance(default, bool):
        return not default
    if isinstance(default, Enum):
        return next(m for m in type(default) if m != default)
    if name == "exchange":
        return "binance"
    if isinstance(default, tuple):
        return (Decimal(1), Decimal(2))
    if isinstance(default, dict):  # per quote currency
        return {"BTC": Decimal("0.002")}
    b = _bounds(field)
    value = default + 1
    if ("lt" in b and value >= b["lt"]) or ("le" in b and value > b["le"]):
        value = default / 2
    return type(default)(value)


def _bad(name: str) -> Any:
    """A value the field refuses: past its bound, or of the wrong kind."""
    field = TraderParams.model_fields[name]
    b = _bounds(field)
    if "ge" in b:
        return b["ge"] - 1
    if "gt" in b:
        return b["gt"]
    if "lt" in b:
        return b["lt"]
    if "le" in b:
        return b["le"] + 1
    if isinstance(field.default, tuple):
        return ["x"]
    if isinstance(field.default, dict):
        return {"BTC": "-1"}
    return "not-a-value"


def _env(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps({k: str(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("name", PARAMS)
def test_every_parameter_is_set_by_env_and_toml(name, monkeypatch, tmp_path):
    key = setting_name(name)
    value = _good(name)
    assert value != TraderParams.model_fields[name].default
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{key} = {toml_value(value)}\n")
    assert getattr(load_settings(cfg).trader_params(), name) == value
    monkeypatch.setenv(key.upper(), _env(value))
    assert getattr(load_settings().trader_params(), name) == value


def _names(message: str, key: str) -> bool:
    """The error names the setting (env name, then TOML key), or its element: a budget
    of one quote currency is ``QUOTE_BUDGETS__BTC (quote_budgets.BTC)``."""
    return re.search(rf"{key.upper()}(__\w+)? \({key}[.)]", message) is not None


@pytest.mark.parametrize("name", PARAMS)
def test_every_constraint_is_enforced_by_settings_and_params(name, monkeypatch, tmp_path):
    key = setting_name(name)
    bad = _bad(name)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"{key} = {toml_value(bad)}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert _names(str(err.value), key)
    monkeypatch.setenv(key.upper(), _env(bad))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert _names(str(err.value), key)
    if name != "exchange":  # which ids exist is the edge's knowledge (ccxt), not the core's
        with pytest.raises(ValidationError, match=name):
            TraderParams.model_validate({name: bad})


@pytest.mark.parametrize("name", PARAMS)
def test_each_setting_is_the_parameter_s_own_declaration(name):
    param, setting = TraderParams.model_fields[name], Settings.model_fields[setting_name(name)]
    assert setting.annotation == param.annotation
    assert setting.default == param.default
    assert setting.description == param.description and param.description
    assert setting.metadata == param.metadata
    assert setting.json_schema_extra == param.json_schema_extra


def test_no_trading_field_is_declared_in_the_settings_class():
    trading = {setting_name(n) for n in PARAMS} | set(PARAMS)
    tree = ast.parse(inspect.getsource(config))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    declared = {
        n.target.id
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    assert declared, "Settings declares its own (edge) fields"
    assert not declared & trading
    assert not set(Settings.__annotations__) & trading


def test_default_settings_give_the_default_parameters():
    assert load_settings().trader_params() == TraderParams()
