"""A local Binance-compatible spot exchange for tests, demos, benchmarks (docs/binance-sim.md)."""

from __future__ import annotations

from trader.binance_sim.config import SimConfig
from trader.binance_sim.faults import FaultRule
from trader.binance_sim.server import SimServer

__all__ = ["FaultRule", "SimConfig", "SimServer"]
