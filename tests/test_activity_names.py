"""Every activity name carries its input and result types (``contracts.ActivityName``), and
workflow calls are typed through them: each implementation the worker registers must take
and return exactly those types, or a typed call would be a lie."""

from __future__ import annotations

import typing

from temporalio import activity

from activities.exchange import ExchangeActivities
from activities.ledger import LedgerActivities
from activities.market import MarketActivities
from activities.notify import NotifyActivities
from activities.portfolio import PortfolioActivities
from activities.validator import ValidatorActivities
from activities.watch_beat import WatchBeatActivities
from trader import contracts as c

CLASSES = (
    ExchangeActivities,
    LedgerActivities,
    MarketActivities,
    NotifyActivities,
    PortfolioActivities,
    ValidatorActivities,
    WatchBeatActivities,
)


def _implementations() -> dict[str, typing.Any]:
    found = {}
    for cls in CLASSES:
        for member in vars(cls).values():
            defn = activity._Definition.from_callable(member) if callable(member) else None
            if defn is not None:
                assert defn.name is not None  # none of them is the dynamic activity
                assert defn.name not in found, f"{defn.name} implemented twice"
                found[defn.name] = member
    return found


def test_every_activity_name_has_one_implementation_and_back():
    assert set(_implementations()) == set(c.ACTIVITIES)
    assert len(set(c.ACTIVITIES)) == len(c.ACTIVITIES)


def test_each_implementation_takes_and_returns_its_names_types():
    impls = _implementations()
    for name in c.ACTIVITIES:
        hints = typing.get_type_hints(impls[name])
        ret = hints.pop("return")
        [arg] = hints.values()
        assert (arg, ret) == (name.input, name.result), name
