"""The one data converter (pydantic: Decimal and models round-trip exactly)."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter

DATA_CONVERTER = pydantic_data_converter
