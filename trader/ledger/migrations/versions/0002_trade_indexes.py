"""Index trades by close time and symbol: ``starter.py profit --since/--symbol`` reads them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trades_closed_ts", "trades", ["closed_ts"])
    op.create_index("ix_trades_symbol", "trades", ["symbol"])
