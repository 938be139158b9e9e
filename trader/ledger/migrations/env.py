"""Alembic environment: always run programmatically by ``trader.ledger.migrate`` on the
connection it hands over (``config.attributes["connection"]``), never from a URL here."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# Batch mode: SQLite cannot ALTER most things in place; Alembic copies the table instead.
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
