"""Binance's error responses: ``{"code": -2013, "msg": "Order does not exist."}``.

The codes and messages are Binance's own, because ccxt maps them to its exception classes
by exact code or message (``binance.exceptions``): -2013/-2011 -> OrderNotFound, -2010 ->
InvalidOrder (but the insufficient-balance *message* -> InsufficientFunds), -1013 with
LOT_SIZE/PRICE_FILTER in the body -> InvalidOrder (NOTIONAL -> BadRequest), -1121 ->
BadSymbol, -1021 -> InvalidNonce, -1022/-2014/-2015 -> AuthenticationError.
"""

from __future__ import annotations


class BinanceError(Exception):
    """An error answered as Binance does: HTTP ``status`` with a code/msg JSON body."""

    def __init__(self, code: int, msg: str, *, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def order_missing() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def unknown_order() -> BinanceError:
    """Cancel of an order that does not exist or is no longer open (filled, cancelled)."""
    return BinanceError(-2011, "Unknown order sent.")


def duplicate_order() -> BinanceError:
    return BinanceError(-2010, "Duplicate order sent.")


def insufficient_balance() -> BinanceError:
    return BinanceError(-2010, "Account has insufficient balance for requested action.")


def filter_failure(name: str) -> BinanceError:
    """``name``: PRICE_FILTER, LOT_SIZE or NOTIONAL."""
    return BinanceError(-1013, f"Filter failure: {name}")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def mandatory(param: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed."
    )


def bad_param(param: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{param}'.")


def bad_value(msg: str, code: int = -1104) -> BinanceError:
    return BinanceError(code, msg)
