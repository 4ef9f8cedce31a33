"""The two ``status`` figures the tables cannot give: the publisher's lag and the live workers.

Where they come from depends on the stack:

* **The local stack** (the endpoint is the one named in ``<state-dir>/local-stack.json``, which
  ``local`` writes while it runs): its own ``GET /healthz``, which measures the lag from its
  stream poller and counts its worker processes. Not reachable, or still starting: one notice
  line, and both figures ``unknown``.
* **A deployed stack**: the live workers are the ECS service's ``runningCount`` of its
  ``desiredCount`` (``<prefix>-cluster`` / ``<prefix>-worker``); the lag is the publisher
  Lambda's ``IteratorAge`` (AWS/Lambda, ``FunctionName=<prefix>-publisher``), the Maximum over
  the last :data:`LAG_WINDOW`. Lambda sends ``IteratorAge`` only when it invokes the function,
  so no datapoint means an idle publisher, or a stuck one: it is 0 only when no backlog shows
  (no event stored in the window, and the stream mapping Enabled and not reporting a problem);
  otherwise ``unknown``, with why.

:func:`lag_from_metric` and :func:`from_health_document` are pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gip.adapters import aws

LAG_WINDOW = timedelta(minutes=5)
LOCAL_STATE_DIR = Path(__file__).resolve().parents[2] / ".local"  # `local`'s default --state-dir
HEALTHZ_TIMEOUT_S = 3.0


@dataclass
class Figures:
    """The lag (seconds) and workers, ``None`` when unknown, each with what to print then."""

    lag_s: float | None = None
    lag_note: str = ""
    workers: dict[str, int | None] = field(default_factory=lambda: {"live": None, "configured": None})
    workers_note: str = ""
    source: str = "aws"  # "aws" | "local"
    notice: str = ""  # one line for stderr, when something could not be read


# ---------------------------------------------------------------- pure


def lag_from_metric(values_ms: Sequence[float], *, recent_events: int, mapping_problem: str,
                    window: timedelta = LAG_WINDOW) -> tuple[float | None, str]:
    """Pure: the lag from ``IteratorAge`` values (milliseconds) and, without any, whether a
    backlog shows. Returns (seconds or None, the note printed beside it)."""
    minutes = f"{window.total_seconds() / 60:.0f} min"
    if values_ms:
        return max(values_ms) / 1000.0, f"IteratorAge, Maximum over the last {minutes}"
    if mapping_problem:
        return None, f"unknown (no IteratorAge datapoints in the last {minutes}; {mapping_problem})"
    if recent_events:
        return None, (f"unknown (no IteratorAge datapoints in the last {minutes}, "
                      f"though {recent_events} event(s) were stored in it)")
    return 0.0, f"idle: no IteratorAge datapoints and no events stored in the last {minutes}"


def from_health_document(url: str, code: int, doc: Any) -> Figures:
    """Pure: the figures from the local stack's ``/healthz`` answer."""
    if code != 200 or not isinstance(doc, dict) or "workers" not in doc:
        phase = doc.get("status") if isinstance(doc, dict) else None
        note = f"unknown (the local stack is {phase or f'answering {code}'})"
        return Figures(lag_note=note, workers_note=note, source="local",
                       notice=f"local stack at {url}: not ready yet ({phase or code}); publisher lag and live workers unknown")
    workers = doc["workers"]
    return Figures(lag_s=float(doc.get("publisher", {}).get("lag_s", 0.0)), lag_note=f"from the local {url}",
                   workers={"live": int(workers["live"]), "configured": int(workers["configured"])},
                   workers_note=f"from the local {url}", source="local")


# ---------------------------------------------------------------- reading


def local_record(state_dir: Path, endpoint: str | None) -> dict[str, Any] | None:
    """The running local stack's ``local-stack.json`` when it names ``endpoint``; else None."""
    if not endpoint or not aws.is_local_endpoint(endpoint):
        return None
    try:
        record = json.loads((state_dir / "local-stack.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or str(record.get("endpoint_url", "")).rstrip("/") != endpoint.rstrip("/"):
        return None
    return record


def read_local(record: dict[str, Any], get: Callable[..., Any] | None = None) -> Figures:
    """``GET /healthz`` of the local stack ``record`` names (one notice line if unreachable)."""
    import requests

    url = str(record.get("webhook_url", "")).rsplit("/webhook", 1)[0] + "/healthz"
    try:
        answer = (get or requests.get)(url, timeout=HEALTHZ_TIMEOUT_S)
        doc = answer.json()
    except (requests.RequestException, ValueError) as exc:
        note = "unknown (the local stack is not reachable)"
        return Figures(lag_note=note, workers_note=note, source="local",
                       notice=f"local stack: not reachable at {url} ({type(exc).__name__}); "
                              "publisher lag and live workers unknown")
    return from_health_document(url, int(answer.status_code), doc)


def read_deployed(args: Any, *, recent_events: int, now: datetime) -> Figures:
    """The ECS service's workers and the publisher's ``IteratorAge`` (module docstring)."""
    workers = ecs_workers(args)
    figures = Figures(workers=workers, workers_note="" if workers["live"] is not None else "unknown (no ECS service found)")
    function = f"{args.prefix}-publisher"
    try:
        values = iterator_age(aws.client(args, "cloudwatch"), function, now=now)
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        figures.lag_note = f"unknown (CloudWatch not readable: {code or 'error'})"
        return figures
    figures.lag_s, figures.lag_note = lag_from_metric(values, recent_events=recent_events,
                                                      mapping_problem=mapping_problem(args, function))
    return figures


def iterator_age(cloudwatch: Any, function: str, *, now: datetime, window: timedelta = LAG_WINDOW) -> list[float]:
    """The publisher's ``IteratorAge`` Maximum per minute over ``window`` (milliseconds)."""
    query = {"Id": "age", "ReturnData": True, "MetricStat": {"Period": 60, "Stat": "Maximum", "Metric": {
        "Namespace": "AWS/Lambda", "MetricName": "IteratorAge",
        "Dimensions": [{"Name": "FunctionName", "Value": function}]}}}
    values: list[float] = []
    kwargs: dict[str, Any] = {"MetricDataQueries": [query], "StartTime": now - window, "EndTime": now}
    while True:
        page = cloudwatch.get_metric_data(**kwargs)
        values += [float(v) for r in page.get("MetricDataResults", []) for v in r.get("Values", [])]
        if not page.get("NextToken"):
            return values
        kwargs["NextToken"] = page["NextToken"]


def mapping_problem(args: Any, function: str) -> str:
    """What the publisher's stream mapping shows wrong ("" when Enabled and not reporting a
    problem, or when it cannot be read: then no backlog shows there)."""
    try:
        found = aws.client(args, "lambda").list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    except (BotoCoreError, ClientError):
        return ""
    for mapping in found:
        if mapping.get("State", "Enabled") != "Enabled":
            return f"its stream mapping is {mapping['State']}"
        if str(mapping.get("LastProcessingResult", "")).startswith("PROBLEM"):
            return f"its stream mapping reports {mapping['LastProcessingResult']}"
    return ""


def ecs_workers(args: Any) -> dict[str, int | None]:
    """The worker ECS service's ``runningCount`` / ``desiredCount`` (templates/worker.yaml names
    the cluster ``<prefix>-cluster`` and the service ``<prefix>-worker``); ``None`` each when the
    service cannot be read (no such service, no permission, no ECS at this endpoint)."""
    try:
        found = aws.client(args, "ecs").describe_services(
            cluster=f"{args.prefix}-cluster", services=[f"{args.prefix}-worker"]).get("services", [])
    except (BotoCoreError, ClientError):  # no ECS here, no permission: the figure is unknown
        found = []
    active = [s for s in found if s.get("status") == "ACTIVE"]
    if not active:
        return {"live": None, "configured": None}
    return {"live": int(active[0].get("runningCount", 0)), "configured": int(active[0].get("desiredCount", 0))}


def read(args: Any, *, recent_events: int, now: datetime) -> Figures:
    """The local stack's figures when ``args``' endpoint is the running local stack's, else the
    deployed stack's. A local endpoint with no local stack recorded for it gets a notice, then
    the deployed readings (a bare moto endpoint answers them as AWS would)."""
    endpoint = aws.endpoint_url(args)
    state_dir = Path(getattr(args, "state_dir", None) or LOCAL_STATE_DIR)
    record = local_record(state_dir, endpoint)
    if record is not None:
        return read_local(record)
    figures = read_deployed(args, recent_events=recent_events, now=now)
    if endpoint and aws.is_local_endpoint(endpoint):
        figures.notice = (f"no local stack recorded for {endpoint} in {state_dir / 'local-stack.json'} "
                          "(is `make local` running? pass its --state-dir); reading it as a deployed stack")
    return figures
