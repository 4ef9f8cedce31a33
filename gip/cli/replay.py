"""``replay``: print, time-travel, verify or re-publish the event log.

Reading never scans the event table: a time window goes through the ``by-day`` index (one
query per UTC day that holds events, from the store's day index, paged), ``--stream`` reads the stream by key, ``--correlation-id`` goes
through the ``by-correlation`` index. :class:`ReadMeter` counts the DynamoDB calls and pages
through botocore's event hooks and shows progress on stderr for long reads.

``--as-of`` and ``--verify`` fold with the live reducers (``gip.domain.pool`` and
``gip.domain.issue`` through ``gip.services.projection.fold_log``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from gip.adapters import aws, bus
from gip.cli.render import FORMAT_HELP, add_format, structured, table
from gip.cli.replay_query import EVENT_COLUMNS, Query, build_query, bus_entry, event_rows
from gip.cli.timeparse import parse_instant
from gip.domain import schemas
from gip.domain.envelope import Envelope, dumps, iso, parse_iso, utcnow
from gip.errors import AwsError, GipError, NotFound, StoreUnavailable, UsageError

DEFAULT_WINDOW = timedelta(days=7)  # when the pool has no first_day (nothing registered yet)


# ---------------------------------------------------------------- reading with a meter


@dataclass
class ReadMeter:
    """Counts DynamoDB calls, index pages and items via botocore hooks; progress on stderr."""

    out: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    every: float = 2.0
    calls: Counter[str] = field(default_factory=Counter)
    index_pages: int = 0
    items: int = 0
    _started: float | None = None
    _last: float = 0.0
    _shown: bool = False
    _pending_index: list[bool] = field(default_factory=list)

    def attach(self, *models: Any) -> None:
        seen: set[int] = set()
        for model in models:
            client = model._get_connection().connection.client
            if id(client) in seen:
                continue
            seen.add(id(client))
            client.meta.events.register("provide-client-params.dynamodb.*", self._before)
            client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self._pending_index.append(bool(params.get("IndexName")))

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        via_index = self._pending_index.pop() if self._pending_index else False
        if model.name == "Query" and via_index:
            self.index_pages += 1
        self.items += int(parsed.get("Count", 0) or 0)
        now = self.clock()
        if self._started is None:
            self._started, self._last = now, now
        if now - self._last >= self.every:
            self._last = now
            self._shown = True
            print(f"\rreading the log: {self.items:,} items, {self.total_calls} calls "
                  f"({self.index_pages} index pages), {now - self._started:.0f}s…", end="", file=self.out, flush=True)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def done(self) -> None:
        if self._shown:
            print(file=self.out)
            self._shown = False


@dataclass
class Core:
    """The bound tables, store, pool and a meter on every table's client."""

    settings: Any
    store: Any
    pool: Any
    meter: ReadMeter


def open_core(args: argparse.Namespace, *, meter: ReadMeter | None = None) -> Core:
    """Build settings/tables/store/pool for ``--prefix``, ``--region``, ``--endpoint-url``."""
    from gip.config import Settings
    from gip.services.pool import Pool
    from gip.store.dynamodb import DynamoEventStore
    from gip.store.models import Tables

    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile  # pynamodb's botocore session reads it
    region = aws.session(args).region_name
    settings = Settings.for_prefix(args.prefix, region=region, endpoint_url=aws.endpoint_url(args))
    tables = Tables.from_settings(settings)
    meter = meter or ReadMeter()
    meter.attach(tables.events, tables.pool, tables.issues)
    store = DynamoEventStore(tables)
    return Core(settings, store, Pool(store=store), meter)


def _tables_missing(settings: Any, detail: str) -> NotFound:
    return NotFound(f"the {getattr(settings, 'prefix', '?')}-* tables are not there: deploy first, "
                    f"or check --prefix/--region ({detail})")


@contextlib.contextmanager
def dynamo_errors(settings: Any = None) -> Iterator[None]:
    """pynamodb failures → one line: a missing table names the prefix to check."""
    from pynamodb.exceptions import PynamoDBException

    try:
        yield
    except StoreUnavailable as exc:  # the store's own reads translate already
        if exc.code == "ResourceNotFoundException":
            raise _tables_missing(settings, str(exc)) from exc
        raise
    except PynamoDBException as exc:
        code = exc.cause_response_code or ""
        if code == "ResourceNotFoundException":
            raise _tables_missing(settings, exc.cause_response_message or code) from exc
        if exc.cause is not None and not code:
            raise AwsError(aws.describe(exc.cause, action="dynamodb")) from exc
        raise AwsError(f"DynamoDB error: {code}: {exc.cause_response_message or exc.msg}") from exc


def read_selection(core: Core, query: Query, *, raw: bool, now: datetime) -> Iterator[Envelope]:
    """The selected events in order, by key or through an index (never a scan)."""
    store = core.store
    if query.correlation_id:
        source: Iterable[Envelope] = store.read_correlation(query.correlation_id, raw=raw)
    elif query.streams:
        merged = [e for s in query.streams for e in store.read(s, raw=raw)]
        source = sorted(merged, key=lambda e: (e["occurred_at"], e["stream"], e["version"]))
    else:
        since = query.since or log_start(core, now=now)
        source = store.read_window(since, query.until or now, raw=raw)
    return (e for e in source if query.matches(e))


def newest_event_at(core: Core, *, now: datetime) -> datetime | None:
    """When the newest event happened: the last day of the day index, read (one query). None
    when the log has no day index (written before it existed) or nothing up to ``now``."""
    days = core.store.log_days()
    if not days:
        return None
    last = None
    for event in core.store.read_window(parse_iso(f"{days[-1]}T00:00:00Z"), now):
        last = event["occurred_at"]
    return parse_iso(last) if last else None


def clamp(moment: datetime, newest: datetime | None, *, now: datetime) -> datetime:
    """``--as-of`` after the newest event means the newest event (and never after ``now``)."""
    limit = min(newest, now) if newest is not None else now
    if moment <= limit:
        return moment
    what = "the newest event" if newest is not None else "now"
    print(f"notice: --as-of {iso(moment)} is after {what}; showing the state as of {iso(limit)}", file=sys.stderr)
    return limit


def log_start(core: Core, *, now: datetime) -> datetime:
    """Where the whole log starts: the pool's first registration day, else a week ago."""
    first = core.pool.first_day()
    if first:
        return parse_iso(f"{first}T00:00:00Z")
    print(f"notice: no registration recorded; reading the last {DEFAULT_WINDOW.days} days "
          "(pass --since to go further back)", file=sys.stderr)
    return now - DEFAULT_WINDOW


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", action="append", default=[], metavar="ID",
                        help="account id, owner/repo#N or stream id (repeatable)")
    parser.add_argument("--type", action="append", default=[], metavar="T", help="event type (repeatable)")
    parser.add_argument("--since", help="ISO-8601 time or age like 2h, 30m, 7d")
    parser.add_argument("--until", help="ISO-8601 time or age like 2h, 30m, 7d")
    parser.add_argument("--correlation-id", help="follow one delivery through every stream it touched")
    parser.add_argument("--as-of", metavar="T", help="print the pool and issues as they were at T")
    add_format(parser, default=None, help=f"{FORMAT_HELP}; default table on a terminal, jsonl otherwise")
    parser.add_argument("--raw", action="store_true", help="old event versions as stored (no upcasting)")
    parser.add_argument("--verify", action="store_true", help="fold the log and compare it with the stored rows")
    parser.add_argument("--repair", action="store_true", help="with --verify: rewrite drifted rows from the log")
    parser.add_argument("--to-bus", action="store_true", help="re-publish the selection to the bus, marked as a replay")


def run(args: argparse.Namespace, *, now: datetime | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    now = now or utcnow()
    fmt = args.format or ("table" if out.isatty() else "jsonl")
    query = build_query(streams=args.stream, types=args.type, since=args.since, until=args.until,
                        correlation_id=args.correlation_id, now=now, known_types=schemas.event_types())
    _check_combination(args, query)
    core = open_core(args)
    try:
        with dynamo_errors(core.settings):
            if args.verify:
                return verify(core, repair=args.repair, out=out, now=now)
            newest = newest_event_at(core, now=now)
            if args.as_of:
                return as_of(core, clamp(parse_instant(args.as_of, now=now), newest, now=now), query,
                             fmt=fmt, out=out)
            if query.since is not None and newest is not None and query.since > newest:
                print(f"no events after {iso(newest)} (the newest event; --since is {iso(query.since)})",
                      file=sys.stderr)
                return 0
            if query.until is not None and query.until > now:  # nothing is stored in the future
                query = dataclasses.replace(query, until=now)
            events = read_selection(core, query, raw=args.raw, now=now)
            if args.to_bus:
                return to_bus(core, events, args=args, out=out)
            return print_events(events, fmt=fmt, out=out)
    finally:
        core.meter.done()


def _check_combination(args: argparse.Namespace, query: Query) -> None:
    if args.repair and not args.verify:
        raise UsageError("--repair only goes with --verify")
    filtered = query != Query()
    if args.verify and (filtered or args.as_of or args.to_bus):
        raise UsageError("--verify checks the whole log: it takes no filters, --as-of or --to-bus")
    if args.as_of and (args.to_bus or query.types or query.correlation_id or query.until):
        raise UsageError("--as-of takes only --stream and --since (where to start reading)")
    if args.raw and (args.as_of or args.verify):
        raise UsageError("--raw only changes how events are printed or re-published")


def print_events(events: Iterable[Envelope], *, fmt: str, out: TextIO) -> int:
    if fmt == "jsonl":
        for event in events:
            print(dumps(event), file=out)
        return 0
    if fmt == "json":
        print(json.dumps(list(events), indent=2, sort_keys=True, ensure_ascii=False, default=str), file=out)
        return 0
    rows = list(event_rows(events))
    for line in table(rows, EVENT_COLUMNS, max_width={"stream": 40}):
        print(line, file=out)
    print(f"({len(rows)} events)", file=out)
    return 0


def as_of(core: Core, moment: datetime, query: Query, *, fmt: str, out: TextIO) -> int:
    """Fold every stream (or the --stream ones) up to ``moment`` with the live reducers."""
    from gip.services.projection import fold_log

    # Streams are read whole (a fold needs each stream from version 1); otherwise the time
    # index from the log's start (or --since) up to the moment.
    window = Query(streams=query.streams, until=moment, since=None if query.streams else query.since)
    events = list(read_selection(core, window, raw=False, now=moment))
    folded = fold_log(events)
    accounts = [a.as_dict() for _, a in sorted(folded.accounts.items())]
    issues = [i.as_dict() for _, i in sorted(folded.issues.items())]
    if fmt != "table":
        records = [*({"kind": "account", **row} for row in accounts), *({"kind": "issue", **row} for row in issues)]
        doc = {"as_of": iso(moment), "events_folded": len(events), "accounts": accounts, "issues": issues}
        print("\n".join(structured(fmt, doc, records)), file=out)
        return 0
    counts = folded.counts
    print(f"as of {iso(moment)} ({len(events)} events folded): {counts.usable} usable, "
          f"{counts.quarantined} quarantined, {counts.deregistered} deregistered", file=out)
    if accounts or not issues:
        print(file=out)
        for line in table(accounts, ACCOUNT_COLUMNS):
            print(line, file=out)
    if issues:
        print(file=out)
        for line in table(issues, ISSUE_COLUMNS):
            print(line, file=out)
    return 0


ACCOUNT_COLUMNS = [("ACCOUNT", "account_id"), ("STATUS", "status"), ("V", "version"),
                   ("LEASE", "lease_id"), ("ISSUE", "issue"), ("WORKER", "worker"),
                   ("EXPIRES_AT", "expires_at"), ("UPDATED_AT", "updated_at"), ("REASON", "reason")]
ISSUE_COLUMNS = [("ISSUE", "stream"), ("STATUS", "status"), ("RUN", "run"), ("V", "version"),
                 ("ACCOUNT", "account_id"), ("VERDICT", "verdict"), ("UPDATED_AT", "updated_at"),
                 ("REASON", "reason")]
DRIFT_COLUMNS = [("KIND", "kind"), ("KEY", "key"), ("FIELD", "field"), ("STORED", "stored"), ("LOG", "expected")]


def verify(core: Core, *, repair: bool, out: TextIO, now: datetime) -> int:
    """Exit 0 when the stored rows equal the fold of the log, else print the diff and exit 1.

    With ``repair``, drifted rows are rewritten from the log, each conditioned on the version
    read; a row that moved in between is refused and named (exit 1). Then the check runs again.
    """
    from gip.services.projection import Projections

    projections = Projections(core.store)
    events = projections.read_all(until=now)
    drift = projections.verify(events)
    if not drift:
        print(f"no drift: {len(events)} events folded, every row matches the log", file=out)
        return 0
    rows = [d.__dict__ for d in drift]
    keys = {(d.kind, d.key) for d in drift}
    print(f"drift: {len(drift)} field(s) differ in {len(keys)} row(s) (stored vs. fold of {len(events)} events)", file=out)
    for line in table(rows, DRIFT_COLUMNS, max_width={"stored": 40, "expected": 40}):
        print(line, file=out)
    if not repair:
        print("run with --verify --repair to rewrite these rows from the log", file=out)
        return 1
    done = projections.repair(events)
    left = [] if done.refused else projections.verify()
    status = (f"refused {len(done.refused)} row(s) changed since they were read, left as they are: "
              f"{', '.join(done.refused)} (run --verify again)" if done.refused
              else "no drift left" if not left else f"{len(left)} field(s) still differ")
    print(f"repaired: {done.written} row(s) rewritten from the log; {status}", file=out)
    return 0 if not (left or done.refused) else 1


def to_bus(core: Core, events: Iterable[Envelope], *, args: argparse.Namespace, out: TextIO,
           sleep: Callable[[float], None] = time.sleep) -> int:
    """Re-publish the selection, marked ``"replay": true``; GipError if some never go."""
    bus_name = core.settings.bus_name
    sent = republish(aws.client(args, "events"), events, prefix=core.settings.prefix,
                     bus_name=bus_name, sleep=sleep)
    print(f"re-published {sent} event(s) to {bus_name}, marked \"replay\": true", file=out)
    return 0


def republish(client: bus.EventsClient, events: Iterable[Envelope], *, prefix: str, bus_name: str,
              sleep: Callable[[float], None], attempts: int = 4) -> int:
    """PutEvents ``events`` through :func:`gip.adapters.bus.put_events`; how many went."""
    given = 0

    def entries() -> Iterator[dict[str, Any]]:  # streamed: a long selection is never listed
        nonlocal given
        for event in events:
            given += 1
            yield bus_entry(event, prefix=prefix, bus=bus_name)

    failed = bus.put_events(client, entries(), sleep=sleep, max_attempts=attempts)
    if failed:
        codes = ", ".join(sorted({f.code for f in failed}))
        raise GipError(f"{len(failed)} event(s) could not be re-published to {bus_name} "
                       f"after {attempts} attempts ({codes})")
    return given

