"""``CoinState``: all state of one symbol in one serializable model.

The workflow holds exactly one ``CoinState`` and passes it through continue-as-new, so a
new run resumes exactly where the old one stopped. ``apply_transition`` is the only way the
phase changes: it asks the table first and mutates only after the table accepted.

The state is grouped: ``trade`` (the open trade, its order in flight and its exit-rule
state: clearing a trade is one assignment), ``inventory``, ``entry_watch``, ``controls``
and ``totals``. Runs and histories recorded before the grouping hold the flat shape of
earlier releases; ``CoinState`` reads it too (``FLAT_FIELDS``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from trader.core.market import MarketInfo, OrderSide, OrderType
from trader.core.phases import Phase, Trigger, next_phase
from trader.core.rules import EntryReason, EntryWatchState, ExitReason, ExitRulesState
from trader.core.shapes import flatten, nest

ZERO = Decimal(0)


class PhaseRecord(BaseModel):
    """One accepted transition."""

    model_config = ConfigDict(frozen=True)

    ts: float
    src: Phase
    dst: Phase
    trigger: Trigger
    note: str = ""
    decision_id: str | None = None


class OrderInFlight(BaseModel):
    """The trade's current order, recorded before it is sent (its fills start from zero)."""

    client_order_id: str | None = None
    order_id: str | None = None
    side: OrderSide | None = None
    amount: Decimal = ZERO
    placed_ts: float = 0.0
    """Epoch seconds when it was sent: the phase timeouts and the consistency window."""
    type: OrderType | None = None
    limit_offset_bps: Decimal | None = None
    """The order as planned (market, or a limit this far from the touch), where the legacy
    engine resends it from after a restart (the workflows keep it in the activity's input;
    None there and in earlier states)."""
    filled_applied: Decimal = ZERO
    """How much of its fill is already counted (fills are applied as deltas, so a fill
    seen twice, e.g. again during recovery, is never counted twice)."""
    cost_applied: Decimal = ZERO
    fee_applied: Decimal = ZERO
    fee_base_applied: Decimal = ZERO
    fee_base_value_applied: Decimal = ZERO


class Trade(BaseModel):
    """The open trade, from the entry decision to its books being closed."""

    decision_id: str | None = None
    signal: EntryReason | None = None
    order: OrderInFlight = OrderInFlight()
    entry_ts: float = 0.0
    """Epoch seconds the position was entered (0: not yet)."""
    amount: Decimal = ZERO
    """Base currency held by the trade (net of fees withheld in base)."""
    entry_price: Decimal = ZERO
    """Average price of this trade's buy: exit levels and display (the cost basis, with
    any inventory that joined, is ``entry_cost``)."""
    entry_cost: Decimal = ZERO
    """Quote cost of ``amount`` (what was paid for the units held, fees excluded)."""
    entry_fee: Decimal = ZERO
    """Quote value of the buy fees, including any withheld in base."""
    entry_fee_per_unit: Decimal = ZERO
    inventory_in_amount: Decimal = ZERO
    """Inventory that joined this trade (already included in ``amount``)."""
    inventory_in_cost: Decimal = ZERO
    """Its cost basis, entry fee included (already in ``entry_cost``/``entry_fee``)."""
    exits: ExitRulesState = ExitRulesState()
    """State of the stateful exit rules (the trailing stop)."""
    tp_px: Decimal = ZERO
    sl_px: Decimal = ZERO
    exit_reason: ExitReason | None = None
    """The exit decided (it stands until the trade is closed)."""
    sold_amount: Decimal = ZERO
    exit_proceeds: Decimal = ZERO
    exit_fee: Decimal = ZERO
    sell_attempt: int = 0
    sell_rejections: int = 0
    """Sells of this trade the exchange refused as invalid (bounded by FSM_MAX_RETRIES)."""
    written_off: Decimal = ZERO
    """Part of ``amount`` the account turned out not to hold (a shortfall): closed by this
    trade at zero proceeds, so its cost is a realized loss, never hidden."""
    buy_client_order_id: str | None = None
    """The buy order that filled this trade (the ledger row's order ids)."""
    sell_client_order_ids: list[str] = Field(default_factory=list)
    """Every sell order that filled part of it, in order (the IOC ladder's steps)."""
    force_exit_reason: str | None = None
    force_exit_fresh: bool = False
    """A force exit arrived that no ERROR backoff has cut short yet: it skips one wait,
    never every wait (a sell that keeps failing must still back off)."""

    @field_validator("exit_reason", "signal", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return value or None  # the flat shape wrote "" for "none"

    @property
    def remaining(self) -> Decimal:
        """Base amount still to sell (neither sold nor written off)."""
        return self.amount - self.sold_amount - self.written_off


class Inventory(BaseModel):
    """Coins the exchange would not take (below the market minimum), carried between trades:
    they join the next trade's position, so their cost and fees are realized when sold."""

    amount: Decimal = ZERO
    cost: Decimal = ZERO
    """Quote cost basis (fees excluded)."""
    fee: Decimal = ZERO
    """Entry fees attributed to the inventory."""


class Controls(BaseModel):
    """What the operator asked for (signals)."""

    entries_paused: bool = False
    shutdown_requested: bool = False
    close_on_shutdown: bool = False
    reconcile_requested: str | None = None
    """Why the symbol should check the exchange at its next quiet moment (worker start,
    resume, operator); None when no check is pending."""


class Totals(BaseModel):
    trades_closed: int = 0
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    """Fees of closed trades."""
    last_trade_pnl: Decimal | None = None


#: Where each field of the flat shape (releases before the grouping) lives now.
FLAT_FIELDS: dict[str, tuple[str, ...]] = {
    **{
        name: ("trade", name)
        for name in (
            "decision_id",
            "signal",
            "entry_ts",
            "amount",
            "entry_price",
            "entry_cost",
            "entry_fee",
            "entry_fee_per_unit",
            "inventory_in_amount",
            "inventory_in_cost",
            "tp_px",
            "sl_px",
            "exit_reason",
            "sold_amount",
            "exit_proceeds",
            "exit_fee",
            "sell_attempt",
            "sell_rejections",
            "written_off",
            "force_exit_reason",
            "force_exit_fresh",
        )
    },  # fmt: skip
    "order_id": ("trade", "order", "order_id"),
    "client_order_id": ("trade", "order", "client_order_id"),
    "order_side": ("trade", "order", "side"),
    "order_amount": ("trade", "order", "amount"),
    "order_placed_ts": ("trade", "order", "placed_ts"),
    "order_filled_applied": ("trade", "order", "filled_applied"),
    "order_cost_applied": ("trade", "order", "cost_applied"),
    "order_fee_applied": ("trade", "order", "fee_applied"),
    "order_fee_base_applied": ("trade", "order", "fee_base_applied"),
    "order_fee_base_value_applied": ("trade", "order", "fee_base_value_applied"),
    "peak_price": ("trade", "exits", "trailing", "peak"),
    "trailing_trigger": ("trade", "exits", "trailing", "trigger"),
    "inventory_amount": ("inventory", "amount"),
    "inventory_cost": ("inventory", "cost"),
    "inventory_fee": ("inventory", "fee"),
    "anchor_price": ("entry_watch", "anchor"),
    "anchor_ts": ("entry_watch", "anchor_ts"),
    "entry_recheck": ("entry_watch", "recheck"),
    "entries_paused": ("controls", "entries_paused"),
    "shutdown_requested": ("controls", "shutdown_requested"),
    "close_on_shutdown": ("controls", "close_on_shutdown"),
    "reconcile_requested": ("controls", "reconcile_requested"),
    "trades_closed": ("totals", "trades_closed"),
    "realized_pnl_total": ("totals", "realized_pnl"),
    "fees_total": ("totals", "fees"),
    "last_trade_pnl": ("totals", "last_trade_pnl"),
}
DROPPED_FIELDS = ("sl_order_id", "tp_order_id")  # never used; present in the flat shape only


class CoinState(BaseModel):
    """Everything the SymbolTrader knows about one symbol."""

    symbol: str
    exchange: str = "paper"
    phase: Phase = Phase.WARMUP
    phase_since: float = 0.0
    """Epoch seconds of the last transition."""
    ts_ms: int = 0

    # --- ids ---------------------------------------------------------------------------
    lineage: str = ""
    """Set once when the symbol's first run starts and carried through continue-as-new:
    part of every decision and client order id, so a fresh start never reuses old ids."""
    decision_seq: int = 0
    order_seq: int = 0
    """Monotonic per workflow id; feeds deterministic client order ids."""
    ledger_seq: int = 0
    """Monotonic per symbol; feeds the ids of inventory ledger rows."""
    notify_seq: int = 0
    """Monotonic per symbol; feeds the de-duplication keys of notifications."""

    # --- market ------------------------------------------------------------------------
    market: MarketInfo | None = None
    simulated: bool = False
    """The exchange never executes real orders (paper, dry-run): marked in UI and messages."""
    current_price: Decimal = ZERO
    bid: Decimal = ZERO
    """Best bid last seen: the price a sell's minimum is checked at."""

    # --- groups ------------------------------------------------------------------------
    trade: Trade = Trade()
    inventory: Inventory = Inventory()
    entry_watch: EntryWatchState = EntryWatchState()
    controls: Controls = Controls()
    totals: Totals = Totals()
    cooldown_until: float = 0.0

    # --- errors and history --------------------------------------------------------------
    note: str = ""
    error_count: int = 0
    retry_count: int = 0
    """Consecutive failures (ERROR entries) since the last success: the backoff exponent."""
    last_error: str = ""
    transitions: int = 0
    """Transitions in the current run (reset by continue-as-new)."""
    phase_history: list[PhaseRecord] = []
    """The last N transitions; the full history is the workflow history."""

    @model_validator(mode="before")
    @classmethod
    def _read_flat_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in (*FLAT_FIELDS, *DROPPED_FIELDS)):
            data = nest({k: v for k, v in data.items() if k not in DROPPED_FIELDS}, FLAT_FIELDS)
        return data

    @model_serializer(mode="wrap")
    def _also_flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Expand, then contract: this release also writes every grouped field at its flat
        # place, so a worker of the previous release (a rolling deploy, a rollback) reads
        # the position it would otherwise silently ignore (its model drops unknown keys).
        # Both are read here; the groups win. Drop the flat copy in the release after.
        data = flatten(handler(self), FLAT_FIELDS)
        for key in ("exit_reason", "signal"):  # str fields there: "" for "none"
            if key in data and data[key] is None:
                data[key] = ""
        return data

    @property
    def remaining(self) -> Decimal:
        """Base amount still to sell (neither sold nor written off)."""
        return self.trade.remaining

    @property
    def holds_position(self) -> bool:
        return self.trade.amount > 0 and self.trade.remaining > 0

    @property
    def has_inventory(self) -> bool:
        return self.inventory.amount > 0

    def apply_transition(
        self,
        trigger: Trigger,
        *,
        now: float,
        note: str = "",
        history_limit: int = 50,
    ) -> PhaseRecord:
        """Move to the phase the table gives for ``trigger``.

        Raises:
            InvalidTransition: the table has no such edge; the state is left untouched.
        """
        dst = next_phase(self.phase, trigger)  # raises before anything changes
        record = PhaseRecord(
            ts=now,
            src=self.phase,
            dst=dst,
            trigger=trigger,
            note=note,
            decision_id=self.trade.decision_id,
        )
        self.phase = dst
        self.phase_since = now
        self.ts_ms = int(now * 1000)
        self.transitions += 1
        if note:
            self.note = note
        self.phase_history.append(record)
        if len(self.phase_history) > history_limit:
            del self.phase_history[: len(self.phase_history) - history_limit]
        return record

    def clear_trade(self) -> None:
        """Forget the finished trade (after POST_TRADE, or a buy that came to nothing).
        The inventory is not part of a trade: it stays until it joins the next one."""
        self.trade = Trade()
