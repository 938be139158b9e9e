"""Prometheus metrics of one worker (docs/metrics.md lists every series).

Three feeds, none of which can count twice on replay:
- phase events from the sink (published only when not replaying, deduplicated): phases,
  transitions, time in phase, orders, fills, trades, PnL, fees, position, exposure;
- the activities (activities never replay): exchange errors, watch lag and checkpoints,
  inventory movements (counted when the ledger row is inserted: once, however retried);
- visibility, polled by the worker: stuck symbols and symbols per phase.

Every series carries a ``worker`` label (the Temporal client identity, ``pid@host``), so
several workers add up: ``sum without (worker)`` for counters and histograms; for the
per-symbol gauges take the worker that saw the symbol's newest transition (docs).
Money is Decimal everywhere else: it becomes float only here, at the Prometheus boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from trader.core.divergence import DivergenceKind
from trader.core.errors import ConfigError
from trader.observe.events import PhaseEvent

# (phase the transition leaves, trigger) -> (order side, outcome). Only the order phases
# count; ERROR's reconciliation resumes orders already counted.
ORDER_OUTCOMES: dict[tuple[str, str], tuple[str, str]] = {
    ("place_buy", "order_placed"): ("buy", "placed"),
    ("place_buy", "order_rejected"): ("buy", "rejected"),
    ("wait_fill", "filled"): ("buy", "filled"),
    ("wait_fill", "partial_timeout"): ("buy", "partial"),
    ("wait_fill", "force_exit"): ("buy", "partial"),  # cancelled after a partial fill
    ("wait_fill", "timeout"): ("buy", "cancelled"),
    ("wait_fill", "cancelled"): ("buy", "cancelled"),
    ("place_sell", "order_placed"): ("sell", "placed"),
    ("place_sell", "order_rejected"): ("sell", "rejected"),
    ("wait_sell_fill", "filled"): ("sell", "filled"),
    ("wait_sell_fill", "partial_fill"): ("sell", "partial"),
    ("wait_sell_fill", "timeout"): ("sell", "cancelled"),
    ("wait_sell_fill", "cancelled"): ("sell", "cancelled"),
}
_PHASE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 14400, 86400)
_FILL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class EngineLabelled(Collector):
    """Every sample of ``inner`` with ``engine="<name>"`` added: one engine's series tell
    apart from the other's on the same Prometheus, with no label added to the FSM worker's.
    ``add`` serves another engine's registry through it too (``FSM_MODE=both``: both
    engines in one process, one endpoint); a family both have is one family."""

    def __init__(self, inner: CollectorRegistry, engine: str) -> None:
        self.inner, self.engine = inner, engine
        self._others: list[EngineLabelled] = []

    def add(self, other: EngineLabelled) -> None:
        self._others.append(other)

    def discard(self, other: EngineLabelled) -> None:
        """Serve ``other`` no more (a both-mode FSM shadow's worker that stopped)."""
        if other in self._others:
            self._others.remove(other)

    def _all(self) -> Iterable[EngineLabelled]:
        # What was added to an added one is served too (the shadow's health, on the
        # legacy engine's registry, served by the FSM worker's endpoint).
        yield self
        for other in self._others:
            yield from other._all()

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for labelled in self._all():
            for family in labelled.inner.collect():
                samples = [
                    s._replace(labels={**s.labels, "engine": labelled.engine})
                    for s in family.samples
                ]
                if family.name in families:
                    families[family.name].samples.extend(samples)
                else:
                    family.samples = samples
                    families[family.name] = family
        yield from families.values()


class ShadowHealth:
    """``FSM_MODE=both``: whether the shadow engine runs (``trader_shadow_up``) and how often
    it failed (``trader_shadow_failures_total``), labelled with the shadow's ``engine``. Its
    own registry, served beside the primary's (``TraderMetrics.serve_also_health``): it
    outlives every restart of the shadow."""

    def __init__(self, engine: str, worker: str) -> None:
        self.worker = worker
        self.registry = r = CollectorRegistry()
        self.labelled = EngineLabelled(r, engine)
        self.up = Gauge(
            "trader_shadow_up", "1 while the both-mode shadow runs", ["worker"], registry=r
        )
        self.failures = Counter(
            "trader_shadow_failures_total",
            "Failures of the both-mode shadow (each logged at ERROR with its cause)",
            ["worker"],
            registry=r,
        )
        self.up.labels(worker).set(0)
        self.failures.labels(worker)

    def running(self) -> None:
        self.up.labels(self.worker).set(1)

    def failed(self) -> None:
        self.up.labels(self.worker).set(0)
        self.failures.labels(self.worker).inc()

    def stopped(self) -> None:
        self.up.labels(self.worker).set(0)


class TraderMetrics:
    """The worker's registry; call it with a ``PhaseEvent`` (it is a sink listener)."""

    def __init__(
        self, worker: str, *, registry: CollectorRegistry | None = None, engine: str | None = None
    ) -> None:
        """``engine``: served with a constant ``engine`` label on every sample (the legacy
        engine's ``legacy``); unset, the series are as they always were (the FSM worker)."""
        self.worker = worker
        self.registry = r = registry or CollectorRegistry()
        self.served: CollectorRegistry = r
        self.labelled: EngineLabelled | None = None
        if engine is not None:
            self.served = CollectorRegistry()
            self.labelled = EngineLabelled(r, engine)
            self.served.register(self.labelled)
        w = ["worker"]
        self.phase = Gauge(
            "trader_phase", "1 for the phase the symbol is in", ["symbol", "phase", *w], registry=r
        )
        self.phase_entered = Gauge(
            "trader_phase_entered_timestamp_seconds",
            "When the symbol entered its current phase",
            ["symbol", *w],
            registry=r,
        )
        self.transitions = Counter(
            "trader_transitions_total",
            "Accepted transitions",
            ["src", "dst", "trigger", *w],
            registry=r,
        )
        self.phase_duration = Histogram(
            "trader_phase_duration_seconds",
            "Time spent in a phase, observed when it is left",
            ["phase", *w],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.orders = Counter(
            "trader_orders_total",
            "Order outcomes seen by the phase machine",
            ["symbol", "side", "outcome", *w],
            registry=r,
        )
        self.fill_latency = Histogram(
            "trader_fill_latency_seconds",
            "Order placed to filled, as seen by the workflow",
            ["side", *w],
            buckets=_FILL_BUCKETS,
            registry=r,
        )
        self.trades = Counter(
            "trader_trades_closed_total", "Closed trades", ["symbol", *w], registry=r
        )
        self.profit = Counter(
            "trader_realized_profit_quote_total",
            "Sum of winning trades' net PnL, quote currency",
            ["symbol", *w],
            registry=r,
        )
        self.loss = Counter(
            "trader_realized_loss_quote_total",
            "Sum of losing trades' net loss (positive), quote currency",
            ["symbol", *w],
            registry=r,
        )
        self.fees = Counter(
            "trader_fees_quote_total",
            "Fees of closed trades, quote currency",
            ["symbol", *w],
            registry=r,
        )
        self.pnl_total = Gauge(
            "trader_realized_pnl_quote",
            "The symbol's lifetime realized net PnL (from its state)",
            ["symbol", *w],
            registry=r,
        )
        self.position = Gauge(
            "trader_position_amount", "Base amount held", ["symbol", *w], registry=r
        )
        self.exposure = Gauge(
            "trader_exposure_quote", "Held amount x last price", ["symbol", *w], registry=r
        )
        self.phase_errors = Counter(
            "trader_phase_errors_total",
            "Transitions into ERROR, by the phase that failed",
            ["symbol", "phase", *w],
            registry=r,
        )
        self.exchange_errors = Counter(
            "trader_exchange_errors_total",
            "Failed exchange call attempts, by error type",
            ["call", "type", *w],
            registry=r,
        )
        self.ledger_errors = Counter(
            "trader_ledger_errors_total",
            "Failed ledger write attempts (retried until the database takes them), by error type",
            ["call", "type", *w],
            registry=r,
        )
        self.watch_lag = Gauge(
            "trader_watch_tick_lag_seconds",
            "Age of the newest ticker a watch evaluated",
            ["symbol", "kind", *w],
            registry=r,
        )
        self.watch_seen = Gauge(
            "trader_watch_tick_timestamp_seconds",
            "When a watch last evaluated a ticker (every tick: silence means nobody watches)",
            ["symbol", "kind", *w],
            registry=r,
        )
        self.watch_checkpoint = Gauge(
            "trader_watch_checkpoint_timestamp_seconds",
            "When a watch last returned to its workflow",
            ["symbol", "kind", *w],
            registry=r,
        )
        self.inventory = Counter(
            "trader_inventory_movements_total",
            "Coins carried after a trade (below the market minimum) or "
            "written off (shortfall: the account held less)",
            ["symbol", "kind", *w],
            registry=r,
        )
        self.inventory_cost = Counter(
            "trader_inventory_cost_quote_total",
            "Cost basis of those movements, quote currency",
            ["symbol", "kind", *w],
            registry=r,
        )
        self.stuck = Gauge(
            "trader_stuck_symbols",
            "Symbols in a working phase longer than the stuck timeout",
            w,
            registry=r,
        )
        self.symbols = Gauge(
            "trader_symbols",
            "Running symbols per phase (from visibility)",
            ["phase", *w],
            registry=r,
        )
        self.divergences = Counter(
            "trader_divergences_total",
            "Divergences the hybrid validator reported (each once per episode), by kind",
            ["kind", *w],
            registry=r,
        )
        for kind in DivergenceKind:  # at 0 from the start: increase() sees a first one
            self.divergences.labels(kind.value, worker)
        self.validator_checks = Counter(
            "trader_validator_checks_total",
            "Hybrid validator check attempts by outcome (ok, failed: retried, then skipped)",
            ["outcome", *w],
            registry=r,
        )
        for outcome in ("ok", "failed"):
            self.validator_checks.labels(outcome, worker)
        self.validator_last_success = Gauge(
            "trader_validator_last_success_timestamp_seconds",
            "When the hybrid validator last completed a check (epoch s; 0: not yet here)",
            w,
            registry=r,
        )
        self.validator_last_success.labels(worker)
        self._phases: dict[str, str] = {}
        self._server: WSGIServer | None = None

    def __call__(self, e: PhaseEvent) -> None:
        w = self.worker
        previous = self._phases.get(e.symbol)
        if previous is not None:
            self.phase.labels(e.symbol, previous, w).set(0)
        self.phase.labels(e.symbol, e.dst, w).set(1)
        self._phases[e.symbol] = e.dst
        self.phase_entered.labels(e.symbol, w).set(e.ts)
        self.transitions.labels(e.src, e.dst, e.trigger, w).inc()
        in_phase = max(e.ts - e.src_since, 0.0)
        self.phase_duration.labels(e.src, w).observe(in_phase)
        order = ORDER_OUTCOMES.get((e.src, e.trigger))
        if order is not None:
            side, outcome = order
            self.orders.labels(e.symbol, side, outcome, w).inc()
            if outcome in ("filled", "partial") and e.src.startswith("wait_"):
                self.fill_latency.labels(side, w).observe(in_phase)
        if e.dst == "error":
            self.phase_errors.labels(e.symbol, e.src, w).inc()
        if e.trade_pnl is not None:
            self.trades.labels(e.symbol, w).inc()
            if e.trade_pnl >= 0:
                self.profit.labels(e.symbol, w).inc(float(e.trade_pnl))
            else:
                self.loss.labels(e.symbol, w).inc(float(-e.trade_pnl))
            self.fees.labels(e.symbol, w).inc(float(e.trade_fees or Decimal(0)))
        self.pnl_total.labels(e.symbol, w).set(float(e.realized_pnl_total))
        self.position.labels(e.symbol, w).set(float(e.position))
        self.exposure.labels(e.symbol, w).set(float(e.position * e.price))

    # --- activity and visibility feeds ----------------------------------------------------
    def exchange_error(self, call: str, error_type: str) -> None:
        self.exchange_errors.labels(call, error_type, self.worker).inc()

    def ledger_error(self, call: str, error_type: str) -> None:
        self.ledger_errors.labels(call, error_type, self.worker).inc()

    def inventory_movement(self, symbol: str, kind: str, cost: Decimal) -> None:
        self.inventory.labels(symbol, kind, self.worker).inc()
        self.inventory_cost.labels(symbol, kind, self.worker).inc(float(cost))
        if kind == "inventory_write_off":  # a realized loss outside any trade
            self.loss.labels(symbol, self.worker).inc(float(cost))

    def divergence(self, kind: str) -> None:
        self.divergences.labels(kind, self.worker).inc()

    def validator_check(self, *, ok: bool) -> None:
        self.validator_checks.labels("ok" if ok else "failed", self.worker).inc()
        if ok:
            self.validator_last_success.labels(self.worker).set_to_current_time()

    def watch_tick(self, symbol: str, kind: str, lag_s: float, *, ts: float) -> None:
        self.watch_lag.labels(symbol, kind, self.worker).set(lag_s)
        self.watch_seen.labels(symbol, kind, self.worker).set(ts)

    def watch_returned(self, symbol: str, kind: str, ts: float) -> None:
        self.watch_checkpoint.labels(symbol, kind, self.worker).set(ts)

    def set_stuck(self, count: int) -> None:
        self.stuck.labels(self.worker).set(count)

    def set_phase_counts(self, counts: dict[str, int]) -> None:
        for phase, n in counts.items():
            self.symbols.labels(phase, self.worker).set(n)

    # --- HTTP -----------------------------------------------------------------------------
    def serve_also(self, other: TraderMetrics) -> None:
        """Serve ``other``'s series on this endpoint too (both labelled by engine)."""
        if self.labelled is None or other.labelled is None:
            raise ValueError("both registries need an engine label to share an endpoint")
        self.labelled.add(other.labelled)

    def serve_health(self, health: ShadowHealth) -> None:
        """Serve the shadow's health series on this endpoint too."""
        if self.labelled is None:
            raise ValueError("the shadow's health needs an engine-labelled registry")
        self.labelled.add(health.labelled)

    def serve_no_more(self, other: TraderMetrics) -> None:
        """Undo ``serve_also`` (``other``'s engine stopped; a new one may take its place)."""
        if self.labelled is not None and other.labelled is not None:
            self.labelled.discard(other.labelled)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on a daemon thread until ``close``."""
        try:
            self._server, _ = start_http_server(port, addr=addr, registry=self.served)
        except OSError as exc:  # e.g. the port is taken: say which setting to change
            raise ConfigError(
                f"PROMETHEUS_PORT: cannot serve metrics on {addr}:{port}: {exc} "
                "(another worker on this host? give each its own port)"
            ) from None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
