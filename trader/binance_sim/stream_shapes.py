"""Binance's WebSocket market-stream names and frames (spot), rendered from ``Decimal``.

Stream names as Binance spells them: ``btcusdt@bookTicker``, ``btcusdt@ticker``,
``btcusdt@miniTicker``, ``!ticker@arr``, ``!miniTicker@arr`` (the symbol part lower case).
Frames carry the fields ccxt.pro's ``handle_bids_asks`` / ``handle_tickers`` read
(``ccxt/pro/binance.py``): a book ticker has no event type or time, as on Binance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from trader.binance_sim.shapes import Json, market_id, num

ALL_TICKERS = ("!ticker@arr", "!miniTicker@arr")
_STREAM = re.compile(r"([a-z0-9]+)@(bookTicker|ticker|miniTicker)")


@dataclass(frozen=True)
class Snapshot:
    """One symbol's top of book and 24 h figures at one instant."""

    symbol: str
    bid: tuple[Decimal, Decimal]
    ask: tuple[Decimal, Decimal]
    last: Decimal
    open_: Decimal
    quote_volume: Decimal
    now_ms: int


def parse_stream(name: str, ids: dict[str, str]) -> tuple[str | None, str] | None:
    """``(unified symbol or None for an all-market stream, kind)``; None if unknown.
    ``ids``: lower-case market id -> unified symbol."""
    if name in ALL_TICKERS:
        return None, name
    m = _STREAM.fullmatch(name)
    if m is None or m.group(1) not in ids:
        return None
    return ids[m.group(1)], m.group(2)


def stream_name(symbol: str, kind: str) -> str:
    return f"{market_id(symbol).lower()}@{kind}"


def book_ticker(s: Snapshot, update_id: int) -> Json:
    return {
        "u": update_id,
        "s": market_id(s.symbol),
        "b": num(s.bid[0]),
        "B": num(s.bid[1]),
        "a": num(s.ask[0]),
        "A": num(s.ask[1]),
    }


def ticker(s: Snapshot) -> Json:
    """A ``24hrTicker`` event (the ``@ticker`` and ``!ticker@arr`` streams)."""
    change = s.last - s.open_
    return {
        "e": "24hrTicker",
        "E": s.now_ms,
        "s": market_id(s.symbol),
        "p": num(change),
        "P": f"{(change / s.open_ * 100 if s.open_ else Decimal(0)):.3f}",
        "w": num((s.open_ + s.last) / 2),
        "x": num(s.open_),
        "c": num(s.last),
        "Q": num(0),
        "b": num(s.bid[0]),
        "B": num(s.bid[1]),
        "a": num(s.ask[0]),
        "A": num(s.ask[1]),
        "o": num(s.open_),
        "h": num(max(s.open_, s.last)),
        "l": num(min(s.open_, s.last)),
        "v": num((s.quote_volume / s.last).quantize(Decimal("1e-8")) if s.last else 0),
        "q": num(s.quote_volume),
        "O": s.now_ms - 86_400_000,
        "C": s.now_ms,
        "F": 0,
        "L": 0,
        "n": 0,
    }


def mini_ticker(s: Snapshot) -> Json:
    """A ``24hrMiniTicker`` event (ccxt's default for ``watch_tickers``)."""
    full = ticker(s)
    return {"e": "24hrMiniTicker", **{k: full[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}}


def frame(kind: str, s: Snapshot, update_id: int) -> Json:
    if kind == "bookTicker":
        return book_ticker(s, update_id)
    return ticker(s) if kind == "ticker" else mini_ticker(s)
