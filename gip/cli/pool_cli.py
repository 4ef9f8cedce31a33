"""Operator commands on the pool: ``accounts``, ``status`` and ``reinstate``.

``accounts`` lists the projection rows (:meth:`Pool.accounts`). ``status`` adds the counts
row, the depth of every ``<prefix>-*`` queue and its DLQ, and the failures of the last 24 h
read through the time index, after the health verdict and its figures (publisher lag and live
workers: :mod:`gip.cli.status_figures`). ``reinstate`` is :meth:`Pool.reinstate` (QUARANTINED → CLEANING,
event ``AccountReinstated``): the account is cleaned again before it is used.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gip.adapters import aws
from gip.cli import status_figures
from gip.cli.render import add_format, key_values, structured, table
from gip.cli.replay import ACCOUNT_COLUMNS, dynamo_errors, open_core
from gip.cli.replay_query import summary
from gip.cli.status_figures import Figures
from gip.domain.envelope import ACCOUNT_RE, Cause, Envelope, iso, utcnow
from gip.domain.pool import STATUSES, Account, Counts
from gip.errors import GipError, NotFound, UsageError

FAILURE_TYPES = ("IssueProcessingFailed", "AccountQuarantined")
RECENT = timedelta(hours=24)
QUEUE_ATTRIBUTES = ["QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "RedrivePolicy"]


# ---------------------------------------------------------------- pure


def pool_summary(accounts: Sequence[Account], counts: Counts) -> dict[str, Any]:
    """Counts by status from the rows, and the O(1) counts row beside them."""
    by_status = Counter(a.status for a in accounts)
    return {
        "by_status": {s: by_status.get(s, 0) for s in STATUSES},
        "usable": sum(a.usable for a in accounts),
        "counts_row": counts.as_dict(),
        "counts_row_agrees": counts.usable == sum(a.usable for a in accounts),
    }


def queue_rows(queues: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """One row per queue (name → attributes); a DLQ names the queue(s) it serves."""
    serves: dict[str, list[str]] = {}
    for name, attrs in queues.items():
        policy = attrs.get("RedrivePolicy")
        if policy:
            dlq_arn = json.loads(policy).get("deadLetterTargetArn", "")
            serves.setdefault(dlq_arn.rsplit(":", 1)[-1], []).append(name)
    rows = []
    for name, attrs in sorted(queues.items()):
        is_dlq = name in serves or name.endswith(("-dlq", "-dlq.fifo"))
        visible = int(attrs.get("ApproximateNumberOfMessages", 0))
        rows.append({
            "queue": name, "visible": visible,
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "dlq_for": ", ".join(serves.get(name, [])) if is_dlq else None,
            "attention": "!" if is_dlq and visible else "",
        })
    return rows


def queue_health(queues: Sequence[Mapping[str, Any]], *, prefix: str, figures: Figures | None = None) -> dict[str, Any]:
    """Pure: ``ready`` or ``degraded`` with the reasons (:func:`gip.local.health.assess`, as
    ``/healthz``), from what the queues show: records the stream mapping parked after failing
    (``<prefix>-publisher-dlq``) and every other DLQ's depth; and from the live workers and the
    publisher's lag (:mod:`gip.cli.status_figures`: the local ``/healthz``, or the ECS service and
    the publisher's ``IteratorAge``). A figure that cannot be known is ``None`` (shown "unknown",
    with why) and is no reason either way."""
    from gip.local.health import assess

    figures = figures or Figures(lag_note="unknown", workers_note="unknown")
    parked_queue = f"{prefix}-publisher-dlq"
    parked = sum(int(q["visible"]) for q in queues if q["queue"] == parked_queue)
    dlq = {str(q["queue"]): int(q["visible"]) for q in queues if q["dlq_for"] is not None and q["queue"] != parked_queue}
    live, configured = figures.workers.get("live"), figures.workers.get("configured")
    status, reasons = assess(lag_s=figures.lag_s or 0.0, parked=parked, dlq=dlq, live_workers=live or 0,
                             configured_workers=configured if live is not None and configured is not None else 0)
    return {"status": status, "reasons": reasons, "parked": parked, "dlq": dlq, "publisher_lag_s": figures.lag_s,
            "workers": {"live": live, "configured": configured}, "source": figures.source,
            "notes": {"publisher_lag": figures.lag_note, "workers": figures.workers_note}}


def health_lines(checked: Mapping[str, Any]) -> list[str]:
    """Pure: the ``health:`` line, its reasons, then each figure (or "unknown", and why)."""
    lag, workers, notes = checked["publisher_lag_s"], checked["workers"], checked["notes"]
    live = (notes["workers"] or "unknown") if workers["live"] is None else f"{workers['live']} of {workers['configured']}"
    shown_lag = (notes["publisher_lag"] or "unknown") if lag is None else f"{lag:.0f}s ({notes['publisher_lag']})"
    return [f"health: {checked['status']}", *(f"  {r}" for r in checked["reasons"]),
            f"  publisher lag: {shown_lag}",
            f"  parked records: {checked['parked']}",
            f"  dead-letter messages: {sum(checked['dlq'].values())}",
            f"  live workers: {live}"]


def failure_rows(events: Iterable[Envelope]) -> list[dict[str, Any]]:
    """The why (``error`` or ``reason``) first, then the rest of the data, clipped."""
    rows = []
    for e in events:
        data = dict(e.get("data") or {})
        why = str(data.pop("error", "") or data.pop("reason", ""))
        rest = summary({k: v for k, v in data.items() if k not in ("lease_id", "reason")}, width=60)
        rows.append({"occurred_at": e["occurred_at"], "stream": e["stream"], "type": e["type"],
                     "detail": f"{why} ({rest})" if why else rest})
    return rows


# ---------------------------------------------------------------- commands


def add_accounts_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser)
    parser.add_argument("--state-dir", metavar="DIR", default=None,
                        help="local mode: the --state-dir the local stack runs with, where its "
                             "local-stack.json is (default .local)")


def add_reinstate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", metavar="ACCOUNT", help="12-digit account id (or account-<id>)")
    parser.add_argument("--reason", default="operator reinstated", help="why (kept in the event)")


def run_accounts(args: argparse.Namespace) -> int:
    core = open_core(args)
    with dynamo_errors(core.settings):
        accounts = core.pool.accounts()
    rows = [a.as_dict() for a in accounts]
    if args.format != "table":
        print("\n".join(structured(args.format, rows, rows)))
        return 0
    for line in table(rows, ACCOUNT_COLUMNS):
        print(line)
    by_status = Counter(a.status for a in accounts)
    print(f"({len(rows)} accounts: " + ", ".join(f"{by_status[s]} {s}" for s in STATUSES if by_status[s]) + ")")
    return 0


def run_status(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    core = open_core(args)
    with dynamo_errors(core.settings):
        pool = pool_summary(core.pool.accounts(), core.pool.counts())
        stored = list(core.store.read_window(now - RECENT, now))
    recent = [e for e in stored if e["type"] in FAILURE_TYPES]
    queues = queue_rows(_queues(args))
    failures = failure_rows(recent[-20:])
    window = iso(now - status_figures.LAG_WINDOW)
    figures = status_figures.read(args, recent_events=sum(e["occurred_at"] >= window for e in stored), now=now)
    if figures.notice:
        print(f"notice: {figures.notice}", file=sys.stderr)
    checked = queue_health(queues, prefix=args.prefix, figures=figures)
    if args.format != "table":
        doc = {"pool": pool, "queues": queues, "recent_failures": failures, "health": checked}
        records = [{"kind": "health", **checked}, {"kind": "pool", **pool}, *({"kind": "queue", **q} for q in queues),
                   *({"kind": "failure", **f} for f in failures)]
        print("\n".join(structured(args.format, doc, records)))
        return 0
    for line in health_lines(checked):
        print(line)
    print("\npool")
    pairs: list[tuple[str, Any]] = [(f"  {s.lower()}", n) for s, n in pool["by_status"].items()]
    pairs.append(("  usable", f"{pool['usable']} (counts row: {pool['counts_row']['usable']})"))
    for line in key_values(pairs):
        print(line)
    if not pool["counts_row_agrees"]:
        print("  notice: the counts row disagrees with the rows; run `replay --verify`")
    print(f"\nqueues ({args.prefix}-*)")
    if queues:
        cols = [("QUEUE", "queue"), ("VISIBLE", "visible"), ("IN_FLIGHT", "in_flight"), ("DLQ_FOR", "dlq_for")]
        shown = [{**q, "visible": f"{q['visible']} !" if q["attention"] else q["visible"]} for q in queues]
        for line in table(shown, cols):
            print("  " + line)
    else:
        print("  (none found)")
    print("\nfailures in the last 24h")
    if failures:
        cols = [("OCCURRED_AT", "occurred_at"), ("STREAM", "stream"), ("TYPE", "type"), ("DETAIL", "detail")]
        for line in table(failures, cols):
            print("  " + line)
    else:
        print("  (none)")
    return 0


def run_reinstate(args: argparse.Namespace) -> int:
    account_id = args.account.removeprefix("account-")
    if not ACCOUNT_RE.match(account_id):
        raise UsageError(f"ACCOUNT must be a 12-digit account id, not {args.account!r}")
    core = open_core(args)
    with dynamo_errors(core.settings):
        return _reinstate(core, account_id, args)


def _reinstate(core: Any, account_id: str, args: argparse.Namespace) -> int:
    state = core.pool.get(account_id)
    if state is None:
        raise NotFound(f"account {account_id} is not in the pool")
    if state.status != "QUARANTINED":
        raise GipError(f"account {account_id} is {state.status}, not QUARANTINED: nothing to reinstate")
    operator = _operator(args)
    cause = Cause(correlation_id=f"reinstate-{uuid.uuid4()}", actor=operator)
    event = core.pool.reinstate(account_id, reason=args.reason, cause=cause)
    print(f"account {account_id}: QUARANTINED → CLEANING (it is cleaned before it is used); "
          f"event {event['event_id']} by {operator}")
    return 0


def _operator(args: argparse.Namespace) -> str:
    """Who reinstated: the AWS caller ARN, else the local user name (kept in the event)."""
    try:
        return f"operator:{aws.check_credentials(args)['Arn']}"
    except GipError:
        return f"operator:{getpass.getuser()}"


def _queues(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    sqs = aws.client(args, "sqs")
    out: dict[str, dict[str, str]] = {}
    with aws.aws_errors("sqs:ListQueues"):
        kwargs: dict[str, Any] = {"QueueNamePrefix": f"{args.prefix}-", "MaxResults": 1000}
        while True:
            page = sqs.list_queues(**kwargs)
            for url in page.get("QueueUrls", []):
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)["Attributes"]
                out[url.rsplit("/", 1)[-1]] = attrs
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    if not out:
        print(f"notice: no queue named {args.prefix}-* in this region", file=sys.stderr)
    return out
