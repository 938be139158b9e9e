"""SymbolTrader: one durable workflow per symbol, running the 12-phase machine.

Each loop iteration runs the handler of the current phase; handlers change the phase only
through the transition table. Timers (fill timeouts, max hold, cooldown, ERROR backoff) are
workflow timers and exchange calls are activities, so a worker can die at any instant and
the symbol resumes exactly where it was. The run continues-as-new (carrying ``CoinState``)
in a quiet phase when the history grows large.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core.controls import force_exit_refusal
    from trader.core.phases import QUIET_PHASES, Phase, Trigger
    from trader.core.state import CoinState, PhaseRecord
    from workflows.base import EXCHANGE_REALITY_PATCH, error_message
    from workflows.entry_phases import EntryPhases
    from workflows.exit_phases import ExitPhases
    from workflows.recovery import RecoveryPhases

#: The handler of every phase: the name of a SymbolTrader method, looked up on each turn of
#: the loop, so a test may replace one on its class (tests/workflows/test_handlers.py checks
#: that it covers every phase exactly once).
HANDLERS: dict[Phase, str] = {
    Phase.WARMUP: "_warmup",
    Phase.IDLE: "_idle",
    Phase.ENTRY_EVAL: "_entry_eval",
    Phase.PLACE_BUY: "_place_buy",
    Phase.WAIT_FILL: "_wait_fill",
    Phase.POSITION: "_position",
    Phase.EXIT_EVAL: "_exit_eval",
    Phase.PLACE_SELL: "_place_sell",
    Phase.WAIT_SELL_FILL: "_wait_sell_fill",
    Phase.POST_TRADE: "_post_trade",
    Phase.COOLDOWN: "_cooldown",
    Phase.ERROR: "_error",
}

#: A run decided as old (``EXCHANGE_REALITY_PATCH`` not set at its start) takes these
#: handlers instead, kept verbatim in workflows/before_reality.py so it replays.
BEFORE_REALITY_HANDLERS: dict[Phase, str] = {
    Phase.PLACE_SELL: "_place_sell_v1",
    Phase.WAIT_SELL_FILL: "_wait_sell_fill_v1",
    Phase.POST_TRADE: "_post_trade_v1",
    Phase.ERROR: "_error_v1",
}


@workflow.defn(name="SymbolTrader")
class SymbolTrader(EntryPhases, ExitPhases, RecoveryPhases):
    @workflow.init
    def __init__(self, inp: c.TraderInput) -> None:
        # State is built here, not in run(): a signal may be handled before run() starts.
        self.inp = inp
        self.state = (
            inp.state.model_copy(deep=True)
            if inp.state
            else CoinState(symbol=inp.symbol, exchange=inp.params.exchange)
        )
        self._background = []
        self._notifications = []
        self._entry = None
        self._last_order = None
        self._max_hold_due = False
        self._handback = False
        self._v2 = False  # decided at the start of run(), before any phase that reads it

    @workflow.run
    async def run(self, inp: c.TraderInput) -> CoinState:
        s = self.state
        if not s.lineage:
            s.lineage = format(int(workflow.info().start_time.timestamp() * 1000), "x")
        if not s.phase_since:
            s.phase_since = workflow.time()
        s.transitions = 0
        self._publish_phase()  # first, always: its status-memo patch call must come first
        self._v2 = workflow.patched(EXCHANGE_REALITY_PATCH)
        if (
            self._v2
            and inp.state is not None
            and workflow.info().continued_run_id is None
            and (s.holds_position or s.has_inventory)
        ):
            # Resumed after a stop (not a continue-as-new): the account may have changed
            # while nothing watched it. Check before trading on; never trust memory.
            s.controls.reconcile_requested = "resumed after a stop"
        while True:
            self._reap_background()
            if s.phase in QUIET_PHASES:
                if self._should_stop():
                    await self._drain_background()
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return s
                if self._should_continue_as_new():
                    await self._drain_background()
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(inp.model_copy(update={"state": s}))
                if self._v2 and s.controls.reconcile_requested is not None:
                    await self._check_holdings()
                    continue
            try:
                await self._handler(s.phase)()
            except ActivityError as err:
                # An exchange call gave up (retries exhausted, or a rejection the phase does
                # not handle). Without this the workflow task would fail on every replay:
                # ERROR backs off and reconciles instead.
                s.last_error = error_message(err)
                self._transition(Trigger.FAILED, f"{s.phase.value} failed: {s.last_error}")

    def _handler(self, phase: Phase) -> Callable[[], Awaitable[None]]:
        """The handler for ``phase`` (by name, so a test may replace one on its class)."""
        old = None if self._v2 else BEFORE_REALITY_HANDLERS.get(phase)
        handler: Callable[[], Awaitable[None]] = getattr(self, old or HANDLERS[phase])
        return handler

    def _should_stop(self) -> bool:
        s = self.state
        if not s.controls.shutdown_requested:
            return False
        # With close_position, a held position is sold first (POSITION -> PLACE_SELL ...).
        return not (s.controls.close_on_shutdown and s.phase is Phase.POSITION)

    def _should_continue_as_new(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self.state.transitions >= self.inp.params.continue_as_new_after_transitions
        )

    # --- signals ---------------------------------------------------------------------
    def _force_exit_refusal(self) -> str | None:
        """Why a force exit cannot be taken now (None: it can)."""
        return force_exit_refusal(self.state, in_error=self._v2)

    @workflow.signal
    def force_exit(self, req: c.ForceExitRequest) -> None:
        """Sell now (from POSITION/EXIT_EVAL); from WAIT_FILL cancel the buy and sell what
        filled; from PLACE_BUY sell what the buy fills; from ERROR while holding, reconcile
        at once and sell. Elsewhere it is recorded in the note (and the history) and
        ignored."""
        s = self.state
        refusal = self._force_exit_refusal()
        if refusal is None:
            s.trade.force_exit_reason = req.reason or "manual"
            s.trade.force_exit_fresh = True
        else:
            s.note = f"force_exit ({req.reason}) ignored in {s.phase.value}: {refusal}"
        self._publish_details()

    @workflow.update
    def request_exit(self, req: c.ForceExitRequest) -> c.ForceExitResult:
        """Like the signal, but the caller learns whether it was accepted."""
        self.force_exit(req)
        return c.ForceExitResult(
            accepted=True, phase=self.state.phase.value, detail=f"exiting: {req.reason}"
        )

    @request_exit.validator
    def _validate_request_exit(self, req: c.ForceExitRequest) -> None:
        # A rejected update leaves no trace in history (0 events).
        refusal = self._force_exit_refusal()
        if refusal is not None:
            raise ValueError(
                f"cannot force exit {self.state.symbol} in phase "
                f"{self.state.phase.value}: {refusal}"
            )

    @workflow.signal
    def pause_entries(self) -> None:
        self.state.controls.entries_paused = True
        self._publish_details()

    @workflow.signal
    def resume_entries(self) -> None:
        self.state.controls.entries_paused = False
        self._publish_details()

    @workflow.signal
    def shutdown(self, req: c.ShutdownRequest) -> None:
        """Stop at the next quiet phase; with ``close_position``, sell a held position first.
        Without it a position is kept: the final state carries it and the starter resumes
        it on the next start."""
        self.state.controls.shutdown_requested = True
        self.state.controls.close_on_shutdown = req.close_position

    @workflow.signal
    def reconcile(self, req: c.ReconcileRequest) -> None:
        """Check the account against what this symbol holds at its next quiet moment (a
        worker start sends it to every holding symbol; ``starter.py reconcile`` too)."""
        self.state.controls.reconcile_requested = req.reason or "requested"
        self._publish_details()

    # --- queries ---------------------------------------------------------------------
    @workflow.query(name="state")
    def state_query(self) -> CoinState:
        return self.state

    @workflow.query(name="phase_history")
    def phase_history(self) -> list[PhaseRecord]:
        return list(self.state.phase_history)
