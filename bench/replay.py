"""Replay throughput: an in-memory fold, and reading + folding from a moto server.

    .venv/bin/python bench/replay.py [--events 10000] [--days 3] [--accounts 20]

Prints events/s, DynamoDB read calls per 10,000 events and the number of time-index pages.
The log is account reserve/release/clean cycles spread over ``--days`` UTC days (one index
partition per day), seeded with the store's item layout through BatchWriteItem.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gip.cli.replay import ReadMeter
from gip.config import Settings
from gip.domain import schemas
from gip.domain.envelope import Cause, Envelope, iso, new_event
from gip.services.projection import fold_log
from gip.store.dynamodb import DynamoEventStore
from gip.store.memory import InMemoryEventStore
from gip.store.models import Tables, create_tables

BASE = datetime(2026, 1, 10, tzinfo=UTC)


def make_log(total: int, *, accounts: int, days: int) -> list[Envelope]:
    """``total`` valid account events (register, then reserve/release/clean) over ``days`` days."""
    per = max(total // accounts, 4)
    step = timedelta(days=days) / per
    out: list[Envelope] = []
    for a in range(accounts):
        account_id = f"{200000000000 + a}"
        stream = f"account-{account_id}"
        at = BASE + timedelta(milliseconds=a)
        events = [new_event("AccountRegistered", stream=stream, cause=Cause("bench", "bench"), occurred_at=at,
                            data={"account_id": account_id, "role_arn": f"arn:aws:iam::{account_id}:role/r", "source": "manual"})]
        k = 0
        while len(events) + 3 <= per:
            lease, cause = f"l-{a}-{k}", Cause(f"c-{a}-{k}", "bench")
            for type_, data in (
                ("AccountReserved", {"lease_id": lease, "issue": "issue-o/r#1", "worker": "w", "expires_at": iso(at)}),
                ("AccountReleased", {"lease_id": lease, "issue": "issue-o/r#1"}),
                ("AccountCleaned", {"lease_id": lease, "removed": []}),
            ):
                at += step
                events.append(new_event(type_, stream=stream, cause=cause, occurred_at=at, data=data))
            k += 1
        for version, event in enumerate(events, start=1):
            out.append({**event, "version": version})  # type: ignore[typeddict-item]
    return out


def bench_memory(log: list[Envelope], *, days: int) -> None:
    store = InMemoryEventStore()
    by_stream: dict[str, list[Envelope]] = {}
    for e in log:
        by_stream.setdefault(e["stream"], []).append(e)
    for stream, events in by_stream.items():
        store.append(stream, 0, events)
    start = time.perf_counter()
    events = list(store.read_window(BASE, BASE + timedelta(days=days + 1)))
    folded = fold_log(events)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    fold_log(log)
    pure = time.perf_counter() - start
    print(f"pure fold   : {len(log):>6} events folded in {pure:6.2f}s = {len(log) / pure:>9,.0f} events/s")
    print(f"in-memory   : {len(events):>6} events read+folded in {elapsed:6.2f}s = "
          f"{len(events) / elapsed:>9,.0f} events/s; read calls/10k events: 0 (no I/O); "
          f"{len(folded.accounts)} accounts")


def bench_moto(log: list[Envelope], *, days: int) -> None:
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = Settings.for_prefix("bench", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
        tables = Tables.from_settings(settings)
        create_tables(tables)
        store = DynamoEventStore(tables)
        seed = time.perf_counter()
        with tables.events.batch_write() as batch:
            for event in log:
                batch.save(store.item_for(event))
        seeded = time.perf_counter() - seed
        meter = ReadMeter(every=3600)
        meter.attach(tables.events)
        start = time.perf_counter()
        events = list(store.read_window(BASE, BASE + timedelta(days=days + 1)))
        read = time.perf_counter() - start
        folded = fold_log(events)
        elapsed = time.perf_counter() - start
        per10k = meter.total_calls * 10_000 / max(len(events), 1)
        print(f"moto server : {len(events):>6} events read+folded in {elapsed:6.2f}s = "
              f"{len(events) / elapsed:>9,.0f} events/s (read {read:.2f}s, fold {elapsed - read:.2f}s); "
              f"read calls/10k events: {per10k:.1f}; index pages: {meter.index_pages} "
              f"over {days + 2} day partitions; scans: {meter.calls['Scan']}; "
              f"{len(folded.accounts)} accounts (seeded in {seeded:.1f}s)")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=20)
    args = parser.parse_args()
    log = make_log(args.events, accounts=args.accounts, days=args.days)
    for event in log[:50]:
        schemas.validate(dict(event))
    print(f"log: {len(log)} events, {args.accounts} account streams, {args.days} days")
    bench_memory(log, days=args.days)
    bench_moto(log, days=args.days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
