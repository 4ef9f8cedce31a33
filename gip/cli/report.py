"""``report``: the event log drawn as one self-contained HTML page (``gip.report``).

Reading is ``replay``'s: the time index from the log's start (never a scan), ``--stream`` by
key, ``--correlation-id`` through its index (then the streams it touched, by key). ``--type``
is not offered: a fold needs every event of a stream. Every stream is folded from version 1, so ``--since`` only chooses what is drawn;
``--until`` / ``--as-of`` stop the fold there (``--as-of`` draws the pool as it stood then).
A report of the whole log up to now also runs ``replay --verify``'s check and states its result.

``--to-s3`` uploads the page under ``reports/`` in the results bucket and prints a presigned
HTTPS URL valid for 7 days.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from gip.adapters import aws
from gip.cli.replay import Core, dynamo_errors, open_core, read_selection
from gip.cli.replay_query import Query, build_query
from gip.cli.timeparse import parse_instant
from gip.domain import schemas
from gip.domain.envelope import Envelope, utcnow
from gip.errors import NotFound, UsageError
from gip.report import render

PRESIGN_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL lives


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="draw from this ISO-8601 time or age like 2h, 30m, 7d (default: the log's start)")
    parser.add_argument("--until", help="draw and fold up to this ISO-8601 time or age (default: now)")
    parser.add_argument("--as-of", metavar="T", help="the pool as it stood at T (the fold stops there)")
    parser.add_argument("--stream", action="append", default=[], metavar="ID",
                        help="only these streams: account id, owner/repo#N or stream id (repeatable)")
    parser.add_argument("--correlation-id", help="only the streams one delivery touched (each drawn whole)")
    parser.add_argument("--output", default="report.html", help="where to write the page (default: report.html)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument("--to-s3", action="store_true",
                        help="upload under reports/ in the results bucket and print a presigned URL (7 days)")
    parser.add_argument("--bucket", help="with --to-s3: the bucket (default: <prefix>-results-<account id>)")


def run(args: argparse.Namespace, *, now: datetime | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    now = now or utcnow()
    if args.as_of and args.until:
        raise UsageError("--as-of and --until both say where the page ends: give one")
    query = build_query(streams=args.stream, since=args.since, until=args.until, now=now,
                        correlation_id=args.correlation_id, known_types=schemas.event_types())
    end = parse_instant(args.as_of, now=now) if args.as_of else (query.until or now)
    if query.since and query.since > end:
        raise UsageError("--since is after the end of the page")
    core = open_core(args)
    try:
        with dynamo_errors(core.settings):
            page = build_page(core, query, end=end, now=now, as_of=bool(args.as_of))
    finally:
        core.meter.done()
    path = Path(args.output)
    path.write_text(page, encoding="utf-8")
    print(f"wrote {path} ({len(page.encode()):,} bytes)", file=out)
    if args.to_s3:
        print(upload(args, core, page, now=now), file=out)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def local_page(*, prefix: str, region: str, endpoint_url: str) -> str:
    """The whole log up to now as a page (local mode's ``GET /report``, re-read per request)."""
    args = argparse.Namespace(prefix=prefix, region=region, endpoint_url=endpoint_url, profile=None)
    core = open_core(args)
    now = utcnow()
    with dynamo_errors(core.settings):
        return build_page(core, Query(), end=now, now=now, as_of=False)


def build_page(core: Core, query: Query, *, end: datetime, now: datetime, as_of: bool) -> str:
    """Read what the page needs and render it; the whole log up to now is verified too."""
    events, drift = read_events(core, query, end=end, now=now)
    return render(events, start=query.since, end=end, as_of=as_of, drift=drift)


def read_events(core: Core, query: Query, *, end: datetime, now: datetime) -> tuple[list[Envelope], list[str] | None]:
    """The events to fold (every stream from version 1) and, for the whole log up to now,
    the drift ``replay --verify`` would report (None when not checked)."""
    from gip.services.projection import Projections

    streams = query.streams
    if query.correlation_id:  # the streams the delivery touched, through the by-correlation index
        touched = read_selection(core, Query(correlation_id=query.correlation_id), raw=False, now=end)
        streams = tuple(sorted({e["stream"] for e in touched}))
        if not streams:
            raise NotFound(f"no event has correlation id {query.correlation_id!r}")
    if streams:  # read whole by key, as replay --as-of does
        return list(read_selection(core, Query(streams=streams), raw=False, now=end)), None
    if end < now:
        return list(read_selection(core, Query(until=end), raw=False, now=end)), None
    projections = Projections(core.store)
    events = projections.read_all(until=now)
    return events, [str(d) for d in projections.verify(events)]


def upload(args: argparse.Namespace, core: Core, page: str, *, now: datetime) -> str:
    """Put the page under ``reports/`` and return a presigned GET URL valid for 7 days."""
    from botocore.config import Config

    s3 = aws.session(args).client("s3", endpoint_url=aws.endpoint_url(args),
                                  config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}))
    bucket = args.bucket or _results_bucket(args, core)
    key = f"reports/report-{now.strftime('%Y%m%dT%H%M%SZ')}.html"
    with aws.aws_errors(f"s3:PutObject {bucket}"):
        s3.put_object(Bucket=bucket, Key=key, Body=page.encode(), ContentType="text/html; charset=utf-8")
        url: str = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=PRESIGN_SECONDS)
    return url


def _results_bucket(args: Any, core: Core) -> str:
    account = aws.check_credentials(args)["Account"]
    return f"{core.settings.prefix}-results-{account}"
