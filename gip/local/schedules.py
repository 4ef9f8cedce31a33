"""The template's schedule rules, played on a compressed clock.

The compressed clock: **one local second stands for 15 AWS minutes** (``COMPRESSION`` = 900),
and no schedule runs more often than every ``FLOOR_S`` (2 s), to keep a laptop quiet:

| rule (templates/management.yaml) | in AWS | locally |
|---|---|---|
| ``<prefix>-reconcile-schedule`` → reconcile Lambda | rate(1 hour) | every 4 s |
| ``<prefix>-sweeper-schedule`` → sweeper Lambda | rate(15 minutes) | every 2 s |
| ``<prefix>-capacity-schedule`` → capacity queue | rate(5 minutes) | every 2 s |
| ``<prefix>-redeliver-schedule`` → redeliver Lambda | rate(15 minutes) | every 30 s |

The redelivery sweep is the exception to the compression: it lists the hook's deliveries on
GitHub (the real one, with a real App), so locally it runs at most every ``RULE_FLOORS_S``
(30 s): two list requests a minute rather than thirty. ``bootstrap.py redeliver`` runs it now.
``GIP_LOCAL_RECONCILE_S`` / ``GIP_LOCAL_REDELIVER_S`` replace those two periods
(:mod:`gip.local.knobs`, ``build_jobs(periods=...)``).

A rule that targets a Lambda function calls its handler with a "Scheduled Event"; one that
targets an SQS queue sends that event to the queue, where the queue's mapping picks it up,
exactly as EventBridge would. Every schedule also runs once at start-up (reconcile's two-strike
rule then registers the member accounts within about two periods).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gip.local.aws_setup import Schedule
from gip.local.lambdas import Function, scheduled_event

log = logging.getLogger("local.schedules")

COMPRESSION = 900.0
FLOOR_S = 2.0
RULE_FLOORS_S = {"-redeliver-schedule": 30.0}  # rule name suffix -> slowest local period


def local_period(rate_s: float, *, compression: float = COMPRESSION, floor_s: float = FLOOR_S) -> float:
    """Pure: the local period of a ``rate(...)`` schedule."""
    return max(floor_s, rate_s / compression)


@dataclass
class Job:
    name: str
    period_s: float
    run: Callable[[], Any]
    due: float = 0.0


def build_jobs(schedules: list[Schedule], *, functions: Mapping[str, Function],
               load: Callable[[Function], Callable[[Any, Any], Any]], sqs: Any,
               queue_url: Callable[[str], str], account: str, region: str,
               periods: Mapping[str, float] | None = None) -> list[Job]:
    """One job per (rule, target): call the function's handler, or send to the queue.
    ``periods`` (rule name suffix -> seconds) replaces the compressed clock's period of a rule."""
    jobs = []
    for schedule in schedules:
        for arn in schedule.target_arns:
            event = lambda s=schedule: scheduled_event(rule_arn=s.rule_arn, account=account, region=region)  # noqa: E731
            if arn in functions:
                function = functions[arn]
                handler = load(function)
                run = _invoker(handler, function, event)
            elif arn.startswith("arn:aws:sqs:"):
                run = _sender(sqs, queue_url(arn), event)
            else:
                log.warning("schedule %s targets %s, which local mode does not play", schedule.rule_name, arn)
                continue
            floor = max([FLOOR_S, *(f for sfx, f in RULE_FLOORS_S.items() if schedule.rule_name.endswith(sfx))])
            period = next((p for sfx, p in (periods or {}).items() if schedule.rule_name.endswith(sfx)),
                          local_period(schedule.rate_s, floor_s=floor))
            jobs.append(Job(schedule.rule_name, period, run))
    return jobs


def _invoker(handler: Callable[[Any, Any], Any], function: Function,
             event: Callable[[], dict[str, Any]]) -> Callable[[], Any]:
    return lambda: handler(event(), function.context())


def _sender(sqs: Any, url: str, event: Callable[[], dict[str, Any]]) -> Callable[[], Any]:
    return lambda: sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event()))


class Scheduler(threading.Thread):
    """Runs due jobs one at a time until ``stop`` is set; a failing job logs one line."""

    def __init__(self, jobs: list[Job], *, stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.jobs, self.stop, self.clock = jobs, stop, clock
        self.runs: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            self.stop.wait(self.tick())

    def tick(self) -> float:
        """Run every due job; returns how long to sleep until the next one is due."""
        for job in self.jobs:
            if self.stop.is_set():
                return 0.0
            if self.clock() >= job.due:
                try:
                    job.run()
                except Exception as exc:
                    if self.stop.is_set():
                        return 0.0
                    log.warning("schedule %s failed: %s: %s", job.name, type(exc).__name__, exc)
                self.runs[job.name] = self.runs.get(job.name, 0) + 1
                job.due = self.clock() + job.period_s
        upcoming = min((job.due for job in self.jobs), default=self.clock() + 1.0)
        return max(0.05, upcoming - self.clock())
