"""Trading parameters handed to each SymbolTrader workflow.

These are plain values built once from the settings at the edge (``trader.config``); the
workflow never reads the environment and never sees a secret.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)
from pydantic.config import JsonDict

#: A currency code as markets spell it (upper case; env names arrive lower-cased).
Currency = Annotated[
    str,
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[A-Z0-9]{2,12}$"),
]


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


def param(default: Any, doc: str, unit: str = "", **constraints: Any) -> Any:
    """A field with its default, doc text, unit and constraints (``ge``, ``lt``, ...).

    Every trading parameter is declared once this way; ``trader.config`` makes each one a
    setting (env name, TOML key) with the same default, doc text and constraint, and
    ``trader.config_docs`` shows the unit in docs/configuration.md.
    """
    extra: JsonDict | None = {"unit": unit} if unit else None
    return Field(default=default, description=doc, json_schema_extra=extra, **constraints)


class TraderParams(BaseModel):
    """Everything a SymbolTrader needs to decide, as plain values (no secrets).

    Each field is declared here once, with its doc text, unit and constraint; the settings
    (``trader.config.Settings``) derive theirs from these fields. The constraints hold for a
    workflow input too: a history's parameters are validated when it is read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _unset_new_fields_left_out(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A worker of the previous release refuses fields it does not know (extra="forbid"):
        # a field this release added is written only when set, so a rolling deploy works
        # for everyone who does not use it yet.
        data = handler(self)
        if isinstance(data, dict) and not data.get("quote_budgets"):
            data.pop("quote_budgets", None)
        return data

    def budget_for(self, quote: str) -> Decimal:
        """Quote spent per entry of a market quoted in ``quote``."""
        return self.quote_budgets.get(quote, self.trade_budget)

    exchange: str = param(
        "paper",
        "Exchange id: paper (the simulator) or any ccxt exchange id (binance, kraken, okx, ...).",
    )
    trade_budget: Decimal = param(
        Decimal("100"),
        "Quote currency spent per entry (for a quote without its own entry in quote_budgets).",
        "quote",
        gt=0,
    )
    quote_budgets: dict[Currency, Annotated[Decimal, Field(gt=0)]] = param(
        {},
        'Budget per entry by quote currency, e.g. { BTC = "0.002" } (env '
        "QUOTE_BUDGETS__BTC=0.002): a watchlist that mixes quotes is sized in each one's own "
        "units.",
        "quote",
    )
    max_trades: int = param(3, "Open trades at once, across all symbols/workers.", "trades", ge=1)
    # --- entry -----------------------------------------------------------------------
    drop_trigger_pct: Decimal = param(
        Decimal("2"), "Buy when the price is this many percent below the anchor.", "%", gt=0, lt=100
    )
    use_drop_anchor: bool = param(
        False,
        "Keep the anchor across trades and across a stop and start: the next entry after a "
        "cooldown is measured from the same anchor. False: a fresh anchor (per anchor_mode) "
        "at warm-up and after every cooldown.",
    )
    anchor_mode: AnchorMode = param(
        AnchorMode.PEAK,
        "What the drop is measured from: peak (the highest price since the anchor was reset), "
        "fixed (the price when it was reset) or window (the high of the last "
        "drop_lookback_seconds).",
    )
    drop_lookback_seconds: int = param(3600, "Window of the window anchor.", "s", gt=0)
    backfill_minutes: int = param(60, "History read at warm-up for the anchor.", "min", ge=0)
    # --- guards ----------------------------------------------------------------------
    max_spread_bps: Decimal = param(
        Decimal("50"), "Skip entries above this bid/ask spread.", "bps", gt=0
    )
    min_quote_volume: Decimal = param(
        Decimal("0"), "Skip entries below this 24 h quote volume.", "quote", ge=0
    )
    sma_guard_period: int = param(
        0,
        "Require the price above the SMA of this many one-minute closes; 0 disables the guard.",
        "1-min closes",
        ge=0,
    )
    # --- exits -----------------------------------------------------------------------
    take_profit_pct: Decimal = param(
        Decimal("3"), "Take profit this far above the entry; 0 = off.", "%", ge=0
    )
    stop_loss_pct: Decimal = param(
        Decimal("2"), "Stop loss this far below the entry; 0 = off.", "%", ge=0, lt=100
    )
    trailing_enabled: bool = param(True, "Use a trailing stop.")
    trailing_activation_pct: Decimal = param(
        Decimal("1"), "Arm the trailing stop this far above the entry.", "%", ge=0
    )
    trailing_distance_pct: Decimal = param(
        Decimal("0.5"), "Trailing stop distance below the peak.", "%", gt=0, lt=100
    )
    max_hold_minutes: Decimal = param(
        Decimal("60"), "Sell after holding this long; 0 = off.", "min", ge=0
    )
    # --- orders ----------------------------------------------------------------------
    buy_order_mode: BuyOrderMode = param(BuyOrderMode.IOC, "ioc, gtc or market.")
    buy_limit_offset_bps: Decimal = param(
        Decimal("10"), "IOC/GTC buys are priced this far above the ask, so they cross.", "bps", ge=0
    )
    sell_ladder_bps: tuple[Decimal, ...] = param(
        (Decimal(0), Decimal(10), Decimal(25), Decimal(50)),
        "IOC sell prices below the bid, one step per attempt; past the last step: a market order.",
        "bps",
    )
    sell_fill_threshold: Decimal = param(
        Decimal("0.95"), "Sold fraction that closes the trade.", "fraction", gt=0, le=1
    )
    buy_order_timeout_seconds: float = param(30, "Max time in WAIT_FILL.", "s", gt=0)
    sell_order_timeout_seconds: float = param(20, "Max time in WAIT_SELL_FILL.", "s", gt=0)
    cooldown_minutes: Decimal = param(Decimal("15"), "Pause after a trade.", "min", ge=0)
    # --- errors and retries ----------------------------------------------------------
    fsm_max_retries: int = param(
        5, "Attempts of an exchange call before the phase gives up (ERROR).", "attempts", ge=1
    )
    fsm_backoff_base_seconds: float = param(10, "ERROR backoff start (doubles).", "s", gt=0)
    fsm_backoff_max_seconds: float = param(300, "ERROR backoff cap.", "s", gt=0)
    order_activity_timeout_seconds: float = param(
        15, "Timeout of one exchange call attempt.", "s", gt=0
    )
    order_consistency_window_seconds: float = param(
        5,
        "An order the exchange does not find counts as never placed only this long after it "
        "was sent (order queries and lists lag behind a fresh order): a retried create waits "
        "it out before creating again, and ERROR before it books the order as never placed. "
        "Must leave an attempt (ORDER_ACTIVITY_TIMEOUT_SECONDS) at least 1 s to create.",
        "s",
        gt=0,
    )
    balance_settle_seconds: float = param(
        3,
        "A base balance below what the symbol holds is read again this long before it counts "
        "as a shortfall (an exchange's balance can lag a fresh fill).",
        "s",
        ge=0,
    )
    # --- watching and history --------------------------------------------------------
    watch_checkpoint_seconds: float = param(
        600,
        "A watch returns to the workflow at least this often (each return costs ~6 history "
        "events; the live price is in the watch's heartbeat meanwhile).",
        "s",
        gt=0,
    )
    watch_heartbeat_timeout_seconds: float = param(
        20, "A silent watch is retried (elsewhere) after this.", "s", gt=0
    )
    phase_history_limit: int = param(50, "Transitions kept in CoinState.", "transitions", ge=1)
    continue_as_new_after_transitions: int = param(
        1000, "Continue-as-new after this many.", "transitions", ge=10
    )
    global_trading: bool = param(
        True,
        "False = dry-run: real market data, orders simulated by the paper exchange; marked as "
        "simulated everywhere.",
    )


def backoff_seconds(retry_count: int, params: TraderParams) -> float:
    """The ERROR backoff after ``retry_count`` consecutive failures: FSM_BACKOFF_BASE_SECONDS
    doubled per failure after the first, capped at FSM_BACKOFF_MAX_SECONDS."""
    exponent = max(retry_count - 1, 0)
    return float(min(params.fsm_backoff_base_seconds * 2**exponent, params.fsm_backoff_max_seconds))
