"""The legacy engine (``FSM_MODE=legacy``): the pure core driven by plain asyncio, its state in
SQLite, no Temporal (docs/architecture.md, "Legacy engine")."""
