"""The observability tests share one scene of real workflows (tests/observe/scene.py)."""

from tests.observe.scene import scene

__all__ = ["scene"]
