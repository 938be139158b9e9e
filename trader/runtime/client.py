"""Connect to Temporal and make sure the search attributes exist on that server."""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from trader.runtime.converter import DATA_CONVERTER
from trader.runtime.search import ALL_KEYS

log = logging.getLogger(__name__)


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=DATA_CONVERTER)


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any missing search attribute (dev server, test server or cluster).

    Returns the names that were added. Safe to call from many processes at once.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:  # the time-skipping test server cannot list, only add
        if err.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(int(_indexed_type(key.indexed_value_type)))
        for key in ALL_KEYS
        if key.name not in known
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
        except Exception as exc:  # another process won the race: fine if they now exist
            log.info("add_search_attributes: %s", exc)
    return sorted(missing)


def _indexed_type(value: SearchAttributeIndexedValueType) -> int:
    return int(value.value)
