"""What a trade row says of where it came from: the average sell price, the decision and
the client order ids, and the engine that traded it.

Rows already there keep every value; ``exit_price`` is computed from their own proceeds
and amount (exactly, in Python: SQLite's arithmetic would round through REAL) and
``decision_id`` is their ``trade_id`` (the decision id, except an orphan's). Their order
ids are unknown (empty) and their engine is ``unknown``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    money = sa.Numeric() if pg else sa.Text()
    op.add_column("trades", sa.Column("exit_price", money, nullable=False, server_default="0"))
    op.add_column("trades", sa.Column("decision_id", sa.Text()))
    op.add_column("trades", sa.Column("buy_client_order_id", sa.Text()))
    op.add_column(
        "trades", sa.Column("sell_client_order_ids", sa.Text(), nullable=False, server_default="")
    )
    op.add_column(
        "trades", sa.Column("engine", sa.Text(), nullable=False, server_default="unknown")
    )
    trades = sa.table(
        "trades",
        sa.column("trade_id", sa.Text()),
        sa.column("sold_amount", money),
        sa.column("exit_proceeds", money),
        sa.column("exit_price", money),
        sa.column("decision_id", sa.Text()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(trades.c.trade_id, trades.c.sold_amount, trades.c.exit_proceeds))
    for trade_id, sold, proceeds in rows.all():
        sold, proceeds = Decimal(str(sold)), Decimal(str(proceeds))
        price = proceeds / sold if sold > 0 else Decimal(0)
        bind.execute(
            trades.update()
            .where(trades.c.trade_id == trade_id)
            .values(
                exit_price=price if pg else str(price),
                decision_id=None if ":orphan" in trade_id else trade_id,
            )
        )
