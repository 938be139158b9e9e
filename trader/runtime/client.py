"""Connect to Temporal and make sure the search attributes exist on that server."""

from __future__ import annotations

import logging
import os
import socket

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from trader.config import Settings
from trader.core.errors import ConfigError
from trader.runtime.converter import DATA_CONVERTER
from trader.search import ALL_KEYS

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The SDK's default client identity (``pid@host``), also the ``worker`` metric label."""
    return f"{os.getpid()}@{socket.gethostname()}"


def sdk_metrics_runtime(settings: Settings, identity: str) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (task latencies, slots, polls)
    on TEMPORAL_METRICS_PORT, or None when ENABLE_PROMETHEUS is off or the port is 0.

    Only a process that runs a worker should build one: the port binds once per process.
    """
    if not (settings.enable_prometheus and settings.temporal_metrics_port):
        return None
    bind = f"{settings.prometheus_bind_address}:{settings.temporal_metrics_port}"
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=bind, counters_total_suffix=True, durations_as_seconds=True
                ),
                global_tags={"worker": identity},
            )
        )
    except ValueError as exc:  # e.g. the port is taken
        raise ConfigError(
            f"TEMPORAL_METRICS_PORT: cannot serve SDK metrics on {bind}: {exc} "
            "(another worker on this host? give each its own port, or 0 = off)"
        ) from None


async def connect(
    address: str,
    namespace: str = "default",
    *,
    runtime: Runtime | None = None,
    identity: str | None = None,
) -> Client:
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
        identity=identity or default_identity(),
    )


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
