"""``python bootstrap.py reconcile``: compare the pool with the Organization once and fix it.

Runs the same pass as the hourly Lambda (:mod:`handlers.reconcile`), two-strike rule
included: a mismatch seen for the first time is listed as pending and acted on by the next
pass. ``--strikes 1`` acts at once (for an operator who has checked the Organization).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from gip.cli.render import add_format, structured
from gip.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strikes", type=int, default=None, metavar="N",
                        help="act on a mismatch seen N passes in a row (default RECONCILE_STRIKES or 2)")
    parser.add_argument("--target-ou", action="append", default=None, metavar="OU_ID",
                        help="target OU (repeatable; default TARGET_OU_IDS, empty = whole org)")
    add_format(parser)


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
    doc = summary.to_dict()
    print("\n".join(structured(args.format, doc, [doc])) if args.format != "table" else summary.render())
    return 0


def settings_for(args: argparse.Namespace, *, region: str, endpoint_url: str | None) -> Any:
    """Settings for ``--prefix``; PROCESSING_ROLE_NAME, EXTERNAL_ID, POOL_TABLE… from the env still apply."""
    from gip.config import Settings

    settings = Settings.from_env({**os.environ, "GIP_PREFIX": args.prefix})
    return dataclasses.replace(settings, region=region, endpoint_url=endpoint_url)
