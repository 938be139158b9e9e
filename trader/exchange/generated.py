"""A generated market: a seeded random walk with jumps, the default demo feed.

Deterministic in (seed, symbol, origin, time): every process that builds it with the same
settings sees the same price at the same instant, which is what lets a replacement worker
trade on exactly the market the killed one saw. Prices are whole numbers of price ticks,
so they are exact Decimals; only the random steps are drawn as floats.
"""

from __future__ import annotations

import random
from array import array
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import Candle, MarketInfo
from trader.exchange.feed import MarketTable


class GeneratedMarketConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    tick_ms: int = 1000
    """One random step per this many milliseconds."""
    volatility_bps: Decimal = Decimal(8)
    """Standard deviation of one step, in basis points."""
    jump_probability: Decimal = Decimal("0.01")
    jump_bps: Decimal = Decimal(150)
    """Size of a jump; two of three jumps are drops (so drop triggers fire)."""
    mean_reversion: Decimal = Decimal("0.002")
    """Pull per step toward the start price (keeps a long demo in range)."""
    start_prices: dict[str, Decimal] = {}
    quote_volume: Decimal = Decimal(50_000_000)


def market_for(symbol: str, price: Decimal) -> MarketInfo:
    """Precision and minimums that fit the price's magnitude (works for 0.000053 too)."""
    base, quote = symbol.split("/")
    exponent = price.adjusted()  # floor(log10(price))
    price_tick = Decimal(1).scaleb(exponent - 4)
    amount_step = min(
        Decimal(1).scaleb(-exponent - 2 if exponent >= 0 else -exponent - 4), Decimal(1)
    )
    # Quote currencies priced below 1 per base are BTC/ETH-like: a small minimum value.
    min_cost = Decimal(5) if price >= 1 else Decimal("0.0001")
    return MarketInfo(
        symbol=symbol,
        base=base,
        quote=quote,
        price_tick=price_tick,
        amount_step=amount_step,
        min_amount=amount_step,
        min_cost=min_cost,
    )


class GeneratedMarket(MarketTable):
    _source = "the generated market"

    def __init__(self, config: GeneratedMarketConfig, *, origin_ms: int) -> None:
        self.config = config
        self.origin_ms = origin_ms
        self._markets = {s: market_for(s, p) for s, p in config.start_prices.items()}
        self._walks: dict[str, array[int]] = {}
        self._rngs: dict[str, random.Random] = {}

    def _ticks_at(self, symbol: str, step: int) -> int:
        walk = self._walks.get(symbol)
        if walk is None:
            start = self.config.start_prices[symbol] / self.market(symbol).price_tick
            walk = self._walks[symbol] = array("q", [int(start)])
            self._rngs[symbol] = random.Random(f"{self.config.seed}:{symbol}")
        rng, cfg = self._rngs[symbol], self.config
        vol = float(cfg.volatility_bps) / 10_000
        jump_p, jump = float(cfg.jump_probability), float(cfg.jump_bps) / 10_000
        revert = float(cfg.mean_reversion)
        home = walk[0]
        while len(walk) <= step:
            x = walk[-1]
            move = rng.gauss(0.0, vol)
            if rng.random() < jump_p:
                move += -jump if rng.random() < 2 / 3 else jump
            nxt = x + round(x * move) - round((x - home) * revert)
            walk.append(max(nxt, 1))
        return walk[step]

    def _step(self, ts_ms: int) -> int:
        return max(ts_ms - self.origin_ms, 0) // self.config.tick_ms

    def mid(self, symbol: str, ts_ms: int) -> Decimal:
        tick = self.market(symbol).price_tick  # first: an unknown symbol is BadSymbol
        return self._ticks_at(symbol, self._step(ts_ms)) * tick

    def quote_volume(self, symbol: str, ts_ms: int) -> Decimal:
        self.market(symbol)
        return self.config.quote_volume

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[Candle]:
        tick = self.market(symbol).price_tick
        out = []
        start = max(since_ms, self.origin_ms)
        start -= start % 60_000
        for minute in range(start, until_ms + 1, 60_000)[-limit:] if limit > 0 else range(0):
            first, last = self._step(minute), self._step(min(minute + 59_999, until_ms))
            ticks = [self._ticks_at(symbol, k) for k in range(first, last + 1)]
            out.append(
                Candle(
                    ts_ms=minute,
                    open=ticks[0] * tick,
                    high=max(ticks) * tick,
                    low=min(ticks) * tick,
                    close=ticks[-1] * tick,
                )
            )
        return out
