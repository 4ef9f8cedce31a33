"""The operational rows of :mod:`gip.store.dynamo_ops` for one process: the GitHub rate gate
(the default of a client built without a shared one, and tests) and the redelivery marks.
Same contracts (:mod:`gip.store.protocols`), checked by tests/test_store_ops.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gip.store.protocols import GateState


class MemoryRateGate:
    """The gate for one process; a lock stands for DynamoDB's conditional writes."""

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


class MemoryRedeliveryMarks:
    """The sweep's marks and hook list in dicts."""

    def __init__(self) -> None:
        self.marks: dict[str, int] = {}
        self._hooks: list[str] = []

    def get(self, hook: str) -> int | None:
        return self.marks.get(hook)

    def advance(self, hook: str, mark: int) -> None:
        if hook not in self.marks or self.marks[hook] < mark:
            self.marks[hook] = mark

    def hooks(self) -> list[str]:
        return list(self._hooks)

    def set_hooks(self, hooks: Sequence[str]) -> None:
        self._hooks = list(hooks)


if TYPE_CHECKING:  # mypy proves the classes meet their contracts
    from gip.store.protocols import RateGate, RedeliveryMarks

    _gate: RateGate = MemoryRateGate()
    _marks: RedeliveryMarks = MemoryRedeliveryMarks()
