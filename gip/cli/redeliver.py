"""``python bootstrap.py redeliver [--since 6h] [--dry-run] [--format table|json]``.

Runs the same sweep as the 15-minute schedule (:mod:`gip.services.redelivery`): the GitHub
App's hook, plus the repository or organization hooks of ``--redeliver-hooks`` (default: those
stored by the deploy and ``REDELIVER_HOOKS``). ``--since`` looks that far back instead of down
to the last sweep's mark (at most GitHub's 3 days); ``--dry-run`` lists what would be
redelivered and changes nothing. Exit 1 if a hook could not be swept.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from typing import Any

from gip.cli.render import add_format, structured
from gip.cli.timeparse import parse_relative
from gip.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default=None, metavar="AGE",
                        help="look back this far (6h, 2d; at most 3d) instead of to the last sweep")
    parser.add_argument("--dry-run", action="store_true", help="show what would be redelivered, change nothing")
    add_format(parser)
    parser.add_argument("--redeliver-hooks", default=None, metavar="HOOKS",
                        help="repos/OWNER/NAME/hooks/ID or orgs/NAME/hooks/ID, comma-separated")


def run(args: argparse.Namespace) -> int:
    from gip.adapters import aws
    from gip.cli.reconcile_cli import settings_for
    from gip.services.redelivery import from_settings

    since = _since(args.since)
    hooks = None if args.redeliver_hooks is None else [h for h in args.redeliver_hooks.split(",") if h.strip()]
    sess = aws.session(args)
    settings = settings_for(args, region=sess.region_name, endpoint_url=aws.endpoint_url(args))
    with aws.aws_errors("redeliver"):
        env = {**os.environ, "GITHUB_APP_SECRET_ID": settings.github_app_secret_id}  # the deployed App too
        reports = from_settings(settings, hooks=hooks, session=sess, env=env).sweep(since=since, dry_run=args.dry_run)
    docs = [r.as_dict() for r in reports]
    lines = (structured(args.format, {"dry_run": args.dry_run, "hooks": docs},
                        [{"dry_run": args.dry_run, **d} for d in docs])
             if args.format != "table" else render(docs, dry_run=args.dry_run))
    print("\n".join(lines))
    return 1 if any(d["error"] for d in docs) else 0


def _since(text: str | None) -> timedelta | None:
    if text is None:
        return None
    age = parse_relative(text)
    if age is None or age <= timedelta(0):
        raise UsageError(f"--since must be an age such as 6h or 2d, got {text!r}")
    return age


def render(reports: list[dict[str, Any]], *, dry_run: bool) -> list[str]:
    """Pure: the table of a sweep."""
    if not reports:
        return ["no hook to sweep: configure a GitHub App, or give --redeliver-hooks"]
    verb = "would redeliver" if dry_run else "redelivered"
    lines = []
    for r in reports:
        head = (f"{r['hook']}: {r['listed']} deliveries listed on {r['pages']} page(s), "
                f"{r['failed']} failed, {len(r['redelivered'])} {verb}, {len(r['at_cap'])} at the cap, "
                f"{r['calls']} GitHub call(s)")
        lines.append(head + (f"  ERROR {r['error']}" if r["error"] else ""))
        lines += [f"  {d['guid']}  {d['event']:<13} attempt {d['attempt']}  was {d['status_code'] or 'no answer'}"
                  for d in r["redelivered"]]
        lines += [f"  {guid}  left alone: 3 redeliveries requested already" for guid in r["at_cap"]]
    return lines
