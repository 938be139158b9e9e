"""The ledger's tables, declared once (SQLAlchemy Core); the Alembic revisions create them.

Money is exact on both databases: ``NUMERIC`` (arbitrary precision) on PostgreSQL, the
Decimal's text on SQLite (whose ``REAL`` would round it), read back as ``Decimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Column, Float, MetaData, Numeric, Table, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from trader.contracts import DustRecord, InventoryRecord, TradeRecord


class Money(TypeDecorator[Decimal]):
    """A Decimal stored exactly: NUMERIC on PostgreSQL, TEXT elsewhere (SQLite)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(str(value))


class OrderIds(TypeDecorator[list[str]]):
    """A list of client order ids as one TEXT, comma-separated (an id never holds a comma:
    ``[A-Za-z0-9._:/-]``, see ``trader.core.ids``); empty: none."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> Any:
        return None if value is None else ",".join(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str] | None:
        return None if value is None else [v for v in str(value).split(",") if v]


metadata = MetaData()


def _money(name: str, *, added: bool = False) -> Column[Decimal]:
    # Columns added after the first release default to 0 so older rows read as 0.
    return Column(name, Money(), nullable=False, server_default="0" if added else None)


trades = Table(
    "trades",
    metadata,
    Column("trade_id", Text, primary_key=True),
    Column("symbol", Text, nullable=False, index=True),
    Column("exchange", Text, nullable=False),
    Column("exit_reason", Text, nullable=False),
    *(
        _money(n)
        for n in (
            "bought_amount",
            "sold_amount",
            "entry_price",
            "entry_cost",
            "entry_fee",
            "exit_proceeds",
            "exit_fee",
            "net_pnl",
            "pnl_pct",
        )
    ),
    Column("opened_ts", Float, nullable=False),
    Column("closed_ts", Float, nullable=False, index=True),
    Column("simulated", Boolean(create_constraint=False), nullable=False),
    *(
        _money(n, added=True)
        for n in (
            "written_off",
            "carried_amount",
            "carried_cost",
            "inventory_in_amount",
            "inventory_in_cost",
        )
    ),
    # Revision 0003 (rows from before it: exit_price and decision_id filled in, the order
    # ids unknown, engine 'unknown').
    _money("exit_price", added=True),
    Column("decision_id", Text),
    Column("buy_client_order_id", Text),
    Column("sell_client_order_ids", OrderIds(), nullable=False, server_default=""),
    Column("engine", Text, nullable=False, server_default="unknown"),
)

dust = Table(
    "dust",
    metadata,
    Column("dust_id", Text, primary_key=True),
    Column("symbol", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    _money("amount"),
    _money("price"),
    Column("reason", Text, nullable=False),
    Column("ts", Float, nullable=False),
    # Revision 0004 (rows from before it: not simulated, engine 'unknown').
    Column("simulated", Boolean(create_constraint=False), nullable=False, server_default="0"),
    Column("engine", Text, nullable=False, server_default="unknown"),
)

inventory = Table(
    "inventory",
    metadata,
    Column("record_id", Text, primary_key=True),
    Column("symbol", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("kind", Text, nullable=False),
    _money("amount"),
    _money("cost"),
    _money("price"),
    Column("reason", Text, nullable=False),
    Column("decision_id", Text),
    Column("ts", Float, nullable=False),
    Column("simulated", Boolean(create_constraint=False), nullable=False),
    Column("engine", Text, nullable=False, server_default="unknown"),  # revision 0004
)

#: Each record type's table; its columns are the model's fields (a test compares them).
TABLES: dict[type[TradeRecord | DustRecord | InventoryRecord], Table] = {
    TradeRecord: trades,
    DustRecord: dust,
    InventoryRecord: inventory,
}
