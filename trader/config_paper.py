"""Settings of the paper exchange and its generated market (the ``[paper]`` TOML table,
env ``PAPER__<FIELD>``)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

#: Start prices of the markets the paper exchange lists by default.
DEFAULT_START_PRICES: dict[str, Decimal] = {
    "BTC/USDT": Decimal(65000),
    "ETH/USDT": Decimal(3200),
    "SOL/USDT": Decimal(150),
    "BNB/USDT": Decimal(600),
    "XRP/USDT": Decimal("0.60"),
    "ADA/USDT": Decimal("0.45"),
    "DOGE/USDT": Decimal("0.15"),
    "LTC/USDT": Decimal(80),
    "ETH/BTC": Decimal("0.052"),
    "XRP/ETH": Decimal("0.00019"),
}


class PaperSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    seed: int = 7
    """Seed of the generated market (same seed, same prices). Env PAPER__SEED."""
    tick_ms: int = Field(default=1000, gt=0)
    """One price step per this many milliseconds. Env PAPER__TICK_MS."""
    volatility_bps: Decimal = Field(default=Decimal(8), ge=0)
    """Standard deviation of one price step, basis points. Env PAPER__VOLATILITY_BPS."""
    jump_probability: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
    """Chance of a jump per step. Env PAPER__JUMP_PROBABILITY."""
    jump_bps: Decimal = Field(default=Decimal(150), ge=0)
    """Size of a jump (two of three are drops), basis points. Env PAPER__JUMP_BPS."""
    start_prices: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_START_PRICES))
    """Markets the paper exchange lists, with their start prices. Env PAPER__START_PRICES
    (JSON)."""
    quote_balance: Decimal = Field(default=Decimal(10000), gt=0)
    """Starting balance of every quote currency (set once per paper database).
    Env PAPER__QUOTE_BALANCE."""
    spread_bps: Decimal = Field(default=Decimal(10), ge=0)
    """Bid/ask spread of the simulated book, basis points. Env PAPER__SPREAD_BPS."""
    depth_levels: int = Field(default=5, gt=0)
    """Price levels per side of the simulated book. Env PAPER__DEPTH_LEVELS."""
    level_liquidity_quote: Decimal = Field(default=Decimal(50000), gt=0)
    """Quote value available at each book level. Env PAPER__LEVEL_LIQUIDITY_QUOTE."""
    fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    """Taker fee as a fraction (0.001 = 0.1 %). Env PAPER__FEE_RATE."""
    create_latency_s: float = Field(default=0, ge=0)
    """Fault injection: delay before an order is accepted. Env PAPER__CREATE_LATENCY_S."""
    accept_then_hang_s: float = Field(default=0, ge=0)
    """Fault injection: accept the order, then hang this long before answering (a lost
    response). Env PAPER__ACCEPT_THEN_HANG_S."""
    fail_creates: int = Field(default=0, ge=0)
    """Fault injection: the first N creates per process fail (retryable).
    Env PAPER__FAIL_CREATES."""
    max_fill_ratio: Decimal | None = Field(default=None, ge=0, le=1)
    """Fault injection: cap on the filled fraction of every order. Env PAPER__MAX_FILL_RATIO."""
