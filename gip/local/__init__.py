"""``python bootstrap.py --org o-example --local``: the whole system on this machine.

An embedded AWS endpoint (moto server), the same templates deployed into it by the same
bootstrap code, and AWS's runtime roles played with the same handler code: API Gateway,
the stream and SQS event source mappings, the schedules, ECS. See docs/local.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gip.errors import UsageError
from gip.local import handoff

MAX_ACCOUNTS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Local-mode flags (``--region/--profile/--prefix/--endpoint-url`` come from gip.cli.main)."""
    parser.add_argument("--org", default="o-example0000",
                        help="AWS Organization id the templates are given (only a label locally; "
                             "default o-example0000)")
    parser.add_argument("--port", type=int, default=8080, help="webhook port on 127.0.0.1 (default 8080)")
    parser.add_argument("--aws-port", type=int, default=4566, help="embedded AWS endpoint port (default 4566)")
    parser.add_argument("--accounts", type=int, default=3, help="member accounts in the pool (default 3)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: one per account, at most 3)")
    parser.add_argument("--labels", default="needs-reproduction", help="required labels, comma-separated")
    parser.add_argument("--bot-login", default="", help="the GitHub login the notifier comments as")
    parser.add_argument("--count-aws-calls", action="store_true",
                        help="count AWS calls by service and operation (GET /stats; bench/e2e.py)")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="where the event log is kept across restarts (default .local/state); given, "
                             "the logs and run files go there too")
    parser.add_argument("--fresh", action="store_true",
                        help="start with an empty event log (a saved one is moved aside, never deleted)")


def local_org_id(org: str) -> str:
    """Locally the org id is only a label for the templates, so DESIGN's short example
    ``o-example`` is accepted: padded with zeros to the 10 characters AWS ids have."""
    if re.fullmatch(r"o-[a-z0-9]{1,9}", org or ""):
        padded = org + "0" * (12 - len(org))
        print(f"notice: --org {org} is shorter than an AWS organization id; using {padded} locally")
        return padded
    return org


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.accounts <= MAX_ACCOUNTS:
        raise UsageError(f"--accounts must be between 1 and {MAX_ACCOUNTS}")
    for name in ("port", "aws_port"):
        if not 0 <= getattr(args, name) <= 65535:
            raise UsageError(f"--{name.replace('_', '-')} must be a port number")
    if args.port and args.port == args.aws_port:
        raise UsageError("--port and --aws-port must differ")
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    handoff.hand_over()  # re-executes without the GitHub secrets in the environment block
    handoff.take_over()
    # imported after the hand-off: the process that re-executes itself need not load them
    from gip.cli.deploy import DeployOptions, validate
    from gip.local.runtime import LocalOptions, run_local

    args.org = local_org_id(args.org)
    validate(DeployOptions(org_id=args.org, prefix=args.prefix, labels=list(labels)))
    workers = args.workers if args.workers is not None else min(args.accounts, 3)
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    opts = LocalOptions(org=args.org, prefix=args.prefix, region=args.region or "us-east-1",
                        port=args.port, aws_port=args.aws_port, accounts=args.accounts,
                        workers=workers, labels=labels, bot_login=args.bot_login,
                        count_calls=args.count_aws_calls)
    opts.fresh = args.fresh
    if args.state_dir:
        opts.state_dir = Path(args.state_dir)
        opts.event_log = opts.state_dir / "events.jsonl"
    return run_local(opts)
