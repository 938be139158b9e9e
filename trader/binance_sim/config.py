"""Settings of one simulated Binance server (in-process or as a process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from trader.exchange.feed import PriceFeed


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """What the server trades on and how it behaves. Always bound to 127.0.0.1."""

    feed: PriceFeed
    """Mid prices: ``StaticFeed`` (set over ``POST /_sim/price``), ``GeneratedMarket``,
    ``ReplayFeed``. Its markets are the exchange's symbols (``BTC/USDT`` -> ``BTCUSDT``)."""
    data_dir: Path | None = None
    """Where ``orders.sqlite`` lives (a restart keeps orders and balances); None: a temporary
    directory removed when the server stops."""
    port: int = 0
    """0: any free port (read ``SimServer.url``)."""
    api_key: str = "sim-key"
    api_secret: str = "sim-secret"
    balances: dict[str, Decimal] = field(default_factory=dict)
    """Starting balances, applied only to a fresh data file."""
    fee_rate: Decimal = Decimal("0.001")
    fee_in_received_asset: bool = True
    """Binance charges a buy's commission in the asset bought."""
    spread_bps: Decimal = Decimal(10)
    depth_levels: int = 5
    level_liquidity_quote: Decimal = Decimal(50_000)
    """Quote value resting on each book level (smaller: more partial fills)."""
    rematch_interval_s: float = 0.2
    """Resting GTC orders are matched against the moving price this often (and on every
    order/account request)."""
    recv_window_ms: int = 5000
    """Binance's default ``recvWindow`` when the request sends none."""
