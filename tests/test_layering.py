"""Dependencies point downwards only (docs/architecture.md, "Layers"), checked by reading
every module's imports with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks
count too).

A new module must be given a layer in ``LAYERS``; an upward import fails with the module,
the line and both layers named.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("trader", "workflows", "activities", "starter.py", "worker.py")

CORE, BOUNDARY, ADAPTERS, TEMPORAL, RUNTIME, SCRIPTS = range(6)
NAMES = ("core", "boundary", "adapters", "activities/workflows", "runtime", "scripts")

#: Module (or package) prefix -> layer; the longest matching prefix wins.
LAYERS = {
    "trader": CORE,  # the package itself (an empty __init__)
    "trader.core": CORE,
    "trader.contracts": BOUNDARY,
    "trader.search": BOUNDARY,
    "trader.exchange": ADAPTERS,
    "trader.observe": ADAPTERS,
    "trader.hub": ADAPTERS,
    "trader.hub_stream": ADAPTERS,
    "trader.ledger": ADAPTERS,
    "trader.legacy": ADAPTERS,
    "trader.binance_sim": ADAPTERS,
    "trader.telegram": ADAPTERS,
    "trader.telegram_sim": ADAPTERS,
    "trader.config": ADAPTERS,
    "trader.config_paper": ADAPTERS,
    "trader.config_docs": ADAPTERS,
    "trader.backtest": ADAPTERS,
    "trader.parity": ADAPTERS,  # pure in effect, but numpy and file I/O: not the core
    "activities": TEMPORAL,
    "workflows": TEMPORAL,
    "trader.runtime": RUNTIME,
    "starter": SCRIPTS,
    "worker": SCRIPTS,
}
OURS = {"trader", "workflows", "activities", "starter", "worker"}

#: What deterministic workflow code may import of ours: the pure core, the boundary types,
#: the phase-event sink (passed through so workflow and worker share it), and itself.
WORKFLOW_MAY_IMPORT = ("trader.core", "trader.contracts", "trader.search", "trader.observe.events")
#: Outside libraries doing I/O, reading the clock or randomness: never in the core or in
#: workflow code (the core is pure; workflows must replay deterministically).
IMPURE = {
    "aiohttp",
    "ccxt",
    "http",
    "os",
    "pathlib",
    "prometheus_client",
    "random",
    "rich",
    "socket",
    "sqlite3",
    "subprocess",
    "telegram",
    "time",
    "urllib",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module of ours, or the top name of an outside one)
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolve against the importing package
        package = module.split(".")
        package = package if is_package else package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    # ``from pkg import name`` imports the submodule pkg.name when there is one.
    return [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]


def _imports() -> list[Import]:
    paths: list[Path] = []
    for source in SOURCES:
        p = ROOT / source
        paths += [p] if p.is_file() else sorted(p.rglob("*.py"))
    found = []
    for path in paths:
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, path.name == "__init__.py"):
                    top = target.split(".")[0]
                    found.append(Import(module, target if top in OURS else top, node.lineno))
    return found


IMPORTS = _imports()


def layer_of(name: str) -> int | None:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default="")
    return LAYERS.get(best)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _ours(imp: Import) -> bool:
    return imp.target.split(".")[0] in OURS


def test_the_analysis_sees_the_imports():
    # Guards the guard: a broken resolver would find nothing and pass everything.
    pairs = {(i.module, i.target) for i in IMPORTS}
    assert ("workflows.base", "trader.search") in pairs
    assert ("workflows.symbol_trader", "trader.contracts") in pairs
    assert ("trader.runtime.worker", "activities.exchange") in pairs
    assert ("trader.exchange.ccxt_adapter", "ccxt") in pairs


def test_every_module_has_a_layer():
    modules = {i.module for i in IMPORTS} | {i.target for i in IMPORTS if _ours(i)}
    assert not sorted(m for m in modules if layer_of(m) is None), "add them to LAYERS"


def test_nothing_imports_a_higher_layer():
    upward = [
        f"{i.module}:{i.line} imports {i.target} "
        f"({NAMES[layer_of(i.module) or 0]} -> {NAMES[layer_of(i.target) or 0]})"
        for i in IMPORTS
        if _ours(i) and (layer_of(i.target) or 0) > (layer_of(i.module) or 0)
    ]
    assert not upward, "\n".join(upward)


def test_workflows_import_only_the_core_the_boundary_and_the_event_sink():
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _within(i.module, ("workflows",))
        and (
            (_ours(i) and not _within(i.target, (*WORKFLOW_MAY_IMPORT, "workflows")))
            or i.target in IMPURE
        )
    ]
    assert not bad, "\n".join(bad)


def test_activities_never_import_workflows():
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _within(i.module, ("activities",)) and _within(i.target, ("workflows",))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("forbidden", ["temporalio", *sorted(IMPURE)])
def test_the_core_is_pure(forbidden):
    bad = [
        f"{i.module}:{i.line}"
        for i in IMPORTS
        if _within(i.module, ("trader.core",)) and i.target == forbidden
    ]
    assert not bad, f"{forbidden} imported by the core at {bad}"
