"""One GitHub rate-limit state per rate key, shared by every container (issue 19, §1).

Per key (:meth:`gip.adapters.github.auth.Credentials.rate_key`: "token" for a PAT, one per App
installation) the gate keeps:

- ``blocked_until`` (epoch s): no container sends a request to GitHub before it;
- ``strikes``: consecutive limits, for the back-off (:func:`blocked_wait`), reset by a success;
- ``next_write`` (epoch s): the earliest time of the deployment's next mutation, so writes stay
  ``write_interval`` apart across containers (GitHub: "at least one second between each").

:class:`DynamoRateGate` keeps it as one row (``pk = github-rate#<key>``) of the pool projection
table, written with conditional updates; :class:`MemoryRateGate` is the same for one process
(unit tests, and the default of a client built without one). See docs/internals.md, "GitHub
rate limits".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

MAX_BACKOFF_S = 3600.0  # a secondary limit's back-off never grows past an hour
CLAIM_TRIES = 20


@dataclass(frozen=True)
class GateState:
    blocked_until: float = 0.0
    strikes: int = 0
    next_write: float = 0.0


def blocked_wait(retry_after: float, strikes: int, *, reset_in: float | None) -> float:
    """Seconds to block after a limit, the ``strikes``-th in a row (0: the first).

    The wait GitHub asked for, doubled for each consecutive limit, but never past the primary
    reset when GitHub said when that is (``reset_in``), else never past :data:`MAX_BACKOFF_S`.
    """
    grown = retry_after * (2 ** min(max(strikes, 0), 16))
    cap = max(retry_after, reset_in if reset_in is not None else MAX_BACKOFF_S)
    return min(grown, cap)


class RateGate(Protocol):
    def state(self, key: str) -> GateState: ...

    def block(self, key: str, until: float, strikes: int) -> None:
        """Block ``key`` until ``until`` (never shortens a later block) and store ``strikes``."""
        ...

    def clear_strikes(self, key: str) -> None: ...

    def claim_write(self, key: str, *, now: float, interval: float) -> float:
        """Reserve the next write slot; returns its time (wait until then, then write)."""
        ...


class MemoryRateGate:
    """The gate for one process (tests; a client without a shared gate)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, GateState] = {}

    def state(self, key: str) -> GateState:
        with self._lock:
            return self._rows.get(key, GateState())

    def block(self, key: str, until: float, strikes: int) -> None:
        with self._lock:
            row = self._rows.get(key, GateState())
            self._rows[key] = GateState(max(row.blocked_until, until), strikes, row.next_write)

    def clear_strikes(self, key: str) -> None:
        with self._lock:
            row = self._rows.get(key, GateState())
            self._rows[key] = GateState(row.blocked_until, 0, row.next_write)

    def claim_write(self, key: str, *, now: float, interval: float) -> float:
        with self._lock:
            row = self._rows.get(key, GateState())
            slot = max(now, row.next_write)
            self._rows[key] = GateState(row.blocked_until, row.strikes, slot + interval)
            return slot


class DynamoRateGate:
    """The gate as one conditional row per key in a DynamoDB table keyed by ``pk`` (S).

    Reads are consistent, so a block written by one container stops the next request of every
    other. ``claim_write`` is optimistic: it moves ``next_write`` on only if nobody moved it since
    it was read, and re-reads on a lost race.
    """

    def __init__(self, table_name: str, *, client: Any = None, prefix: str = "github-rate#",
                 region: str | None = None, endpoint_url: str | None = None) -> None:
        self.table_name = table_name
        self._client = client
        self._prefix = prefix
        self._where = {"region_name": region, "endpoint_url": endpoint_url}

    @classmethod
    def from_settings(cls, settings: Any) -> DynamoRateGate:
        return cls(settings.pool_table, region=settings.region, endpoint_url=settings.endpoint_url)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("dynamodb", **self._where)
        return self._client

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": self._prefix + key}}

    def state(self, key: str) -> GateState:
        item = self.client.get_item(TableName=self.table_name, Key=self._key(key),
                                    ConsistentRead=True).get("Item") or {}
        return _state(item)

    def block(self, key: str, until: float, strikes: int) -> None:
        errors = self.client.exceptions
        try:
            self.client.update_item(
                TableName=self.table_name, Key=self._key(key),
                UpdateExpression="SET blocked_until = :u, strikes = :s",
                ConditionExpression="attribute_not_exists(blocked_until) OR blocked_until < :u",
                ExpressionAttributeValues={":u": {"N": _num(until)}, ":s": {"N": str(int(strikes))}},
            )
        except errors.ConditionalCheckFailedException:  # a later block is already there
            self.client.update_item(TableName=self.table_name, Key=self._key(key),
                                    UpdateExpression="SET strikes = :s",
                                    ExpressionAttributeValues={":s": {"N": str(int(strikes))}})

    def clear_strikes(self, key: str) -> None:
        self.client.update_item(TableName=self.table_name, Key=self._key(key),
                                UpdateExpression="SET strikes = :z",
                                ExpressionAttributeValues={":z": {"N": "0"}})

    def claim_write(self, key: str, *, now: float, interval: float) -> float:
        errors = self.client.exceptions
        for _ in range(CLAIM_TRIES):
            item = self.client.get_item(TableName=self.table_name, Key=self._key(key),
                                        ConsistentRead=True).get("Item") or {}
            seen = item.get("next_write", {}).get("N")
            slot = max(now, float(seen) if seen is not None else 0.0)
            condition = ("attribute_not_exists(next_write)" if seen is None
                         else "next_write = :seen")
            values = {":n": {"N": _num(slot + interval)}}
            if seen is not None:
                values[":seen"] = {"N": seen}
            try:
                self.client.update_item(TableName=self.table_name, Key=self._key(key),
                                        UpdateExpression="SET next_write = :n",
                                        ConditionExpression=condition,
                                        ExpressionAttributeValues=values)
                return slot
            except errors.ConditionalCheckFailedException:
                continue  # another container took that slot: take the next one
        raise RuntimeError(f"could not claim a GitHub write slot for {key} in {CLAIM_TRIES} tries")


def _num(value: float) -> str:
    return f"{value:.3f}"


def _state(item: dict[str, Any]) -> GateState:
    def num(name: str) -> float:
        raw = item.get(name, {}).get("N")
        return float(raw) if raw is not None else 0.0

    return GateState(num("blocked_until"), int(num("strikes")), num("next_write"))
