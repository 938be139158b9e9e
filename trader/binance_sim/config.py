"""Settings of one simulated Binance server (in-process or as a process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

from trader.binance_sim.faults import FaultRule
from trader.exchange.feed import PriceFeed

Duplicates = Literal["while_open", "always"]


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
    duplicate_client_ids: Duplicates = "while_open"
    """``while_open``: a ``newClientOrderId`` is refused (-2010 "Duplicate order sent.") only
    while an order with it is open; once that order is final the id is accepted as a new
    order, as Binance does. ``always``: a client id names one order, ever."""
    lookup_lag_s: float = 0
    """Wall-clock seconds an order stays invisible to ``GET /api/v3/order`` (-2013) and to
    its cancel (-2011) after it was accepted, by ``orderId`` or ``origClientOrderId``."""
    list_lag_s: float = 0
    """The same for the lists (``openOrders``, ``allOrders``, ``myTrades``)."""
    fault_seed: int = 0
    """Seed of the draws of probabilistic fault rules (reproducible campaigns)."""
    faults: tuple[FaultRule, ...] = ()
    """Fault rules armed when the server starts."""
    stream_cadence_s: float = 0.1
    """How often the WebSocket streams look for a book that moved with time (generated and
    replayed feeds); a price set on a StaticFeed is pushed at once."""
    stream_idle_push_s: float = 1.0
    """A stream whose book did not change gets its state again this often."""
