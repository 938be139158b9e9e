"""Which engine wrote an inventory or dust row, and whether a dust row is simulated, as a
trade row says (revision 0003): ``profit --engine`` then counts that engine's write-offs.

Rows already there keep every value; their engine is ``unknown``; dust rows, which had
no flag, read as not simulated (the default the record always had).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("inventory", "dust"):
        op.add_column(
            table, sa.Column("engine", sa.Text(), nullable=False, server_default="unknown")
        )
    op.add_column(
        "dust",
        sa.Column(
            "simulated", sa.Boolean(create_constraint=False), nullable=False, server_default="0"
        ),
    )
