"""The phase -> handler tables of SymbolTrader: every phase has exactly one handler, and a
run decided as old (before the exchange-reality patch) takes the verbatim old handlers for
exactly the phases it took them for before the tables existed."""

from __future__ import annotations

import ast
import inspect
from decimal import Decimal
from pathlib import Path
from types import MethodType

import pytest

from trader import contracts as c
from trader.core.params import TraderParams
from trader.core.phases import Phase
from workflows import symbol_trader
from workflows.before_reality import BeforeReality
from workflows.symbol_trader import BEFORE_REALITY_HANDLERS, HANDLERS, SymbolTrader


def _literal_keys(table: str) -> list[str]:
    """The keys of the dict literal assigned to ``table``, as written in the source (a key
    written twice would silently drop a handler from the dict itself)."""
    tree = ast.parse(Path(symbol_trader.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == table:
            assert isinstance(node.value, ast.Dict)
            return [ast.unparse(k) for k in node.value.keys if k is not None]
    raise AssertionError(f"no {table} = {{...}} in {symbol_trader.__file__}")


def test_every_phase_has_exactly_one_handler():
    keys = _literal_keys("HANDLERS")
    assert len(keys) == len(set(keys)), "a phase is listed twice"
    assert set(HANDLERS) == set(Phase)
    assert len(set(HANDLERS.values())) == len(HANDLERS), "one handler serves two phases"


@pytest.mark.parametrize(("phase", "name"), HANDLERS.items(), ids=str)
def test_every_handler_is_an_async_method_of_the_workflow(phase, name):
    assert inspect.iscoroutinefunction(getattr(SymbolTrader, name)), (phase, name)


def test_old_runs_take_the_before_reality_handlers_for_the_same_phases_as_before():
    keys = _literal_keys("BEFORE_REALITY_HANDLERS")
    assert len(keys) == len(set(keys))
    assert BEFORE_REALITY_HANDLERS == {
        Phase.PLACE_SELL: "_place_sell_v1",
        Phase.WAIT_SELL_FILL: "_wait_sell_fill_v1",
        Phase.POST_TRADE: "_post_trade_v1",
        Phase.ERROR: "_error_v1",
    }
    for name in BEFORE_REALITY_HANDLERS.values():
        assert inspect.iscoroutinefunction(vars(BeforeReality)[name]), name


def _trader(v2: bool) -> SymbolTrader:
    params = TraderParams(exchange="paper", trade_budget=Decimal("100"), max_trades=1)
    t = SymbolTrader(
        c.TraderInput(symbol="BTC/USDT", params=params, portfolio_id="p", watch_task_queue="w")
    )
    t._v2 = v2
    return t


@pytest.mark.parametrize("phase", Phase, ids=str)
def test_the_loop_dispatches_by_the_tables(phase):
    new, old = _trader(v2=True), _trader(v2=False)
    handler, old_handler = new._handler(phase), old._handler(phase)
    assert isinstance(handler, MethodType) and isinstance(old_handler, MethodType)  # bound
    assert handler.__func__ is getattr(SymbolTrader, HANDLERS[phase])
    expected = BEFORE_REALITY_HANDLERS.get(phase, HANDLERS[phase])
    assert old_handler.__func__ is getattr(SymbolTrader, expected)
