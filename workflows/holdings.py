"""What the symbol holds against what the account holds: closing a trade's books (sold,
written off, carried), shortfalls, and reconciliation at quiet moments (resume, worker
start, operator request)."""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core.fills import apply_fill
    from trader.core.inventory import (
        InventoryMove,
        carried_move,
        close_books,
        cover,
        trade_pnl,
        uncovered,
        write_off_position,
    )
    from trader.core.market import OrderStatus
    from trader.core.messages import fmt
    from trader.core.pnl import TradePnL
    from trader.core.rules import ExitReason
    from trader.core.sizing import is_dust
    from workflows.base import TraderBase, error_message

ZERO = Decimal(0)


class Holdings(TraderBase):
    async def _book_trade(self, *, closes_trade: bool = True) -> tuple[str, TradePnL]:
        """Record the trade (idempotent on its id) and move its totals into the state.

        What was sold and what was written off are realized now; what the exchange would
        not take is carried as inventory with its cost and fees (and a ledger row), so no
        loss and no fee leaves the books.
        """
        s = self.state
        pnl = trade_pnl(s)
        trade_id = s.trade.decision_id or f"{s.symbol}:{s.lineage}:orphan{s.order_seq}"
        await self._ledger_call(
            c.RECORD_TRADE,
            c.TradeRecord.closing(
                s,
                pnl,
                trade_id=trade_id,
                closed_ts=workflow.time(),
                simulated=self._is_simulated,
                engine="fsm",
            ),
        )
        await self._report(carried_move(s, pnl))
        close_books(s, pnl, closes_trade=closes_trade)
        return trade_id, pnl

    async def _book_unsellable(self) -> None:
        """What is held cannot be sold (below the market minimum): a trade row with all of
        it carried as inventory. It counts as a closed trade only if a position had been
        entered (not a buy that only ever got an unsellable amount)."""
        s = self.state
        s.trade.exit_reason = s.trade.exit_reason or ExitReason.UNSELLABLE
        entered = s.trade.entry_ts > 0
        s.trade.entry_ts = s.trade.entry_ts or workflow.time()
        await self._book_trade(closes_trade=entered)

    @property
    def _base(self) -> str:
        return self.state.market.base if self.state.market else ""

    async def _write_off(self, gone: Decimal, why: str) -> None:
        """Part of the open position is not on the account: close it at zero proceeds (its
        cost becomes part of this trade's loss) and say so everywhere."""
        await self._report(write_off_position(self.state, gone, why))

    async def _report(self, move: InventoryMove | None) -> None:
        """Ledger row and notification (the note is set by the core): never silent."""
        if move is None:
            return
        await self._record_inventory(move)
        if move.notice:
            self._notify(move.notice_kind, move.notice)

    async def _cover(self, total: Decimal, why: str) -> None:
        """Write off what the account's total balance does not cover: the inventory (older
        coins) first, then the open position. A gap is confirmed by a second read (which
        waits up to ``balance_settle_seconds`` for the balance to catch up) against what is
        held *now*: the first read may have been taken against an older expectation (a buy
        that filled while the worker was down) or before a fill reached the balance. A
        write-off is never undone, so it is made on a confirmed figure only."""
        s = self.state
        if uncovered(s, total) <= 0:
            return
        held = s.remaining if s.holds_position else ZERO
        rec = await self._reconcile(
            client_order_id=None,
            expect=held + s.inventory.amount,
            summary=f"confirm {self._base} balance",
        )
        for move in cover(s, rec.base_balance, why):
            await self._report(move)

    async def _check_holdings(self) -> None:
        """A reconciliation asked for (resume, worker start, operator): compare the account
        with what the symbol holds in a quiet phase, and report every difference."""
        s = self.state
        why, s.controls.reconcile_requested = s.controls.reconcile_requested or "requested", None
        if not (s.holds_position or s.has_inventory) or s.market is None:
            s.note = f"reconcile ({why}): nothing held, nothing to check"
        else:
            try:
                await self._compare_holdings(why)
            except ActivityError as err:
                # Only a check (any of its reads, the confirming one too): it runs between
                # phases, where a failure must not fail the workflow task. Trading goes on,
                # and every sell checks the account first anyway.
                s.note = (
                    f"reconcile ({why}) failed: {error_message(err)}; sells still "
                    "check the account first"
                )
                self._notify("reconcile", f"{s.symbol}: {s.note}")
        self._publish_details()
        self._publish_memo()

    async def _compare_holdings(self, why: str) -> None:
        s = self.state
        assert s.market is not None
        holding = s.holds_position
        rec = await self._reconcile(
            client_order_id=s.trade.order.client_order_id if holding else None,
            expect=(s.remaining if holding else ZERO) + s.inventory.amount,
            summary=f"reconcile {s.symbol} ({why})",
        )
        found = []
        unknown = holding and bool(s.trade.order.client_order_id) and rec.order is None
        if unknown:  # maybe a lagging order query: report, and write nothing off on it
            found.append(
                f"order {s.trade.order.client_order_id} unknown to the exchange; balance "
                "check left to the next sell"
            )
        elif holding and rec.order is not None and rec.order.status is not OrderStatus.OPEN:
            delta = apply_fill(s, rec.order)  # a delta: nothing counted twice
            if delta > 0:
                found.append(f"{fmt(delta)} more filled than recorded (now counted)")
        before = (s.trade.written_off, s.inventory.amount)
        if not unknown:
            await self._cover(rec.base_balance, f"reconcile, {why}")
        if (s.trade.written_off, s.inventory.amount) != before:
            found.append(s.note)
        if (
            holding
            and (s.remaining <= 0 or is_dust(s.remaining, s.bid, s.market))
            and not s.trade.exit_reason
        ):
            s.trade.exit_reason = ExitReason.SHORTFALL  # close the books of what is left
        if found:
            s.note = f"reconcile ({why}): " + "; ".join(found)
            self._notify("reconcile", f"{s.symbol}: {s.note}")
        else:
            need = (s.remaining if holding else ZERO) + s.inventory.amount
            s.note = (
                f"reconcile ({why}): the account holds {fmt(rec.base_balance)} "
                f"{self._base}, covering the {fmt(need)} this symbol holds"
            )
