"""A side that is not there at all: one ``side_missing`` divergence for the whole engine,
instead of one per symbol, for as long as it lasts (``track`` makes that one episode)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from trader.core.divergence.views import Divergence, DivergenceKind, EngineView


class MissingSides(BaseModel):
    """Which sides are missing, and their one divergence each."""

    model_config = ConfigDict(frozen=True)

    fsm: bool = False
    legacy: bool = False
    divergences: list[Divergence] = []


def missing_sides(fsm: EngineView, legacy: EngineView | None) -> MissingSides:
    """The FSM side is missing when it runs SymbolTraders and none answered its ``state``
    query for want of a worker (an FSM shadow down: its workflows Running on the server,
    nobody polling their queue); one that answered with an error, or any one answering, is
    per symbol (``fsm_state_unavailable``). The legacy side (``both`` mode, ``legacy`` not
    None) is missing when its state holds no symbol of this exchange while the FSM runs
    some (the file absent or empty, the engine not running on this data dir), or when no
    engine holds the file (``down``: stopped or killed; its rows stay). While a side
    is missing its per-symbol and engine divergences go to ``track`` as ``held`` (counted,
    not reported, not cleared); the primary's exchange reconciliation goes on (an FSM
    primary's unreadable symbols are skipped there)."""
    out = []
    running = len(fsm.symbols) + len(fsm.unreadable)
    if fsm.unreadable and not fsm.symbols and set(fsm.unreadable) <= set(fsm.unanswered):
        out.append(
            Divergence(
                kind=DivergenceKind.SIDE_MISSING,
                symbol="fsm",
                detail=f"fsm: none of its {running} running SymbolTraders answered (no worker "
                "serves their task queue: an FSM shadow down?); its symbols are not compared "
                "until one answers",
                values={"fsm": f"{running} unanswered"},
            )
        )
    fsm_missing = bool(out)
    if legacy is not None and running and legacy.down:
        held = len(legacy.symbols) + len(legacy.unreadable)
        out.append(
            Divergence(
                kind=DivergenceKind.SIDE_MISSING,
                symbol="legacy",
                detail=f"legacy: no legacy engine runs on its state (the file is there, its "
                f"lock is free: the engine stopped or was killed), the fsm engine runs "
                f"{running}; its rows are its last ones, not compared until it runs again",
                values={
                    "legacy": f"not running ({held} symbol{'s' * (held != 1)} in its state)",
                    "fsm": f"{running} running",
                },
            )
        )
    elif legacy is not None and running and not legacy.symbols and not legacy.unreadable:
        out.append(
            Divergence(
                kind=DivergenceKind.SIDE_MISSING,
                symbol="legacy",
                detail=f"legacy: its state holds no symbol of this exchange, the fsm engine "
                f"runs {running} (the legacy engine not running on this data dir?); the "
                "engines are not compared until it does",
                values={"legacy": "no state", "fsm": f"{running} running"},
            )
        )
    return MissingSides(fsm=fsm_missing, legacy=len(out) > fsm_missing, divergences=out)
