"""Value types for markets, prices and orders, shared by the core, the exchanges and the
workflows. Money is ``Decimal`` everywhere; no float ever touches a price or an amount.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict


class OrderSide(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"


class OrderStatus(str, Enum):
    OPEN = "open"
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"  # cancelled or expired (IOC remainder); may carry a partial fill
    REJECTED = "rejected"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarketInfo(_Value):
    """Precision and limits of one market, as the exchange reports them."""

    symbol: str
    """Unified symbol, e.g. ``BTC/USDT``."""
    base: str
    quote: str
    price_tick: Decimal
    """Smallest price increment."""
    amount_step: Decimal
    """Smallest amount increment."""
    min_amount: Decimal = Decimal(0)
    """Smallest order amount in base currency."""
    min_cost: Decimal = Decimal(0)
    """Smallest order value in quote currency."""
    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")


class Ticker(_Value):
    """Top of book and 24 h volume of one market at one instant."""

    symbol: str
    ts_ms: int
    bid: Decimal
    ask: Decimal
    last: Decimal
    quote_volume: Decimal = Decimal(0)
    """24 h traded volume in quote currency."""

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


class Candle(_Value):
    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)


class OrderRequest(_Value):
    """An order to place. ``client_order_id`` is the idempotency key."""

    symbol: str
    side: OrderSide
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str


class Balance(_Value):
    """One currency on the account."""

    free: Decimal
    """Available for new orders."""
    total: Decimal
    """Free plus what open orders hold."""


class Order(_Value):
    """An order as the exchange knows it."""

    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    amount: Decimal
    price: Decimal | None = None
    filled: Decimal = Decimal(0)
    average: Decimal | None = None
    """Average fill price, when anything filled."""
    fee: Decimal = Decimal(0)
    """All fees of the order, valued in quote currency (for PnL)."""
    fee_base: Decimal = Decimal(0)
    """Part of the fee withheld from the base amount received: exchanges such as Binance
    charge a buy's commission in the asset bought, so the account holds ``filled -
    fee_base``. Its quote value (``fee_base * average``) is included in ``fee``."""
    status: OrderStatus
    ts_ms: int = 0

    @property
    def is_final(self) -> bool:
        return self.status is not OrderStatus.OPEN

    @property
    def cost(self) -> Decimal:
        """Quote value of what filled."""
        return (self.average or Decimal(0)) * self.filled

    @property
    def fee_base_value(self) -> Decimal:
        """Quote value of the fee withheld in base currency."""
        return (self.average or Decimal(0)) * self.fee_base
