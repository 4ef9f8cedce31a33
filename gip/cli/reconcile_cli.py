"""``python bootstrap.py reconcile``: compare the pool with the Organization once and fix it.

Runs the same pass as the hourly Lambda (:mod:`handlers.reconcile`), two-strike rule
included: a mismatch seen for the first time is listed as pending and acted on by the next
pass. ``--strikes 1`` acts at once (for an operator who has checked the Organization).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from gip.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strikes", type=int, default=None, metavar="N",
                        help="act on a mismatch seen N passes in a row (default RECONCILE_STRIKES or 2)")
    parser.add_argument("--target-ou", action="append", default=None, metavar="OU_ID",
                        help="target OU (repeatable; default TARGET_OU_IDS, empty = whole org)")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    from gip.adapters import aws
    from gip.services.reconcile import reconcile_once

    if args.strikes is not None and args.strikes < 1:
        raise UsageError("--strikes must be at least 1")
    sess = aws.session(args)
    settings = settings_for(args, region=sess.region_name, endpoint_url=aws.endpoint_url(args))
    targets = tuple(args.target_ou) if args.target_ou else None
    with aws.aws_errors("reconcile"):
        summary = reconcile_once(settings, session=sess, threshold=args.strikes, target_ou_ids=targets)
    print(json.dumps(summary.to_dict(), indent=2) if args.format == "json" else summary.render())
    return 0


def settings_for(args: argparse.Namespace, *, region: str, endpoint_url: str | None) -> Any:
    """Settings for ``--prefix``; PROCESSING_ROLE_NAME, EXTERNAL_ID, POOL_TABLE… from the env still apply."""
    from gip.config import Settings

    settings = Settings.from_env({**os.environ, "GIP_PREFIX": args.prefix})
    return dataclasses.replace(settings, region=region, endpoint_url=endpoint_url)
