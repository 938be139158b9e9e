"""Trading parameters handed to each SymbolTrader workflow.

These are plain values built once from the settings at the edge (``trader.config``); the
workflow never reads the environment and never sees a secret.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class AnchorMode(str, Enum):
    """What the drop trigger measures the drop from."""

    PEAK = "peak"
    """The highest price since the anchor was last reset (ratchets up, never down)."""
    FIXED = "fixed"
    """The price when the anchor was reset (warm-up, or the end of a cooldown)."""
    WINDOW = "window"
    """The highest price of the last ``drop_lookback_seconds`` (a rolling high)."""


class BuyOrderMode(str, Enum):
    IOC = "ioc"
    GTC = "gtc"
    MARKET = "market"


class TraderParams(BaseModel):
    """Everything a SymbolTrader needs to decide, as plain values (no secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = "paper"
    trade_budget: Decimal = Decimal("100")
    """Quote currency spent per entry."""
    max_trades: int = 3
    # --- entry -----------------------------------------------------------------------
    drop_trigger_pct: Decimal = Decimal("2")
    """Buy when the price is this many percent below the anchor."""
    use_drop_anchor: bool = False
    """Keep the anchor across trades and across a stop and start: the next entry after a
    cooldown is measured from the same anchor. False: a fresh anchor (per ``anchor_mode``)
    at warm-up and after every cooldown."""
    anchor_mode: AnchorMode = AnchorMode.PEAK
    drop_lookback_seconds: int = 3600
    backfill_minutes: int = 60
    # --- guards ----------------------------------------------------------------------
    max_spread_bps: Decimal = Decimal("50")
    min_quote_volume: Decimal = Decimal("0")
    sma_guard_period: int = 0
    """Require price above the SMA of this many ticks; 0 disables the guard."""
    # --- exits -----------------------------------------------------------------------
    take_profit_pct: Decimal = Decimal("3")
    stop_loss_pct: Decimal = Decimal("2")
    trailing_enabled: bool = True
    trailing_activation_pct: Decimal = Decimal("1")
    trailing_distance_pct: Decimal = Decimal("0.5")
    max_hold_minutes: Decimal = Decimal("60")
    # --- orders ----------------------------------------------------------------------
    buy_order_mode: BuyOrderMode = BuyOrderMode.IOC
    buy_limit_offset_bps: Decimal = Decimal("10")
    """IOC/GTC buys are priced this far above the ask, so they cross."""
    sell_ladder_bps: tuple[Decimal, ...] = (Decimal(0), Decimal(10), Decimal(25), Decimal(50))
    """IOC sell prices below the bid, one step per attempt; past the last step: market."""
    sell_fill_threshold: Decimal = Decimal("0.95")
    buy_order_timeout_seconds: float = 30
    sell_order_timeout_seconds: float = 20
    cooldown_minutes: Decimal = Decimal("15")
    # --- errors and retries ----------------------------------------------------------
    fsm_max_retries: int = 5
    fsm_backoff_base_seconds: float = 10
    fsm_backoff_max_seconds: float = 300
    order_activity_timeout_seconds: float = 15
    order_consistency_window_seconds: float = Field(default=5, ge=0)
    """An order the exchange does not find counts as never placed only this long after it
    was sent: order queries can miss a fresh order for a moment."""
    balance_settle_seconds: float = Field(default=3, ge=0)
    """A base balance below what the symbol holds is read again this long before it counts
    as a shortfall (an exchange's balance can lag a fresh fill)."""
    # --- watching and history --------------------------------------------------------
    watch_checkpoint_seconds: float = 60
    watch_heartbeat_timeout_seconds: float = 20
    phase_history_limit: int = Field(default=50, ge=1)
    continue_as_new_after_transitions: int = Field(default=1000, ge=10)
    global_trading: bool = True
    """False: orders are simulated (dry-run); marked as such everywhere."""
