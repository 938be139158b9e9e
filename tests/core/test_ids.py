from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from trader.core import ids

BINANCE_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,36}$")


@given(st.text(min_size=1, max_size=80), st.text(max_size=20), st.integers(0, 10**9))
def test_client_order_id_fits_exchange_limits_and_is_stable(wf_id, lineage, seq):
    first = ids.client_order_id(wf_id, lineage, seq)
    assert BINANCE_CLIENT_ID.match(first)
    assert ids.client_order_id(wf_id, lineage, seq) == first


def test_client_order_id_differs_by_sequence_lineage_and_workflow():
    base = ids.client_order_id("trader:paper:BTC-USDT", "18c", 1)
    assert base != ids.client_order_id("trader:paper:BTC-USDT", "18c", 2)
    assert base != ids.client_order_id("trader:paper:BTC-USDT", "18d", 1)
    assert base != ids.client_order_id("trader:paper:ETH-USDT", "18c", 1)


def test_decision_and_workflow_ids_are_readable():
    assert ids.workflow_id_for("paper", "BTC/USDT") == "trader:paper:BTC-USDT"
    assert ids.decision_id("BTC/USDT", "18c", 7) == "BTC-USDT:18c:7"


def test_symbol_validation():
    assert ids.is_valid_symbol("BTC/USDT")
    assert ids.is_valid_symbol("1INCH/USDT")
    for bad in ("btc/usdt", "BTCUSDT", "BTC/", "/USDT", "BTC/USDT/X", "BTC-USDT", ""):
        assert not ids.is_valid_symbol(bad)
