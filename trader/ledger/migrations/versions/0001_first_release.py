"""The ledger as the first release (the hand-written sqlite3 store) left it.

Files written by that store have this schema, or part of it (it added the ``inventory``
table and the trades' inventory columns later): this revision creates only the tables a
database lacks, and ``trader.ledger.migrate`` adds the missing columns before it runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _money(name: str, *, added: bool = False) -> sa.Column[object]:
    # Exact: NUMERIC on PostgreSQL, the Decimal's text on SQLite (as the first store wrote it).
    kind = sa.Numeric() if op.get_bind().dialect.name == "postgresql" else sa.Text()
    return sa.Column(name, kind, nullable=False, server_default="0" if added else None)


def _flag(name: str) -> sa.Column[object]:
    kind = sa.Boolean() if op.get_bind().dialect.name == "postgresql" else sa.Integer()
    return sa.Column(name, kind, nullable=False)


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())

    def create(name: str, *columns: sa.Column[object]) -> None:
        if name not in have:  # kept as the first store left it (its rows with it)
            op.create_table(name, *columns)

    create(
        "trades",
        sa.Column("trade_id", sa.Text(), primary_key=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("exit_reason", sa.Text(), nullable=False),
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
        sa.Column("opened_ts", sa.Float(), nullable=False),
        sa.Column("closed_ts", sa.Float(), nullable=False),
        _flag("simulated"),
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
    )
    create(
        "dust",
        sa.Column("dust_id", sa.Text(), primary_key=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        _money("amount"),
        _money("price"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
    )
    create(
        "inventory",
        sa.Column("record_id", sa.Text(), primary_key=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        _money("amount"),
        _money("cost"),
        _money("price"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision_id", sa.Text()),
        sa.Column("ts", sa.Float(), nullable=False),
        _flag("simulated"),
    )
