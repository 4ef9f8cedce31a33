"""Capacity: the worker service's MaxCapacity follows the number of *usable* accounts.

Usable = AVAILABLE + RESERVED + CLEANING (DESIGN.md, data flow 8). Not AVAILABLE alone: a
fully busy pool would then scale the service to zero and kill the runs in progress. The count
is the O(1) counts row (``Pool.counts().usable``), which only register / deregister /
quarantine / reinstate update.

Runs on every pool-changing event (bus rule ``<prefix>-capacity`` → SQS) and every 5 minutes.
Pipeline: describe the scalable target, ``decide(current, usable)`` (pure), write only when
something differs; so a repeated run makes no write call at all. Every sync also publishes
the ``UsableAccounts`` and ``AvailableAccounts`` gauges (:func:`gip.domain.metrics.accounts`),
which the ``<prefix>-no-usable-accounts`` alarm and the dashboard read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gip.domain import metrics as metric
from gip.domain.pool import AVAILABLE
from gip.errors import AwsError, ConfigError

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.services.pool import Pool

log = logging.getLogger(__name__)

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"


@dataclass(frozen=True)
class Target:
    """The registered scalable target's bounds."""

    min_capacity: int
    max_capacity: int


@dataclass(frozen=True)
class Change:
    """What to write: ``register_scalable_target(MinCapacity=…, MaxCapacity=…)``."""

    min_capacity: int
    max_capacity: int


def decide(current: Target | None, usable: int) -> Change | None:
    """The write needed to make MaxCapacity == usable, or None when it already is.

    MinCapacity is lowered with it when needed: Application Auto Scaling refuses Max < Min.
    A missing target is registered with MinCapacity 0.
    """
    usable = max(0, int(usable))
    if current is None:
        return Change(min_capacity=0, max_capacity=usable)
    if current.max_capacity == usable and current.min_capacity <= usable:
        return None
    return Change(min_capacity=min(current.min_capacity, usable), max_capacity=usable)


def resource_id(cluster: str, service: str) -> str:
    return f"service/{cluster}/{service}"


class Capacity:
    """Reads the counts row, describes the target, writes only a needed change."""

    def __init__(self, pool: Pool, autoscaling: Any, *, cluster: str, service: str,
                 metrics: Callable[[list[metric.Point]], None] | None = None) -> None:
        if not cluster or not service:
            raise ConfigError("capacity needs CLUSTER_NAME and SERVICE_NAME")
        self.pool = pool
        self.autoscaling = autoscaling
        self.resource_id = resource_id(cluster, service)
        self.metrics = metrics

    def current(self) -> Target | None:
        found = self.autoscaling.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[self.resource_id], ScalableDimension=DIMENSION,
        )["ScalableTargets"]
        if not found:
            return None
        return Target(min_capacity=int(found[0]["MinCapacity"]), max_capacity=int(found[0]["MaxCapacity"]))

    def available(self) -> int | None:
        """AVAILABLE accounts right now (a scan of the pool rows: every 5 minutes, not hot);
        None if it cannot be read (a gauge never fails the sync)."""
        try:
            return sum(1 for account in self.pool.accounts() if account.status == AVAILABLE)
        except Exception as exc:
            log.warning("AvailableAccounts not published: %s: %s", type(exc).__name__, exc)
            return None

    def sync(self) -> Change | None:
        """Make MaxCapacity equal to the usable count; returns the change made, if any."""
        usable = int(self.pool.counts().usable)
        if self.metrics is not None:  # before the write: the alarm gets its point even if ECS fails
            self.metrics(metric.accounts(usable=usable, available=self.available()))
        try:
            change = decide(self.current(), usable)
            if change is not None:
                self.autoscaling.register_scalable_target(
                    ServiceNamespace=NAMESPACE, ResourceId=self.resource_id, ScalableDimension=DIMENSION,
                    MinCapacity=change.min_capacity, MaxCapacity=change.max_capacity,
                )
        except Exception as exc:
            if exc.__class__.__module__.startswith("botocore"):
                raise AwsError(f"capacity on {self.resource_id}: {type(exc).__name__}: {exc}") from exc
            raise
        log.info("usable=%d %s: %s", usable, self.resource_id, change or "already right")
        return change

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Capacity:
        import boto3

        from gip.config import Settings
        from gip.observability import emitter
        from gip.services.pool import Pool

        e = os.environ if env is None else env
        settings = Settings.from_env(e)
        client = boto3.client("application-autoscaling", region_name=settings.region,
                              endpoint_url=settings.endpoint_url)
        # CLUSTER_NAME / SERVICE_NAME; the management template names them ECS_CLUSTER / ECS_SERVICE.
        cluster = e.get("CLUSTER_NAME") or e.get("ECS_CLUSTER", "")
        service = e.get("SERVICE_NAME") or e.get("ECS_SERVICE", "")
        return cls(Pool.from_settings(settings), client, cluster=cluster, service=service,
                   metrics=emitter(settings.prefix))
