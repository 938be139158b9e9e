"""Reading the shapes of earlier releases: a flat dict regrouped into nested models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def nest(data: Mapping[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """``data`` with every key listed in ``paths`` moved to its nested place (a value
    already at that place wins: the newer shape is the truth)."""
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in paths}
    for key, path in paths.items():
        if key not in data:
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, BaseModel):
                child = child.model_dump()
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node.setdefault(path[-1], data[key])
    return out


def flatten(data: dict[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """``data`` (a dump of the nested shape) with each key of ``paths`` also written at its
    flat place, for readers of the earlier shape (a path not in ``data`` is skipped)."""
    out = dict(data)
    for key, path in paths.items():
        node: Any = data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            out.setdefault(key, node)
    return out
