"""Every type that crosses the Temporal boundary: workflow, activity, signal, update and
query inputs and results, and the activity names.

Workflows call activities by these names (not by importing activity code), so workflow code
never pulls I/O modules into the sandbox and tests can replace activities by name. Each name
carries its input and result types (``ActivityName``), so a call through it is typed end to
end; a test checks every activity implementation against its name's types.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from trader.core import ids
from trader.core.divergence import Divergence, DivergenceTracker, Tolerances, divergence_key
from trader.core.inventory import InventoryMove
from trader.core.market import MarketInfo, Order, OrderSide, OrderType, Ticker, TimeInForce
from trader.core.params import TraderParams
from trader.core.phases import HOLDING_PHASES, Phase
from trader.core.pnl import TradePnL, unrealized_pnl_pct
from trader.core.rules import EntryWatchState, ExitReason, ExitRulesState
from trader.core.shapes import flatten, nest
from trader.core.state import CoinState


class _Msg(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy an older worker must
    # read a newer worker's messages (a new optional field) instead of failing its task.
    # New fields always get a default, so a newer worker reads an older one's too.
    model_config = ConfigDict(frozen=True, extra="ignore")


# Watch messages of releases before the rule state was one model carried its fields flat:
# histories and activities scheduled before an upgrade hold them.
_FLAT_ENTRY_WATCH: dict[str, tuple[str, ...]] = {
    k: ("state", k) for k in ("anchor", "window", "recheck")
}
_FLAT_EXIT_WATCH: dict[str, tuple[str, ...]] = {
    "peak": ("state", "trailing", "peak"),
    "trailing_trigger": ("state", "trailing", "trigger"),
}


class _WatchMsg(_Msg):
    FLAT_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_flat_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in cls.FLAT_FIELDS):
            return nest(data, cls.FLAT_FIELDS)
        return data

    @model_serializer(mode="wrap")
    def _also_flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Expand, then contract (as CoinState): written flat too for one release, so a
        # worker of the previous release reads it (rolling deploy) and its code replays
        # the histories this one writes (rollback).
        return flatten(handler(self), self.FLAT_FIELDS)


# --- activity names ------------------------------------------------------------------------
In = TypeVar("In")
R = TypeVar("R")


class ActivityName(str, Generic[In, R]):
    """An activity's name (a plain ``str`` to Temporal and to ``activity.defn``) that also
    carries its input and result types, so workflow calls through it are typed."""

    input: type[In]
    result: type[R]

    def __new__(cls, name: str, input: type[In], result: type[R]) -> ActivityName[In, R]:
        self = super().__new__(cls, name)
        self.input, self.result = input, result
        return self


# --- workflows -----------------------------------------------------------------------------
class TraderInput(_Msg):
    symbol: str
    params: TraderParams
    portfolio_id: str
    watch_task_queue: str
    state: CoinState | None = None
    """Set by continue-as-new (and by the starter when resuming a stopped symbol)."""


class PortfolioInput(_Msg):
    max_trades: int
    slots: dict[str, str] = {}
    """decision id -> symbol of every granted slot."""
    closed: dict[str, float] = {}
    """decision id -> when (epoch s, workflow time) it was released or refused: a late
    request for it is refused (docs/architecture.md, "Late slot requests")."""


class SlotRequest(_Msg):
    decision_id: str
    symbol: str
    expires_at: float | None = None
    """When the asking activity attempt ends (epoch s, the server's clock, less a margin):
    the Portfolio never grants the request later (None: an activity of an older release)."""


class SlotGrant(_Msg):
    granted: bool
    in_use: int
    max_trades: int
    expired: bool = False
    """The request came after its ``expires_at``: no answer for the decision (its next
    attempt asks again)."""


class SlotBatch(_Msg):
    """Concurrent slot requests of one worker, sent as one ``acquire_many`` Update."""

    requests: list[SlotRequest]


class SlotBatchResult(_Msg):
    grants: list[SlotGrant]
    """One per request, in request order."""


class ForceExitRequest(_Msg):
    reason: str = "manual"


class ForceExitResult(_Msg):
    accepted: bool
    phase: str
    detail: str


class ReconcileRequest(_Msg):
    reason: str = ""
    """Why (shown in the note and the notification): worker start, operator, ..."""


class ShutdownRequest(_Msg):
    close_position: bool = False


class AcquireSlotInput(_Msg):
    portfolio_id: str
    max_trades: int
    request: SlotRequest


def validator_task_queue(task_queue: str) -> str:
    """The HybridValidator's own task queue, named after the deployment's (its id's) queue:
    served in every mode by a worker of its own, which in ``FSM_MODE=both`` with a legacy
    primary lives outside the supervised FSM shadow (docs/migration.md)."""
    return f"{task_queue}-validator"


def slot_task_queue(watch_task_queue: str) -> str:
    """The task queue of ``acquire_slot`` (since the slot-wait patch), named after the
    watch queue: its own worker slots, so a burst of slot requests waits on the server,
    never in front of orders (docs/architecture.md, "Global slot limit")."""
    return f"{watch_task_queue}-slots"


# --- market watching -------------------------------------------------------------------------
class WarmupInput(_Msg):
    symbol: str
    backfill_minutes: int


class WarmupResult(_Msg):
    market: MarketInfo
    ticker: Ticker
    backfill_high: Decimal | None
    """Highest price of the backfill window (None when backfill is off or empty)."""
    simulated: bool


class WatchEntryInput(_WatchMsg):
    FLAT_FIELDS = _FLAT_ENTRY_WATCH
    symbol: str
    params: TraderParams
    state: EntryWatchState
    """Anchor, rolling window and what a blocked drop still waits for (``recheck``)."""
    portfolio_id: str = ""
    """Whose slots ``slot`` waits for."""


class WatchEntryResult(_WatchMsg):
    FLAT_FIELDS = _FLAT_ENTRY_WATCH
    fired: bool
    ticker: Ticker | None
    """The last ticker seen; None only in a cancelled watch's handback before its first
    tick (a retry that resumed from the heartbeat: its state is still worth keeping)."""
    state: EntryWatchState
    """The watch's state when it returned; its ``recheck`` is cleared once the drop
    stopped holding (the blocked episode is over)."""
    trigger_price: Decimal
    drop_pct: Decimal
    sma: Decimal | None = None
    ticks: int = 0


class WatchExitInput(_WatchMsg):
    FLAT_FIELDS = _FLAT_EXIT_WATCH
    symbol: str
    params: TraderParams
    entry_price: Decimal
    entry_ts: float
    state: ExitRulesState


class WatchExitResult(_WatchMsg):
    FLAT_FIELDS = _FLAT_EXIT_WATCH
    fired: bool
    reason: ExitReason | None
    detail: str
    ticker: Ticker | None
    """As in ``WatchEntryResult``: None only in a handback before the first tick."""
    state: ExitRulesState
    ticks: int = 0


PRICE_WAIT_KEY = "price_wait"
"""The heartbeat detail a waiting watch adds: ``{PRICE_WAIT_KEY: PriceWait}``."""


class PriceWait(_Msg):
    """A watch waiting for a fresh price: in its heartbeat details (``{"price_wait": ...}``,
    before the watch state), so the Web UI's pending activity and ``starter.py status``
    say why the symbol judges nothing. No rule ever judges a price older than
    ``max_age_s``."""

    age_s: float | None
    """Age of the latest price, seconds; None: no price yet."""
    max_age_s: float
    source: str
    """``stream`` or ``rest``: where the price comes from now."""
    detail: str
    """Why: the stream down or silent for how long, the last REST error."""

    def note(self) -> str:
        age = "no price" if self.age_s is None else f"price {self.age_s:.1f} s old"
        return f"waiting: {age} (max {self.max_age_s:g} s; {self.detail})"


class WatchLive(BaseModel):
    """What a running watch last saw, in its heartbeat details at ``WATCH_LIVE_DETAIL``:
    the Web UI's pending activity and ``starter.py status`` show it, and it costs no
    history (a heartbeat is no event). Display only: the rule state is the model after it."""

    model_config = ConfigDict(frozen=True)  # unknown fields ignored: newer watches' too

    price: Decimal
    ts_ms: int
    """The ticker's exchange timestamp."""
    anchor: Decimal = Decimal(0)
    """Entry watch: the price the drop is measured from."""
    trailing: Decimal = Decimal(0)
    """Exit watch: the trailing-stop trigger (0 while not armed)."""
    peak: Decimal = Decimal(0)
    """Exit watch: the trailing stop's peak."""


class LastBeatInput(_Msg):
    """Which of the calling workflow's pending activities to read (a watch's name)."""

    activity_type: str


class LastBeatResult(_Msg):
    state: dict[str, Any] | None = None
    """The last heartbeat detail (the watch's rule state) of that pending activity, also
    between attempts (retry backoff); None when none is pending or it never heartbeated."""


SLOT_LOCAL_MARGIN = timedelta(milliseconds=500)
"""A local slot attempt (the slot-local patch) waits for its answer until its start-to-close
less this: the answer only has to reach its own workflow task, in the same process."""

LIVE_HEARTBEAT = timedelta(seconds=1)
"""The watch worker's ``max_heartbeat_throttle_interval``: an exit watch's heartbeat (its
``WatchLive``) reaches the server at least this often, so a held symbol's price and trailing
level are this fresh in ``describe()``, the Web UI and ``starter.py status`` (the SDK's
default, 0.8 x the heartbeat timeout, would be 16 s)."""


WATCH_LIVE_DETAIL = 2
"""Index of ``WatchLive`` in a watch's heartbeat details: after the previous release's two
positional values and before the state model, which stays last (what that release reads).
A watch waiting for a fresh price puts its ``PriceWait`` there instead (no live price)."""


# --- orders ----------------------------------------------------------------------------------
class PlaceOrderInput(_Msg):
    """An order whose limit price the activity sets from the live book.

    ``limit_offset_bps`` None means a market order; otherwise buys are priced that far
    above the ask and sells that far below the bid. The price actually sent is in the
    result, so the history holds it.
    """

    symbol: str
    side: OrderSide
    amount: Decimal
    client_order_id: str
    type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.IOC
    limit_offset_bps: Decimal | None = Decimal(0)
    simulated: bool | None = None
    """The account the workflow trades on (its warm-up's ``simulated``): the activity
    refuses, non-retryably, on an exchange of the other kind. None (workflows older than
    this field): not checked."""


class OrderRef(_Msg):
    symbol: str
    client_order_id: str
    poll_interval_s: float = 0.5
    simulated: bool | None = None
    """As ``PlaceOrderInput.simulated`` (cancel_order checks it; wait_order only reads)."""


class ReconcileInput(_Msg):
    symbol: str
    client_order_id: str | None
    base: str
    expect_base: Decimal | None = None
    """What the symbol believes it holds: a balance below it is read again for
    ``settle_seconds`` before it is reported (balances can lag a fresh fill)."""
    settle_seconds: float = 0
    lists_since_ms: int | None = None
    """When the order query misses the order, the symbol's open and recent orders (since
    this, epoch ms) are asked too: they can show it long before the query does. None
    (workflows older than this field): the order query only."""
    side: OrderSide | None = None
    """The order's side (an unattributed trade on it may be the order); None: either."""
    simulated: bool | None = None
    """As ``PlaceOrderInput.simulated``."""


class ReconcileResult(_Msg):
    order: Order | None
    base_balance: Decimal
    """Total base on the account (free + locked)."""
    ticker: Ticker
    base_free: Decimal | None = None
    """Base free for new orders (None from workers older than this field)."""


# --- ledger and notifications ------------------------------------------------------------------
class TradeRecord(_Msg):
    trade_id: str
    """The decision id: the ledger's idempotency key."""
    symbol: str
    exchange: str
    exit_reason: str
    bought_amount: Decimal
    sold_amount: Decimal
    entry_price: Decimal
    entry_cost: Decimal
    entry_fee: Decimal
    exit_proceeds: Decimal
    exit_fee: Decimal
    net_pnl: Decimal
    pnl_pct: Decimal
    opened_ts: float
    closed_ts: float
    simulated: bool
    written_off: Decimal = Decimal(0)
    """Units the account did not hold when selling (a shortfall): closed at zero proceeds,
    so their cost is part of ``net_pnl``'s loss."""
    carried_amount: Decimal = Decimal(0)
    """Units the exchange would not take (below its minimum), kept as inventory with
    ``carried_cost`` (cost + entry fees); realized by the trade that sells them."""
    carried_cost: Decimal = Decimal(0)
    inventory_in_amount: Decimal = Decimal(0)
    """Inventory of earlier trades that joined this one (included in ``bought_amount``)."""
    inventory_in_cost: Decimal = Decimal(0)
    # Ledger revision 0003. Defaults: an activity scheduled before it decodes (and the FSM
    # workflows are the only senders of activity inputs, hence ``engine``'s default).
    exit_price: Decimal = Decimal(0)
    """Average sell price: ``exit_proceeds / sold_amount`` (0: nothing sold)."""
    decision_id: str | None = None
    """The entry decision (None: an orphan position, recovered without one)."""
    buy_client_order_id: str | None = None
    sell_client_order_ids: list[str] = []
    """The sell orders that filled, in order (the IOC ladder's steps)."""
    engine: str = "fsm"
    """``fsm`` (the workflows) or ``legacy`` (the in-process engine)."""

    @classmethod
    def closing(
        cls,
        s: CoinState,
        pnl: TradePnL,
        *,
        trade_id: str,
        closed_ts: float,
        simulated: bool,
        engine: str,
    ) -> TradeRecord:
        """The ledger row of ``s``'s trade, closed with ``pnl`` (both engines book this)."""
        sold = s.trade.sold_amount
        return cls(
            trade_id=trade_id,
            symbol=s.symbol,
            exchange=s.exchange,
            exit_reason=s.trade.exit_reason or "unknown",
            bought_amount=s.trade.amount,
            sold_amount=s.trade.sold_amount,
            entry_price=s.trade.entry_price,
            entry_cost=s.trade.entry_cost,
            entry_fee=s.trade.entry_fee,
            exit_proceeds=s.trade.exit_proceeds,
            exit_fee=s.trade.exit_fee,
            net_pnl=pnl.net,
            pnl_pct=pnl.pct,
            opened_ts=s.trade.entry_ts,
            closed_ts=closed_ts,
            simulated=simulated,
            written_off=s.trade.written_off,
            carried_amount=pnl.carried_amount,
            carried_cost=pnl.carried_cost + pnl.carried_fee,
            inventory_in_amount=s.trade.inventory_in_amount,
            inventory_in_cost=s.trade.inventory_in_cost,
            exit_price=s.trade.exit_proceeds / sold if sold > 0 else Decimal(0),
            decision_id=s.trade.decision_id,
            buy_client_order_id=s.trade.buy_client_order_id,
            sell_client_order_ids=list(s.trade.sell_client_order_ids),
            engine=engine,
        )


class InventoryRecord(_Msg):
    """A movement of what a symbol holds outside an open trade, in the ledger."""

    record_id: str
    """Idempotency key (decision id + what happened)."""
    symbol: str
    exchange: str
    kind: str
    """``carried`` (kept after a trade: below the market minimum) or ``shortfall`` (the
    account held less than the symbol believed: written off)."""
    amount: Decimal
    cost: Decimal
    """Quote cost basis of ``amount``, entry fees included."""
    price: Decimal
    """Bid when it was recorded."""
    reason: str
    decision_id: str | None
    ts: float
    simulated: bool = False
    engine: str = "fsm"
    """Ledger revision 0004: ``fsm`` or ``legacy``, as a trade's (the same default)."""

    @classmethod
    def of(
        cls, s: CoinState, move: InventoryMove, *, ts: float, simulated: bool, engine: str
    ) -> InventoryRecord:
        """The row of ``move``; its id comes from state only (``ledger_seq``, advanced by the
        caller first): the same on a retry, a replay or a restart."""
        return cls(
            record_id=f"{ids.symbol_slug(s.symbol)}:{s.lineage}:{move.kind}:{s.ledger_seq}",
            symbol=s.symbol,
            exchange=s.exchange,
            kind=move.kind,
            amount=move.amount,
            cost=move.cost,
            price=s.bid or s.current_price,
            reason=move.reason,
            decision_id=s.trade.decision_id,
            ts=ts,
            simulated=simulated,
            engine=engine,
        )


class DustRecord(_Msg):
    dust_id: str
    symbol: str
    exchange: str
    amount: Decimal
    price: Decimal
    reason: str
    ts: float
    # Ledger revision 0004; rows from before it read as not simulated, engine ``unknown``.
    simulated: bool = False
    engine: str = "fsm"


class RecordResult(_Msg):
    inserted: bool
    """False when the record already existed (a retried or re-run activity)."""


class Notification(_Msg):
    symbol: str
    kind: str
    """entry | exit | error | shortfall | inventory | reconcile | notice | divergence"""
    text: str
    key: str = ""
    """De-duplication key (``ids.notification_key``): a retried or re-run activity sends the
    message once. Empty in inputs scheduled before keys existed: sent without de-duplication."""


# --- the hybrid validator -------------------------------------------------------------------
class ValidatorSetup(_Msg):
    """What a validator compares, and how often (set at its start; carried as is)."""

    exchange: str
    task_queue: str
    """The deployment whose SymbolTraders are the FSM side (visibility ``TaskQueue``)."""
    watchlist: list[str] = []
    """WATCHLIST: a symbol here with no running SymbolTrader is reported, and its orders and
    currency are checked (a position or order it left behind)."""
    interval_s: float = 60.0
    primary: str = "fsm"
    """The engine that sends the real orders (``fsm`` or ``legacy``): checked against the
    exchange."""
    legacy_state_path: str | None = None
    """The legacy engine's state file (``trader.legacy.store.state_path``); None: no legacy
    side (FSM_MODE=fsm: exchange reconciliation only)."""
    notify: bool = True
    """HYBRID_LOG_DIVERGENCES: notify each divergence reported (it is logged either way)."""
    tolerances: Tolerances = Tolerances()
    checks_per_run: int = 100
    """Checks before continuing as new: ~11 history events each (docs/performance.md)."""
    run_queue: str | None = None
    """The task queue the validator runs on (``validator_task_queue``; its own worker, never
    the FSM shadow's); a run elsewhere moves there at its next check. None: wherever it was
    started (the previous release's setups, tests' rigs)."""


class ValidatorInput(_Msg):
    setup: ValidatorSetup
    since_ts: float | None = None
    """Trades closed before this (epoch s) are not compared; set by the first run to its
    start, then carried."""
    check: int = 0
    """Checks done by earlier runs (carried through continue-as-new)."""
    tracker: DivergenceTracker = DivergenceTracker()
    failed_checks: int = 0
    """Consecutive checks that failed (notified once when it reaches ``CHECKS_FAILED_NOTIFY``)."""


class ValidateInput(_Msg):
    validator_id: str
    check: int
    setup: ValidatorSetup
    since_ts: float
    tracker: DivergenceTracker


class ReportedDivergence(_Msg):
    """A divergence as the workflow reads it: ``kind`` is plain text, not the enum, so a
    release that does not know a newer kind still decodes a result (or replays a history)
    holding it. The same fields as ``Divergence``, so either reads the other's payload."""

    kind: str
    symbol: str
    detail: str
    values: dict[str, str]
    fingerprint: str = ""

    @classmethod
    def of(cls, d: Divergence) -> ReportedDivergence:
        return cls.model_validate(d.model_dump(mode="json"))

    @property
    def key(self) -> str:
        return divergence_key(self.kind, self.symbol, self.fingerprint)


class ValidateResult(_Msg):
    tracker: DivergenceTracker
    reported: list[ReportedDivergence]
    """Divergences reported by this check (logged and counted by the activity)."""
    current: int
    """Divergences seen on this check, reported or not."""
    symbols: int


# --- workflow memo ---------------------------------------------------------------------------
STATUS_MEMO_KEY = "status"


class StatusMemo(BaseModel):
    """What ``starter.py status`` shows beyond the search attributes, kept in the workflow's
    memo under ``STATUS_MEMO_KEY``: one ``list_workflows`` call returns it for every symbol.
    Prices and PnL live here, not in search attributes, because a payload codec encrypts the
    memo but leaves search attributes in plaintext."""

    # Unknown fields are ignored (not forbidden): an older `status` must still read the memo
    # of a newer workflow.
    model_config = ConfigDict(frozen=True)

    price: Decimal = Decimal(0)
    """Last price the workflow saw."""
    entry: Decimal = Decimal(0)
    """Entry price of the open trade (0 when flat)."""
    pnl_pct: Decimal | None = None
    """Unrealized PnL of the open trade in percent (None when flat)."""
    trailing: Decimal = Decimal(0)
    """Trailing-stop trigger price (0 when not active)."""
    note: str = ""
    """The last transition's reason."""
    simulated: bool = False
    inventory: Decimal = Decimal(0)
    """Base carried as inventory (below the market minimum), held while flat too."""

    @classmethod
    def of(cls, s: CoinState, *, simulated: bool) -> StatusMemo:
        """The memo of ``s`` (both engines: the workflow's memo, the legacy engine's row)."""
        holding = shows_position(s)
        return cls(
            price=s.current_price,
            entry=s.trade.entry_price if holding else Decimal(0),
            pnl_pct=unrealized_pnl_pct(s.current_price, s.trade.entry_price) if holding else None,
            trailing=s.trade.exits.trailing.trigger if holding else Decimal(0),
            note=s.note[:MEMO_NOTE_LIMIT],
            simulated=simulated,
            inventory=s.inventory.amount,
        )


# --- activity names, with their types ---------------------------------------------------------
WARMUP = ActivityName("warmup", WarmupInput, WarmupResult)
WATCH_ENTRY = ActivityName("watch_entry", WatchEntryInput, WatchEntryResult)
WATCH_EXIT = ActivityName("watch_exit", WatchExitInput, WatchExitResult)
PLACE_ORDER = ActivityName("place_order", PlaceOrderInput, Order)
WAIT_ORDER = ActivityName("wait_order", OrderRef, Order)
CANCEL_ORDER = ActivityName("cancel_order", OrderRef, Order)
RECONCILE = ActivityName("reconcile", ReconcileInput, ReconcileResult)
ACQUIRE_SLOT = ActivityName("acquire_slot", AcquireSlotInput, SlotGrant)
RECORD_TRADE = ActivityName("record_trade", TradeRecord, RecordResult)
RECORD_DUST = ActivityName("record_dust", DustRecord, RecordResult)
RECORD_INVENTORY = ActivityName("record_inventory", InventoryRecord, RecordResult)
NOTIFY = ActivityName("notify", Notification, type(None))
VALIDATE = ActivityName("hybrid_validate", ValidateInput, ValidateResult)
LAST_WATCH_BEAT = ActivityName("last_watch_beat", LastBeatInput, LastBeatResult)
ACTIVITIES: tuple[ActivityName[Any, Any], ...] = (
    WARMUP, WATCH_ENTRY, WATCH_EXIT, PLACE_ORDER, WAIT_ORDER, CANCEL_ORDER, RECONCILE,
    ACQUIRE_SLOT, RECORD_TRADE, RECORD_DUST, RECORD_INVENTORY, NOTIFY, VALIDATE,
    LAST_WATCH_BEAT,
)  # fmt: skip

# The memo is stored in history on every upsert: a long note is cut to keep events small.
MEMO_NOTE_LIMIT = 160


def shows_position(s: CoinState) -> bool:
    """The symbol's position is worth showing: held in a holding phase, or in ERROR (a sell
    the exchange refused leaves it held, and that is when an operator most needs it)."""
    return s.trade.amount > 0 and (
        s.phase in HOLDING_PHASES or (s.phase is Phase.ERROR and s.remaining > 0)
    )
