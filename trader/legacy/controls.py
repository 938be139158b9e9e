"""The operator's controls in the legacy engine, with the workflows' semantics
(``workflows/symbol_trader.py``'s signals, ``holdings.py``'s ``_check_holdings``):

- force exit: honoured in PLACE_BUY, WAIT_FILL, POSITION, EXIT_EVAL and in ERROR while
  something is held (``trader.core.controls.force_exit_refusal``, shared with the workflows);
  refused elsewhere, with the reason in the answer and the note;
- pause/resume: IDLE makes no entry while paused (an open trade goes on);
- reconcile: at the next quiet moment (IDLE, POSITION, COOLDOWN) the symbol compares the
  account (base balance, its last order by client id) with what it holds, and says so;
- stop: each symbol stops at its next quiet phase; with ``close_positions`` a held position
  is sold first (exit reason ``shutdown``). The engine ends once every symbol stopped.

A request arrives through ``trader.legacy.requests`` (the CLI needs no lock on the state).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal

from trader.core.controls import exit_requested, force_exit_refusal, forced_exit
from trader.core.errors import ExchangeError
from trader.core.fills import apply_fill
from trader.core.market import OrderStatus
from trader.core.params import TraderParams
from trader.core.phases import QUIET_PHASES, Phase, Trigger
from trader.core.rules import ExitReason
from trader.core.sizing import is_dust
from trader.legacy.base import RunnerBase
from trader.legacy.orders import find_confirmed, retrying
from trader.legacy.requests import Answer, Kind, Request

log = logging.getLogger(__name__)

ZERO = Decimal(0)
_NAP_S = 0.2


LEGACY_SAVE_S = 60.0


def save_every_s(p: TraderParams) -> float:
    """How often a watching symbol saves its rule state (crash recovery): at its checkpoint
    but at least every minute. A save costs no history here, and the workflows' checkpoint
    (10 minutes since the watch heartbeats its live price) is no reason to save less."""
    return min(p.watch_checkpoint_seconds, LEGACY_SAVE_S)


class ControlPhases(RunnerBase):
    async def nap(self, seconds: float, until: Callable[[], bool]) -> None:
        """Sleep ``seconds``, cut short once ``until()`` holds (an operator's request)."""
        deadline = time.monotonic() + seconds
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _NAP_S))

    # --- what interrupts a phase ----------------------------------------------------------
    def exit_requested(self) -> bool:
        return exit_requested(self.s)

    def take_force_exit(self) -> None:
        self.s.trade.exit_reason, note = forced_exit(self.s)
        self.transition(Trigger.FORCE_EXIT, note)

    def idle_blocked(self) -> bool:
        c = self.s.controls
        return c.entries_paused or c.shutdown_requested or c.reconcile_requested is not None

    def position_interrupted(self) -> bool:
        c = self.s.controls
        return self.exit_requested() or c.shutdown_requested or c.reconcile_requested is not None

    # --- between phases -------------------------------------------------------------------
    def should_stop(self) -> bool:
        c = self.s.controls
        return c.shutdown_requested and not (c.close_on_shutdown and self.s.phase is Phase.POSITION)

    async def quiet_turn(self) -> bool:
        """In a quiet phase: stop, reconcile or wait out a pause. True if the symbol is
        done (stopped); the caller runs the phase's handler otherwise."""
        s = self.s
        while s.phase in QUIET_PHASES:
            if self.should_stop():
                s.note = "stopped by the operator" + (
                    " (position kept)" if s.holds_position else ""
                )
                log.info("%s: %s", s.symbol, s.note)
                self.save()
                self.done = True
                return True
            if s.controls.reconcile_requested is not None:
                await self.check_holdings()
                continue
            if s.phase is Phase.IDLE and s.controls.entries_paused:
                await self.nap(
                    3600,
                    lambda: (
                        not s.controls.entries_paused
                        or s.controls.shutdown_requested
                        or s.controls.reconcile_requested is not None
                    ),
                )
                continue
            break
        return False

    async def check_holdings(self) -> None:
        """A reconciliation asked for (engine start, operator): compare the account with
        what the symbol holds, and say what differs (note, log)."""
        s = self.s
        why, s.controls.reconcile_requested = s.controls.reconcile_requested or "requested", None
        if not (s.holds_position or s.has_inventory) or s.market is None:
            s.note = f"reconcile ({why}): nothing held, nothing to check"
            log.info("%s: %s", s.symbol, s.note)
        else:
            try:
                await self._compare_holdings(why)
            except ExchangeError as exc:
                s.note = (
                    f"reconcile ({why}) failed: {exc or type(exc).__name__}; sells still "
                    "check the account first"
                )
                log.warning("%s: %s", s.symbol, s.note)
        self.save()

    async def _compare_holdings(self, why: str) -> None:
        s, p, ex = self.s, self.p, self.e.exchange
        assert s.market is not None
        base = s.market.base
        holding = s.holds_position
        coid = s.trade.order.client_order_id if holding else None
        order = (
            await find_confirmed(ex, p, s.symbol, coid, s.trade.order.placed_ts) if coid else None
        )
        balances = await retrying(p, ex.fetch_balances)
        held = balances.get(base)
        total = held.total if held else ZERO
        found = []
        unknown = bool(coid) and order is None
        if unknown:  # maybe a lagging order query: reported, nothing concluded from it
            found.append(
                f"order {coid} unknown to the exchange; balance check left to the next sell"
            )
        elif order is not None and order.status is not OrderStatus.OPEN:
            delta = apply_fill(s, order)  # a delta: nothing counted twice
            if delta > 0:
                found.append(f"{delta} more filled than recorded (now counted)")
        need = (s.remaining if s.holds_position else ZERO) + s.inventory.amount
        before = (s.trade.written_off, s.inventory.amount)
        if not unknown:  # as the workflow's reconcile: confirmed, inventory first, booked
            await self._cover(total, f"reconcile, {why}")
        if (s.trade.written_off, s.inventory.amount) != before:
            gone = s.trade.written_off - before[0] + before[1] - s.inventory.amount
            found.append(
                f"the account holds {total} {base}, {need - total} less than the {need} this "
                f"symbol held: {gone} written off"
            )
            price = s.bid or s.current_price  # judged only on a known price
            if (
                holding
                and (s.remaining <= 0 or (price > 0 and is_dust(s.remaining, price, s.market)))
                and s.trade.exit_reason is None
            ):
                s.trade.exit_reason = ExitReason.SHORTFALL  # close the books of what is left
        if found:
            s.note = f"reconcile ({why}): " + "; ".join(found)
            log.warning("%s: %s", s.symbol, s.note)
            self.notify("reconcile", f"{s.symbol}: {s.note}")
        else:
            s.note = (
                f"reconcile ({why}): the account holds {total} {base}, covering the {need} "
                "this symbol holds"
            )
            log.info("%s: %s", s.symbol, s.note)

    # --- requests -------------------------------------------------------------------------
    def apply(self, req: Request) -> Answer:
        """One operator request for this symbol (idempotent: the same flags again)."""
        s, c = self.s, self.s.controls
        if self.done:
            return self._answer(False, "no longer traded by this engine")
        if req.kind is Kind.FORCE_EXIT:
            reason = req.reason or "manual"
            refusal = force_exit_refusal(s)
            if refusal is not None:
                s.note = f"force_exit ({reason}) ignored in {s.phase.value}: {refusal}"
                self.save()
                return self._answer(False, refusal)
            s.trade.force_exit_reason = reason
            s.trade.force_exit_fresh = True
            detail = f"exiting: {reason}"
        elif req.kind is Kind.PAUSE:
            c.entries_paused, detail = True, "entries paused (an open trade goes on)"
        elif req.kind is Kind.RESUME:
            c.entries_paused, detail = False, "entries resumed"
        elif req.kind is Kind.RECONCILE:
            c.reconcile_requested = req.reason or "operator"
            detail = "checks the account at its next quiet moment"
        else:
            c.shutdown_requested = True
            c.close_on_shutdown = req.close_positions
            detail = "stops at its next quiet phase" + (
                ", selling a held position first" if req.close_positions else ""
            )
        self.save()
        return self._answer(True, detail)

    def _answer(self, accepted: bool, detail: str) -> Answer:
        return Answer(
            symbol=self.s.symbol, accepted=accepted, phase=self.s.phase.value, detail=detail
        )
