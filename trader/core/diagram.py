"""Render the transition table as a Mermaid state diagram (for docs/architecture.md).

python -m trader.core.diagram
"""

from __future__ import annotations

from trader.core.phases import TRANSITIONS, Phase


def mermaid() -> str:
    """The phase diagram, one arrow per edge of the table, triggers as labels."""
    edges: dict[tuple[Phase, Phase], list[str]] = {}
    for (src, trigger), dst in TRANSITIONS.items():
        edges.setdefault((src, dst), []).append(trigger.value)
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.WARMUP.name}"]
    for (src, dst), triggers in edges.items():
        lines.append(f"    {src.name} --> {dst.name}: {' / '.join(triggers)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())
