"""Store a run's results: ``s3://<bucket>/<owner>/<repo>/<number>/<run>/{result.json,output.log}``.

The results bucket is in the management account and written with the worker's own role,
never with the member credentials. Everything given here is already redacted (the loop does it). An S3 failure is :class:`AwsError` (infrastructure),
which the loop turns into ``IssueProcessingFailed``, never into a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gip.errors import AwsError

TAIL_LINES = 40
TAIL_CHARS = 4000


def prefix(repo: str, number: int, run: int) -> str:
    return f"{repo}/{number}/{run}/"


def log_tail(log: str, *, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines, at most ``chars`` characters. Give it an already redacted log:
    a cut through a secret would leave a piece no pattern recognises."""
    tail = "\n".join(log.rstrip("\n").split("\n")[-lines:])
    return tail[-chars:]


def store(s3: Any, bucket: str, *, repo: str, number: int, run: int, result: dict[str, Any],
          log: str, cell_logs: Mapping[str, str] | None = None) -> str:
    """Write the log(s) then result.json (the result names them); return the result's s3:// URI.
    A matrix run (issue 17) also writes each cell's log, ``cells/<version>.log``."""
    key = prefix(repo, number, run)
    body = dict(result, log_key=f"{key}output.log")
    cells = {version: f"{key}cells/{version}.log" for version in (cell_logs or {})}
    if cells:
        body["cell_log_keys"] = cells
    try:
        for version, cell_key in cells.items():
            s3.put_object(Bucket=bucket, Key=cell_key, Body=(cell_logs or {})[version].encode("utf-8"),
                          ContentType="text/plain; charset=utf-8")
        s3.put_object(Bucket=bucket, Key=f"{key}output.log", Body=log.encode("utf-8"),
                      ContentType="text/plain; charset=utf-8")
        s3.put_object(Bucket=bucket, Key=f"{key}result.json",
                      Body=json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8"),
                      ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cannot store results in s3://{bucket}/{key}: {exc}") from exc
    return f"s3://{bucket}/{key}result.json"
