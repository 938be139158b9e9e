"""Binance's request signing, checked as Binance checks it.

Signed endpoints need the ``X-MBX-APIKEY`` header and ``timestamp`` + ``signature``, where the
signature is HMAC-SHA256 (hex) of the query string followed by the form body, everything
before ``&signature=``. ``timestamp`` must lie within ``recvWindow`` before the server time
and no more than 1 s after it; ``recvWindow`` is at most 60000 (-1131).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from trader.binance_sim.errors import BinanceError


def _unsigned(raw: str) -> tuple[str, str | None]:
    """(the signed payload, the signature) of ``a=1&b=2&signature=abc``."""
    parts = raw.split("&") if raw else []
    kept = [p for p in parts if not p.startswith("signature=")]
    sigs = [p.split("=", 1)[1] for p in parts if p.startswith("signature=")]
    return "&".join(kept), (sigs[-1] if sigs else None)


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def check(
    *,
    headers: Mapping[str, str],
    query: str,
    body: str,
    params: Mapping[str, str],
    api_key: str,
    secret: str,
    now_ms: int,
    default_recv_window: int,
) -> None:
    """Raise the ``BinanceError`` Binance would answer, or return for a good request."""
    key = headers.get("X-MBX-APIKEY")
    if not key:
        raise BinanceError(-2014, "API-key format invalid.", status=401)
    if key != api_key:
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    q_payload, q_sig = _unsigned(query)
    b_payload, b_sig = _unsigned(body)
    signature = b_sig or q_sig
    if "timestamp" not in params:
        raise BinanceError(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    if signature is None:
        raise BinanceError(
            -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        )
    expected = hmac.new(
        secret.encode(), (q_payload + b_payload).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    timestamp = _int(params["timestamp"], "timestamp")
    recv_window = _int(params.get("recvWindow", str(default_recv_window)), "recvWindow")
    if recv_window > 60_000:
        raise BinanceError(-1131, "recvWindow must be less than 60000")
    if timestamp >= now_ms + 1000 or now_ms - timestamp > recv_window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
