"""Ledger write latency on SQLite and on PostgreSQL: ``LedgerStore.record_trade`` (what the
record activity awaits), one insert per call as trades close, and the same ids again (a
retried record: the conflict path).

    python -m bench.ledger [--writes 2000] [--pg-url postgresql://user@host:port/db]

Without ``--pg-url`` a throwaway PostgreSQL cluster is started (``tests/ledger/pg.py``:
initdb + pg_ctl on 127.0.0.1, fsync on as in production, unlike the tests'; ``--no-fsync``
for the tests' setting) or pass a URL for a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.common import latency_summary
from tests.ledger.conftest import fresh_pg_database
from tests.ledger.pg import PgServer, pg_bin
from tests.ledger.test_store import trade
from trader.ledger import LedgerStore


async def _measure(target: str | Path, writes: int) -> dict[str, object]:
    store = LedgerStore(target)
    await store.open()  # migrations are not part of a write
    first: list[float] = []
    for i in range(writes):
        t0 = time.perf_counter()
        assert await store.record_trade(trade(f"BTC-USDT:bench:{i}", closed_ts=float(i)))
        first.append(time.perf_counter() - t0)
    again: list[float] = []
    for i in range(min(writes, 500)):
        t0 = time.perf_counter()
        assert not await store.record_trade(trade(f"BTC-USDT:bench:{i}"))
        again.append(time.perf_counter() - t0)
    await store.close()
    return {"writes": writes, "insert": latency_summary(first), "retry": latency_summary(again)}


async def main(writes: int, pg_url: str | None, *, fsync: bool = True) -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = await _measure(Path(tmp) / "ledger.sqlite", writes)
    server = None
    if pg_url is None:
        bin_dir = pg_bin()
        if bin_dir is None:
            raise SystemExit("PostgreSQL not installed: pass --pg-url")
        server = PgServer(bin_dir, fsync=fsync)
        server.start()
        pg_url = await fresh_pg_database(server)
    try:
        out["postgresql"] = await _measure(pg_url, writes)
    finally:
        if server is not None:
            server.remove()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--no-fsync", action="store_true", help="the throwaway cluster's fsync off")
    args = parser.parse_args()
    result = asyncio.run(main(args.writes, args.pg_url, fsync=not args.no_fsync))
    print(json.dumps(result, indent=2))
