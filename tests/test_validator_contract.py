"""The validator's result crosses the workflow boundary: a kind this release does not know
(a newer worker's, in a result or in a history) still decodes, as plain text."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload

from trader import contracts as c
from trader.core.divergence import Divergence, DivergenceKind
from trader.runtime.converter import DATA_CONVERTER


async def test_a_result_with_an_unknown_kind_decodes():
    result = {
        "tracker": {"seen": {"a_later_kind:fsm:": 2}, "reported": ["a_later_kind:fsm:"]},
        "reported": [
            {"kind": "a_later_kind", "symbol": "fsm", "detail": "d", "values": {"fsm": "x"}}
        ],
        "current": 1,
        "symbols": 2,
    }
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(result).encode())
    [got] = await DATA_CONVERTER.decode([payload], [c.VALIDATE.result])
    [d] = got.reported
    assert (d.kind, d.key) == ("a_later_kind", "a_later_kind:fsm:")


def test_the_reported_divergence_has_the_fields_of_a_divergence():
    """The workflow's type reads a ``Divergence`` payload and the reverse (old histories)."""
    assert c.ReportedDivergence.model_fields.keys() == Divergence.model_fields.keys()
    d = Divergence(kind=DivergenceKind.SIDE_MISSING, symbol="fsm", detail="d", values={})
    assert c.ReportedDivergence.of(d).key == d.key
