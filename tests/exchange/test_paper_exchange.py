"""The paper exchange: matching, partial fills, fees and balances, duplicate client ids,
persistence across processes, and fault injection."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.markets import BTC_USDT as BTC
from trader.core import errors
from trader.core.market import OrderRequest, OrderSide, OrderType, TimeInForce
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange, PaperFaults


def make(
    tmp_path: Path,
    *,
    price: str = "100",
    faults: PaperFaults | None = None,
    clock: Callable[[], int] | None = None,
    liquidity: str = "50000",
) -> tuple[PaperExchange, StaticFeed]:
    feed = StaticFeed({"BTC/USDT": BTC})
    feed.set_price("BTC/USDT", D(price))
    ex = PaperExchange(
        feed,
        db_path=tmp_path / "paper.sqlite",
        quote_balances={"USDT": D("10000")},
        spread_bps=D(10),
        level_liquidity_quote=D(liquidity),
        fee_rate=D("0.001"),
        faults=faults,
        clock=clock or (lambda: 1_000),
    )
    return ex, feed


def req(
    cid: str,
    side: OrderSide = OrderSide.BUY,
    amount: str = "1",
    price: str | None = "100.10",
    tif: TimeInForce = TimeInForce.IOC,
    type_: OrderType = OrderType.LIMIT,
) -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side=side,
        type=type_,
        amount=D(amount),
        price=D(price) if price else None,
        time_in_force=tif,
        client_order_id=cid,
    )


async def test_book_is_derived_from_the_feed(tmp_path):
    ex, _ = make(tmp_path)
    t = (await ex.fetch_tickers(["BTC/USDT"]))["BTC/USDT"]
    assert (t.bid, t.ask, t.last) == (D("99.95"), D("100.05"), D("100"))


async def test_ioc_buy_fills_and_moves_balances_with_fees(tmp_path):
    ex, _ = make(tmp_path)
    order = await ex.create_order(req("c1"))
    assert order.status.value == "closed" and order.filled == D(1)
    assert order.average == D("100.05") and order.fee == D("0.10005")
    balances = await ex.fetch_balance()
    assert balances["USDT"] == D("10000") - D("100.05") - D("0.10005")
    assert balances["BTC"] == D(1)
    sell = await ex.create_order(req("c2", OrderSide.SELL, price="99.95"))
    assert sell.filled == D(1) and sell.average == D("99.95")
    assert (await ex.fetch_balance())["BTC"] == 0


async def test_limited_liquidity_walks_the_book_then_ioc_cancels_the_rest(tmp_path):
    ex, _ = make(tmp_path, liquidity="200")  # ~2 BTC per level
    order = await ex.create_order(req("c1", amount="5", price="100.09"))  # crosses 3 levels
    assert order.status.value == "canceled" and D(0) < order.filled < D(5)
    assert order.average is not None
    assert order.average > D("100.05")  # paid up through the levels


async def test_max_fill_ratio_forces_partial_fills(tmp_path):
    ex, _ = make(tmp_path, faults=PaperFaults(max_fill_ratio=D("0.5")))
    order = await ex.create_order(req("c1", amount="1"))
    assert order.status.value == "canceled" and order.filled == D("0.5")


async def test_gtc_rests_then_fills_when_the_price_comes(tmp_path):
    ex, feed = make(tmp_path)
    order = await ex.create_order(req("g1", price="99.00", tif=TimeInForce.GTC))
    assert order.status.value == "open" and order.filled == 0
    assert [o.client_order_id for o in await ex.fetch_open_orders("BTC/USDT")] == ["g1"]
    feed.set_price("BTC/USDT", D("98.90"))  # ask 98.95 <= limit 99
    filled = await ex.fetch_order("BTC/USDT", "g1")
    assert filled.status.value == "closed" and filled.average == D("98.95")
    assert await ex.fetch_open_orders("BTC/USDT") == []


async def test_cancel_keeps_a_partial_fill(tmp_path):
    ex, _ = make(tmp_path, faults=PaperFaults(max_fill_ratio=D("0.3")))
    await ex.create_order(req("g1", amount="1", tif=TimeInForce.GTC))
    cancelled = await ex.cancel_order("BTC/USDT", "g1")
    assert cancelled.status.value == "canceled" and cancelled.filled == D("0.3")
    again = await ex.cancel_order("BTC/USDT", "g1")  # idempotent
    assert again == cancelled


async def test_market_order(tmp_path):
    ex, _ = make(tmp_path)
    order = await ex.create_order(req("m1", price=None, type_=OrderType.MARKET))
    assert order.filled == D(1) and order.average == D("100.05")


async def test_duplicate_client_id_is_rejected_even_from_another_process(tmp_path):
    ex, _ = make(tmp_path)
    await ex.create_order(req("dup"))
    other, _ = make(tmp_path)  # a second instance on the same file: another worker
    with pytest.raises(errors.DuplicateClientOrderId):
        await other.create_order(req("dup"))
    assert len(other.all_orders()) == 1
    found = await other.fetch_order("BTC/USDT", "dup")
    assert found.filled == D(1)


async def test_concurrent_creates_of_one_id_yield_one_order(tmp_path):
    exchanges = [make(tmp_path)[0] for _ in range(4)]
    # One thread per instance: the creates really overlap (in one event loop they would run
    # one after another, create_order never yielding).
    results = await asyncio.gather(
        *(asyncio.to_thread(asyncio.run, e.create_order(req("same"))) for e in exchanges),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(
        isinstance(r, errors.DuplicateClientOrderId) for r in results if isinstance(r, Exception)
    )


async def test_with_reuse_a_final_order_s_client_id_is_taken_again_an_open_one_never(tmp_path):
    ex, _ = make(tmp_path)
    ex.reuse_final_client_ids = True  # the Binance simulator's store
    first = await ex.create_order(req("re"))  # IOC: final at once
    second = await ex.create_order(req("re"))
    assert first.id != second.id and first.is_final and second.is_final
    assert (await ex.fetch_order("BTC/USDT", "re")).id == second.id  # the newest
    assert (await ex.fetch_order("BTC/USDT", "re", order_id=first.id)) == first
    assert [f.order_id for f in ex.fills(client_order_id="re")] == [first.id, second.id]
    rest = await ex.create_order(req("gtc", price="90", tif=TimeInForce.GTC))
    with pytest.raises(errors.DuplicateClientOrderId):
        await ex.create_order(req("gtc"))
    await ex.cancel_order("BTC/USDT", "gtc")
    assert (await ex.create_order(req("gtc"))).id != rest.id
    recent = await ex.fetch_recent_orders("BTC/USDT", since_ms=0)
    assert [(o.client_order_id, o.id) for o in recent] == [
        (o.client_order_id, o.id) for o in ex.all_orders()
    ]
    assert await ex.fetch_recent_orders("BTC/USDT", since_ms=1_001) == []
    strict, _ = make(tmp_path)  # paper mode on the same file: one order per id, ever
    with pytest.raises(errors.DuplicateClientOrderId):
        await strict.create_order(req("re"))


async def test_a_paper_file_from_before_repeated_ids_keeps_working(tmp_path):
    # The schema as it was: client ids UNIQUE, no index on the id inside the order.
    with sqlite3.connect(tmp_path / "paper.sqlite") as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE balances (currency TEXT PRIMARY KEY, amount TEXT NOT NULL);
            CREATE TABLE orders (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                client_order_id TEXT NOT NULL UNIQUE, symbol TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE fills (id INTEGER PRIMARY KEY AUTOINCREMENT,
                client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, body TEXT NOT NULL);
            CREATE INDEX fills_by_order ON fills (client_order_id);
            INSERT INTO balances VALUES ('USDT', '10000');""")
        old = (
            '{"id":"1","client_order_id":"old","symbol":"BTC/USDT","side":"buy",'
            '"type":"limit","time_in_force":"IOC","amount":"1","price":"100.10",'
            '"filled":"0","average":null,"fee":"0","fee_base":"0","status":"canceled",'
            '"ts_ms":900}'
        )
        db.execute(
            "INSERT INTO orders (client_order_id, symbol, body) VALUES (?, ?, ?)",
            ("old", "BTC/USDT", old),
        )
    ex, _ = make(tmp_path)
    assert (await ex.fetch_order("BTC/USDT", "old")).ts_ms == 900
    with pytest.raises(errors.DuplicateClientOrderId):
        await ex.create_order(req("old"))
    assert (await ex.create_order(req("new"))).id == "2"
    ex.reuse_final_client_ids = True
    again = await ex.create_order(req("old"))
    assert again.id == "3" and ex.lookup("old") == again
    assert [o.id for o in ex.orders_with_client_id("old")] == ["1", "3"]


async def test_state_and_balances_survive_reopening(tmp_path):
    ex, _ = make(tmp_path)
    await ex.create_order(req("c1"))
    await ex.close()
    reopened, _ = make(tmp_path)
    assert (await reopened.fetch_balance())["BTC"] == D(1)  # starting balances not re-applied
    assert [o.client_order_id for o in reopened.all_orders()] == ["c1"]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (req("a", amount="0.00005"), errors.InvalidOrder),  # below min amount / step
        (req("b", amount="0.04"), errors.InvalidOrder),  # 4 USDT < min cost 5
        (req("c", price="100.001"), errors.InvalidOrder),  # off tick
        (req("d", amount="200"), errors.InsufficientFunds),
        (req("e", OrderSide.SELL), errors.InsufficientFunds),
    ],
)
async def test_rejections(tmp_path, request_, error):
    ex, _ = make(tmp_path)
    with pytest.raises(error):
        await ex.create_order(request_)
    assert ex.all_orders() == []


async def test_unknown_symbol_and_unknown_order(tmp_path):
    ex, _ = make(tmp_path)
    with pytest.raises(errors.BadSymbol):
        await ex.fetch_tickers(["NOPE/USDT"])
    with pytest.raises(errors.OrderNotFound):
        await ex.fetch_order("BTC/USDT", "missing")


async def test_fault_injection(tmp_path):
    ex, _ = make(tmp_path, faults=PaperFaults(fail_creates=2))
    for _ in range(2):
        with pytest.raises(errors.RetryableExchangeError):
            await ex.create_order(req("f1"))
    assert (await ex.create_order(req("f1"))).filled == D(1)

    ex2, _ = make(tmp_path / "x", faults=PaperFaults(reject_creates_with="InvalidOrder"))
    with pytest.raises(errors.InvalidOrder):
        await ex2.create_order(req("r1"))

    ex3, _ = make(tmp_path / "y", faults=PaperFaults(accept_then_hang_s=5))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ex3.create_order(req("h1")), timeout=0.5)
    # The response was lost, but the order exists: a lookup finds it.
    assert (await ex3.fetch_order("BTC/USDT", "h1")).filled == D(1)


def make_binance_fees(tmp_path, *, liquidity="50000"):
    feed = StaticFeed({"BTC/USDT": BTC})
    feed.set_price("BTC/USDT", D("100"))
    ex = PaperExchange(
        feed,
        db_path=tmp_path / "paper.sqlite",
        quote_balances={"USDT": D("10000")},
        spread_bps=D(10),
        level_liquidity_quote=D(liquidity),
        fee_rate=D("0.001"),
        clock=lambda: 1_000,
        fee_in_received_asset=True,
    )
    return ex, feed


async def test_fee_in_received_asset_withholds_base_on_buys_and_quote_on_sells(tmp_path):
    ex, _ = make_binance_fees(tmp_path)
    buy = await ex.create_order(req("b1"))
    assert buy.filled == D(1) and buy.fee_base == D("0.001")
    assert buy.fee == D("0.001") * D("100.05")  # its quote value, for PnL
    balances = await ex.fetch_balance()
    assert balances["BTC"] == D("0.999")
    assert balances["USDT"] == D("10000") - D("100.05")  # the quote pays the cost only
    [fill] = ex.fills()
    assert (fill.amount, fill.fee, fill.fee_currency) == (D(1), D("0.001"), "BTC")
    sell = await ex.create_order(req("s1", OrderSide.SELL, amount="0.999", price="99.95"))
    assert sell.fee_base == 0 and sell.fee == D("0.999") * D("99.95") * D("0.001")
    assert ex.fills()[-1].fee_currency == "USDT"
    assert (await ex.fetch_balance())["BTC"] == 0


async def test_fee_in_received_asset_needs_no_quote_for_the_fee(tmp_path):
    ex, _ = make_binance_fees(tmp_path)
    # 99.9 BTC at a limit of 100.10 needs 9999.99 USDT, 10009.99 with a fee in quote.
    order = await ex.create_order(req("all-in", amount="99.9", price="100.10"))
    assert order.filled == D("99.9")
    plain, _ = make(tmp_path / "plain")
    with pytest.raises(errors.InsufficientFunds):
        await plain.create_order(req("all-in", amount="99.9", price="100.10"))


async def test_one_fill_per_book_level_with_its_own_commission(tmp_path):
    ex, _ = make_binance_fees(tmp_path, liquidity="200")  # ~2 BTC per level
    order = await ex.create_order(req("w1", amount="5", price="100.09"))
    fills = ex.fills("BTC/USDT")
    assert len(fills) >= 2 and len({f.price for f in fills}) == len(fills)
    assert sum(f.amount for f in fills) == order.filled
    assert sum(f.fee for f in fills) == order.fee_base
    assert sum(f.amount * f.price for f in fills) == order.cost
    assert {f.client_order_id for f in fills} == {"w1"}


async def test_refresh_open_orders_fills_gtc_orders_of_every_symbol(tmp_path):
    ex, feed = make(tmp_path)
    await ex.create_order(req("g1", price="99.00", tif=TimeInForce.GTC))
    assert [o.client_order_id for o in await ex.refresh_open_orders()] == ["g1"]
    feed.set_price("BTC/USDT", D("98.90"))
    assert await ex.refresh_open_orders() == []
    assert (await ex.fetch_order("BTC/USDT", "g1")).status.value == "closed"


async def test_market_buy_beyond_the_first_level_cannot_overdraw_the_quote(tmp_path):
    # ~2 BTC per level: 3 BTC at market walk up to the second level, so the touch price
    # (what 3 BTC "cost" at the ask) understates what the order really spends.
    ex, _ = make(tmp_path, liquidity="200")
    ex.set_balance("USDT", D(3) * D("100.05") * D("1.001"))  # enough at the touch only
    with pytest.raises(errors.InsufficientFunds):
        await ex.create_order(req("m1", amount="3", price=None, type_=OrderType.MARKET))
    assert (await ex.fetch_balance())["USDT"] >= 0 and ex.all_orders() == []


async def test_a_fill_by_another_process_during_a_cancel_is_not_overwritten(tmp_path):
    ex, _ = make(tmp_path)
    await ex.create_order(req("g1", price="99.00", tif=TimeInForce.GTC))
    other, other_feed = make(tmp_path)  # another worker on the same file
    other_feed.set_price("BTC/USDT", D("98.90"))  # it sees the price come to the limit
    opened = ex._store.transaction
    calls = 0

    def interleaved():  # the other worker re-matches between any two of ex's transactions
        nonlocal calls
        calls += 1
        if calls > 1:
            other._refresh("BTC/USDT", "g1")
        return opened()

    ex._store.transaction = interleaved  # type: ignore[method-assign]  # the race, injected
    order = await ex.cancel_order("BTC/USDT", "g1")
    stored = await other.fetch_order("BTC/USDT", "g1")
    filled = sum((f.amount for f in other.fills(client_order_id="g1")), D(0))
    assert order.filled == stored.filled == filled
    assert (await other.fetch_balance()).get("BTC", D(0)) == filled


async def test_re_matching_an_order_the_price_has_not_reached_writes_nothing(tmp_path):
    ex, feed = make(tmp_path)
    await ex.create_order(req("g1", price="99.00", tif=TimeInForce.GTC))
    writes = ex._store._conn.total_changes
    for _ in range(3):  # what the simulator does several times a second
        assert [o.client_order_id for o in await ex.refresh_open_orders()] == ["g1"]
    assert ex._store._conn.total_changes == writes
    feed.set_price("BTC/USDT", D("98.90"))
    assert await ex.refresh_open_orders() == []
    assert ex._store._conn.total_changes > writes


async def test_resting_orders_hold_what_they_may_still_spend(tmp_path):
    ex, feed = make(tmp_path)
    ex.set_balance("BTC", D(1))
    await ex.create_order(req("s1", OrderSide.SELL, price="101.00", tif=TimeInForce.GTC))
    with pytest.raises(errors.InsufficientFunds):  # the 1 BTC is s1's until it fills
        await ex.create_order(req("s2", OrderSide.SELL, price="101.00", tif=TimeInForce.GTC))
    await ex.create_order(req("b1", price="90.00", amount="100", tif=TimeInForce.GTC))
    with pytest.raises(errors.InsufficientFunds):  # 9009 of the 10000 USDT are b1's
        await ex.create_order(req("b2", price="90.00", amount="12", tif=TimeInForce.GTC))
    feed.set_price("BTC/USDT", D("102"))
    assert [o.client_order_id for o in await ex.refresh_open_orders()] == ["b1"]
    balances = await ex.fetch_balance()
    assert balances["BTC"] == 0 and balances["USDT"] > D(10000)
