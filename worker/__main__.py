"""``python -m worker``: build the worker from the environment and run its loop until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import replace
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from gip import observability
from gip.errors import ConfigError, GipError
from gip.services.issues import Issues
from gip.services.pool import Pool
from gip.store.models import Tables
from worker.cleaner import Protection, load_cleaner
from worker.cleanup import Cleanup
from worker.config import WorkerConfig
from worker.credentials import MemberCredentials
from worker.loop import Worker
from worker.processor import load_processor
from worker.runner import protect_worker_process


def build(cfg: WorkerConfig) -> Worker:
    """Wire the real clients (they honour AWS_ENDPOINT_URL) into a :class:`Worker`."""
    if not cfg.settings.issue_queue_url:
        raise ConfigError("ISSUE_QUEUE_URL is not set: the worker has no queue to read")
    sts = boto3.client("sts", region_name=cfg.settings.region)
    if not cfg.settings.results_bucket:  # the documented default: <prefix>-results-<account>
        try:
            account = sts.get_caller_identity()["Account"]
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(f"RESULTS_BUCKET is not set and the account id is unknown: {exc}") from exc
        cfg = replace(cfg, settings=replace(cfg.settings, results_bucket=f"{cfg.settings.prefix}-results-{account}"))
    s = cfg.settings
    tables = Tables.from_settings(s)
    pool = Pool.from_settings(s, tables)

    def member_credentials(role_arn: str, lease_id: str | None) -> Any:
        return MemberCredentials(sts, role_arn=role_arn,
                                 external_id=s.external_id, lease_id=lease_id or "cleanup",
                                 worker=cfg.name).get

    # aws-nuke ignores AWS_ENDPOINT_URL: against a local endpoint it would reach for real AWS
    nuke = cfg.nuke or ("off" if s.endpoint_url else "")
    cleanup = Cleanup(pool=pool, cleaner=load_cleaner(cfg.cleaner, nuke=nuke),
                      member_credentials=member_credentials, regions=cfg.allowed_regions or (s.region,),
                      protection=Protection(prefix=s.prefix, role_name=s.processing_role_name),
                      max_attempts=cfg.max_attempts, claim_s=cfg.cleanup_claim_s, endpoint_url=s.endpoint_url,
                      management_account=_own_account(sts))
    return Worker(cfg, sqs=boto3.client("sqs", region_name=s.region),
                  s3=boto3.client("s3", region_name=s.region), sts=sts, pool=pool,
                  issues=Issues.from_settings(s, tables), processor=load_processor(cfg.processor),
                  cleanup=cleanup, metrics=observability.emitter(s.prefix))


def _own_account(sts: Any) -> str:
    """The management account (where the worker runs): aws-nuke's blocklist."""
    try:
        return str(sts.get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        raise ConfigError(f"cannot tell the worker's own account: {exc}") from exc


def main() -> int:
    observability.setup("worker")  # JSON lines on stdout (the task's awslogs), secrets redacted
    protect_worker_process()  # before anything else: our environ is not the snippet's business
    try:
        worker = build(WorkerConfig.from_env())
    except GipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    observability.bind(worker=worker.cfg.name)
    isolation = worker.cfg.limits.isolation
    if isolation is not None and isolation.note:
        logging.getLogger("worker.sandbox").warning(isolation.note)
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop())
    signal.signal(signal.SIGINT, lambda *_: worker.request_stop())
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
