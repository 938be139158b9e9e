"""``CoinState``: all state of one symbol in one serializable model.

The workflow holds exactly one ``CoinState`` and passes it through continue-as-new, so a
new run resumes exactly where the old one stopped. ``apply_transition`` is the only way the
phase changes: it asks the table first and mutates only after the table accepted.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import MarketInfo, OrderSide
from trader.core.phases import Phase, Trigger, next_phase

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


class CoinState(BaseModel):
    """Everything the SymbolTrader knows about one symbol (fields as in the seed spec)."""

    symbol: str
    exchange: str = "paper"
    phase: Phase = Phase.WARMUP
    phase_since: float = 0.0
    """Epoch seconds of the last transition."""

    # --- context ---------------------------------------------------------------------
    lineage: str = ""
    """Set once when the symbol's first run starts and carried through continue-as-new:
    part of every decision and client order id, so a fresh start never reuses old ids."""
    decision_id: str | None = None
    decision_seq: int = 0
    order_seq: int = 0
    """Monotonic per workflow id; feeds deterministic client order ids."""
    ledger_seq: int = 0
    """Monotonic per symbol; feeds the ids of inventory ledger rows."""
    order_id: str | None = None
    client_order_id: str | None = None
    order_side: OrderSide | None = None
    order_amount: Decimal = ZERO
    order_filled_applied: Decimal = ZERO
    """How much of the current order's fill is already counted (fills are applied as deltas,
    so a fill seen twice, e.g. again during recovery, is never counted twice)."""
    order_cost_applied: Decimal = ZERO
    order_fee_applied: Decimal = ZERO
    order_fee_base_applied: Decimal = ZERO
    order_fee_base_value_applied: Decimal = ZERO

    # --- timestamps (epoch seconds) ----------------------------------------------------
    ts_ms: int = 0
    entry_ts: float = 0.0
    cooldown_until: float = 0.0
    order_placed_ts: float = 0.0

    # --- position --------------------------------------------------------------------
    amount: Decimal = ZERO
    """Base currency held by this symbol's open trade (net of fees withheld in base)."""
    entry_price: Decimal = ZERO
    """Average price of this trade's buy: exit levels and display (the cost basis, with
    any inventory that joined, is ``entry_cost``)."""
    entry_cost: Decimal = ZERO
    """Quote cost of ``amount`` (what was paid for the units held, fees excluded)."""
    entry_fee: Decimal = ZERO
    """Quote value of the buy fees, including any withheld in base."""
    current_price: Decimal = ZERO
    entry_fee_per_unit: Decimal = ZERO

    bid: Decimal = ZERO
    """Best bid last seen: the price a sell's minimum is checked at."""

    # --- exit progress ---------------------------------------------------------------
    sold_amount: Decimal = ZERO
    exit_proceeds: Decimal = ZERO
    exit_fee: Decimal = ZERO
    sell_attempt: int = 0
    sell_rejections: int = 0
    """Sells of this trade the exchange refused as invalid (bounded by FSM_MAX_RETRIES)."""
    written_off: Decimal = ZERO
    """Part of ``amount`` the account turned out not to hold (a shortfall): closed by this
    trade at zero proceeds, so its cost is a realized loss, never hidden."""
    inventory_in_amount: Decimal = ZERO
    """Inventory that joined this trade (already included in ``amount``)."""
    inventory_in_cost: Decimal = ZERO
    """Its cost basis, entry fee included (already in ``entry_cost``/``entry_fee``)."""

    # --- inventory: coins the exchange would not take, carried between trades ---------
    inventory_amount: Decimal = ZERO
    """Base held from earlier trades that could not be sold (below the market minimum);
    it joins the next trade's position, so its cost and fees are realized when sold."""
    inventory_cost: Decimal = ZERO
    """Quote cost basis of the inventory (fees excluded)."""
    inventory_fee: Decimal = ZERO
    """Entry fees attributed to the inventory."""

    # --- trailing stop ---------------------------------------------------------------
    peak_price: Decimal = ZERO
    trailing_trigger: Decimal = ZERO

    # --- drop trigger ----------------------------------------------------------------
    anchor_price: Decimal = ZERO
    anchor_ts: str | None = None

    # --- exit protection -------------------------------------------------------------
    sl_order_id: str | None = None
    tp_order_id: str | None = None
    sl_px: Decimal = ZERO
    tp_px: Decimal = ZERO

    # --- metadata --------------------------------------------------------------------
    note: str = ""
    signal: str = ""
    exit_reason: str = ""
    error_count: int = 0
    retry_count: int = 0
    """Consecutive failures (ERROR entries) since the last success: the backoff exponent."""
    last_error: str = ""

    # --- operator controls -----------------------------------------------------------
    entries_paused: bool = False
    force_exit_reason: str | None = None
    force_exit_fresh: bool = False
    """A force exit arrived that no ERROR backoff has cut short yet: it skips one wait,
    never every wait (a sell that keeps failing must still back off)."""
    shutdown_requested: bool = False
    close_on_shutdown: bool = False
    reconcile_requested: str | None = None
    """Why the symbol should check the exchange at its next quiet moment (worker start,
    resume, operator); None when no check is pending."""
    entry_recheck: str = ""
    """After a blocked entry: what the next watch must also see before firing again
    (``guards``: the guards pass; ``slot``: a trade slot is free). The anchor is kept, so a
    drop that still holds enters as soon as the block clears."""

    # --- totals ----------------------------------------------------------------------
    trades_closed: int = 0
    realized_pnl_total: Decimal = ZERO
    fees_total: Decimal = ZERO
    """Fees of closed trades."""
    last_trade_pnl: Decimal | None = None
    transitions: int = 0
    """Transitions in the current run (reset by continue-as-new)."""

    market: MarketInfo | None = None
    simulated: bool = False
    """The exchange never executes real orders (paper, dry-run): marked in UI and messages."""
    phase_history: list[PhaseRecord] = []
    """The last N transitions; the full history is the workflow history."""

    @property
    def remaining(self) -> Decimal:
        """Base amount still to sell (neither sold nor written off)."""
        return self.amount - self.sold_amount - self.written_off

    @property
    def holds_position(self) -> bool:
        return self.amount > 0 and self.remaining > 0

    @property
    def has_inventory(self) -> bool:
        return self.inventory_amount > 0

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
            decision_id=self.decision_id,
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
        for name in (
            "amount",
            "entry_price",
            "entry_cost",
            "entry_fee",
            "entry_fee_per_unit",
            "sold_amount",
            "exit_proceeds",
            "exit_fee",
            "peak_price",
            "trailing_trigger",
            "sl_px",
            "tp_px",
            "order_amount",
            "order_filled_applied",
            "order_cost_applied",
            "order_fee_applied",
            "order_fee_base_applied",
            "order_fee_base_value_applied",
            "written_off",
            "inventory_in_amount",
            "inventory_in_cost",
        ):
            setattr(self, name, ZERO)
        self.sell_attempt = 0
        self.sell_rejections = 0
        self.entry_ts = 0.0
        self.order_id = None
        self.client_order_id = None
        self.order_side = None
        self.exit_reason = ""
        self.signal = ""
        self.force_exit_reason = None
        self.force_exit_fresh = False
        self.decision_id = None
