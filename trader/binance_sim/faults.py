"""Fault injection per endpoint, armed by tests over ``/_sim/faults`` or in-process.

A rule fires on the next ``count`` requests whose ``"METHOD /path"`` matches ``endpoint``
(``"*"``: any Binance endpoint; ``count`` None: for as long as it is armed); rules are
consulted in the order they were added and the first that fires wins. A rule with a
``probability`` below 1 fires on that share of the matching requests, drawn from the book's
seeded generator (a campaign is reproducible for a given seed and request sequence); when it
does not fire the request goes on to the next rule, and no shot is used. Kinds:

- ``latency``: sleep ``seconds``, then serve the request normally.
- ``http_5xx``: answer ``status`` (500/502/503) with a proxy-style HTML body, doing nothing.
- ``rate_limit``: HTTP 429, ``Retry-After: seconds``, Binance code -1003, doing nothing.
- ``drop``: close the connection before doing anything.
- ``accept_then_drop``: do the request (e.g. accept the order), then close the connection
  without a response.
- ``accept_then_hang``: do the request, then hold the response ``seconds`` (a client that
  times out, or is SIGKILLed, never learns the outcome).
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "latency", "http_5xx", "rate_limit", "drop", "accept_then_drop", "accept_then_hang"
]


class FaultRule(BaseModel):
    """One armed fault, as posted to ``POST /_sim/faults``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = "*"
    """``"POST /api/v3/order"``; ``"*"`` matches every ``/api`` request."""
    kind: FaultKind
    count: int | None = Field(default=1, ge=1)
    """Fires on this many matching requests, then disarms; None: never disarms."""
    seconds: float = Field(default=0, ge=0)
    """latency / accept_then_hang: the delay; rate_limit: the Retry-After value."""
    status: int = Field(default=503, ge=500, le=599)
    """http_5xx: the status code."""
    probability: float = Field(default=1.0, gt=0, le=1)
    """Share of the matching requests it fires on (seeded draws)."""


class FaultBook:
    """The armed rules and how many times each has fired."""

    def __init__(self, *, seed: int = 0) -> None:
        self._rules: list[tuple[FaultRule, int | None]] = []  # (rule, shots left)
        self._rng = random.Random(seed)
        self.fired: list[tuple[str, str]] = []
        """(endpoint hit, kind) for every fault that fired, oldest first."""

    def add(self, rule: FaultRule) -> None:
        self._rules.append((rule, rule.count))

    def clear(self) -> None:
        self._rules.clear()

    def armed(self) -> list[FaultRule]:
        """The rules with shots left, each with ``count`` set to what is left."""
        return [r.model_copy(update={"count": left}) for r, left in self._rules]

    def take(self, endpoint: str) -> FaultRule | None:
        """The rule that fires on this request (consuming one shot), or None."""
        for i, (rule, left) in enumerate(self._rules):
            if rule.endpoint in ("*", endpoint):
                if rule.probability < 1 and self._rng.random() >= rule.probability:
                    continue
                if left is not None and left <= 1:
                    del self._rules[i]
                elif left is not None:
                    self._rules[i] = (rule, left - 1)
                self.fired.append((endpoint, rule.kind))
                return rule
        return None
