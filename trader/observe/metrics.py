"""Prometheus metrics of the worker.

Phase metrics are fed by the event sink (never on replay, never twice); order and watch
metrics by the activities (which never replay). Every series carries a ``worker`` label so
several workers add up: sum over ``worker`` for counters, and take the series with the
newest ``trader_phase_entered_timestamp_seconds`` for a symbol's current phase.
"""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from trader.observe.events import PhaseEvent

_ORDER_OUTCOMES = {"order_placed": "placed", "filled": "filled", "partial_fill": "filled",
                   "partial_timeout": "filled", "order_rejected": "rejected",
                   "timeout": "cancelled", "cancelled": "cancelled"}


class TraderMetrics:
    def __init__(self, *, worker: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.worker = worker or socket.gethostname()
        self.registry = registry or CollectorRegistry()
        r, w = self.registry, ["worker"]
        self.phase = Gauge("trader_phase", "1 for the phase a symbol is in (per worker)",
                           ["symbol", "phase", *w], registry=r)
        self.phase_entered = Gauge("trader_phase_entered_timestamp_seconds",
                                   "When the symbol entered its current phase",
                                   ["symbol", *w], registry=r)
        self.transitions = Counter("trader_transitions_total", "Accepted transitions",
                                   ["src", "dst", "trigger", *w], registry=r)
        self.time_in_phase = Histogram(
            "trader_phase_duration_seconds", "Time spent in a phase", ["phase", *w],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 14400),
            registry=r)
        self.orders = Counter("trader_orders_total", "Order outcomes seen by the phase machine",
                              ["symbol", "side", "outcome", *w], registry=r)
        self.fill_latency = Histogram(
            "trader_fill_latency_seconds", "Order placed to (partly) filled", ["side", *w],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=r)
        self.realized_pnl = Gauge("trader_realized_pnl", "Realized net PnL, quote currency",
                                  ["symbol", *w], registry=r)
        self.fees = Gauge("trader_fees_paid", "Fees of closed trades, quote currency",
                          ["symbol", *w], registry=r)
        self.trades = Counter("trader_trades_closed_total", "Closed trades",
                              ["symbol", *w], registry=r)
        self.open_position = Gauge("trader_open_position_amount", "Base amount held",
                                   ["symbol", *w], registry=r)
        self.exposure = Gauge("trader_exposure", "Held amount x last price, quote currency",
                              ["symbol", *w], registry=r)
        self.errors = Counter("trader_errors_total", "Transitions into ERROR",
                              ["symbol", "phase", *w], registry=r)
        self.watch_lag = Gauge("trader_watch_tick_lag_seconds",
                               "Age of the newest ticker a watch evaluated", ["symbol", *w],
                               registry=r)
        self.stuck = Gauge("trader_stuck_symbols", "Symbols stuck in a working phase",
                           [*w], registry=r)
        self._phases: dict[str, str] = {}

    def __call__(self, e: PhaseEvent) -> None:
        """Listener for the event sink."""
        w = self.worker
        previous = self._phases.get(e.symbol)
        if previous is not None:
            self.phase.labels(e.symbol, previous, w).set(0)
        self.phase.labels(e.symbol, e.dst, w).set(1)
        self._phases[e.symbol] = e.dst
        self.phase_entered.labels(e.symbol, w).set(e.ts)
        self.transitions.labels(e.src, e.dst, e.trigger, w).inc()
        if e.src_since:
            self.time_in_phase.labels(e.src, w).observe(max(e.ts - e.src_since, 0))
        side = "sell" if e.src in ("place_sell", "wait_sell_fill") else "buy"
        if e.src in ("place_buy", "wait_fill", "place_sell", "wait_sell_fill"):
            outcome = _ORDER_OUTCOMES.get(e.trigger)
            if outcome:
                self.orders.labels(e.symbol, side, outcome, w).inc()
            if e.src in ("wait_fill", "wait_sell_fill") and outcome == "filled":
                self.fill_latency.labels(side, w).observe(max(e.ts - e.src_since, 0))
        if e.trigger == "failed":
            self.errors.labels(e.symbol, e.src, w).inc()
        if e.trigger == "recorded":
            self.trades.labels(e.symbol, w).inc()
        self.realized_pnl.labels(e.symbol, w).set(float(e.realized_pnl_total))
        self.fees.labels(e.symbol, w).set(float(e.fees_total))
        self.open_position.labels(e.symbol, w).set(float(e.amount))
        self.exposure.labels(e.symbol, w).set(float(e.amount * e.price))

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
