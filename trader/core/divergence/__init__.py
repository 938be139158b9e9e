"""The hybrid validator's comparison: pure, from plain views of both engines and the exchange.

``compare_engines`` (engines.py) and ``compare_exchange`` / ``compare_running``
(account.py) take what the ``hybrid_validate`` activity gathered (each engine's symbols as
``SideView``, its ledger trades as ``TradeView``, the exchange's balances and open orders)
and return every ``Divergence`` they see now (``missing_sides``, sides.py: one for a whole
engine that is not there, its per-symbol ones held); ``track`` decides which of them to report:
a divergence is reported once it has been seen on ``confirm_checks`` consecutive checks
(two engines a moment apart are not a divergence), then not again while it stays the same;
one that is absent for ``clear_checks`` consecutive checks and comes back is reported
again (a shorter blink is the same episode). How to read each kind and the tolerances:
docs/migration.md.
"""

from trader.core.divergence.account import (
    NO_DUST,
    compare_exchange,
    compare_running,
    ledger_unavailable,
    unreadable_legacy,
)
from trader.core.divergence.engines import compare_engines
from trader.core.divergence.sides import MissingSides, missing_sides
from trader.core.divergence.views import (
    ORDER_PHASES,
    Divergence,
    DivergenceKind,
    DivergenceTracker,
    EngineView,
    ExchangeOrder,
    ExchangeView,
    PhaseClass,
    SideView,
    Tolerances,
    TradeView,
    divergence_key,
    track,
)

__all__ = [
    "NO_DUST",
    "ORDER_PHASES",
    "Divergence",
    "DivergenceKind",
    "DivergenceTracker",
    "EngineView",
    "ExchangeOrder",
    "ExchangeView",
    "MissingSides",
    "PhaseClass",
    "SideView",
    "Tolerances",
    "TradeView",
    "compare_engines",
    "compare_exchange",
    "compare_running",
    "divergence_key",
    "ledger_unavailable",
    "missing_sides",
    "track",
    "unreadable_legacy",
]
