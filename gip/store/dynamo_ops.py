"""Operational rows of the pool table through pynamodb: the GitHub rate gate
(:class:`~gip.store.protocols.RateGate`) and the redelivery sweep's marks
(:class:`~gip.store.protocols.RedeliveryMarks`). Not events: they change no state the log knows.

Item keys and attributes (docs/internals.md): ``github-rate#<key>`` with ``blocked_until``,
``strikes``, ``next_write`` (epoch seconds, N); ``redelivery-mark#<hook>`` with ``mark`` (N) and
``kind``; ``redelivery-hooks`` with ``hooks`` (L of S) and ``kind``. Every read of the gate is
consistent, and each write that could race is conditional, so the spacing of writes holds across
containers. Any failure other than a lost condition is
:class:`~gip.errors.StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from gip.config import Settings
from gip.errors import StoreUnavailable
from gip.store.dynamo_rows import _conditional, _get
from gip.store.models import GateItem, MarkItem, bind_to
from gip.store.protocols import GateState

GATE_PK = "github-rate#"
MARK_PK = "redelivery-mark#"
HOOKS_PK = "redelivery-hooks"
CLAIM_TRIES = 20


_R = TypeVar("_R", GateItem, MarkItem)


class _PoolRows(Generic[_R]):
    """One kind of row of the pool table, bound to the table's name, region and endpoint (its
    own connection: build once per container)."""

    base: type[_R]

    def __init__(self, table_name: str, *, region: str | None = None,
                 endpoint_url: str | None = None) -> None:
        self.table_name = table_name
        self.model: type[_R] = bind_to(self.base, table_name, region=region, host=endpoint_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.pool_table, region=settings.region, endpoint_url=settings.endpoint_url)


class DynamoRateGate(_PoolRows[GateItem]):
    """The gate as one row per key (``pk = github-rate#<key>``) of the pool table.

    ``claim_write`` is optimistic: it moves ``next_write`` on only if nobody moved it since it was
    read (``next_write = :seen``, or ``attribute_not_exists`` for the first), and re-reads on a
    lost race.
    """

    base = GateItem
    _prefix = GATE_PK

    def _row(self, key: str) -> GateItem | None:
        return _get(self.model, self._prefix + key, action=f"read the GitHub rate gate {key}")

    def state(self, key: str) -> GateState:
        row = self._row(key)
        if row is None:
            return GateState()
        return GateState(float(row.blocked_until or 0.0), int(row.strikes or 0), float(row.next_write or 0.0))

    def block(self, key: str, until: float, strikes: int) -> None:
        m, item = self.model, self.model(self._prefix + key)
        later = _conditional(lambda: item.update(
            actions=[m.blocked_until.set(_num(until)), m.strikes.set(int(strikes))],
            condition=m.blocked_until.does_not_exist() | (m.blocked_until < _num(until))),
            f"block the GitHub rate gate {key}")
        if not later:  # a later block is already there: keep it, store the strikes
            _conditional(lambda: item.update(actions=[m.strikes.set(int(strikes))]),
                         f"count a GitHub limit on {key}")

    def clear_strikes(self, key: str) -> None:
        m, item = self.model, self.model(self._prefix + key)
        _conditional(lambda: item.update(actions=[m.strikes.set(0)]), f"clear the GitHub strikes of {key}")

    def claim_write(self, key: str, *, now: float, interval: float) -> float:
        for _ in range(CLAIM_TRIES):
            row = self._row(key)
            seen = None if row is None or row.next_write is None else float(row.next_write)
            slot = max(now, seen if seen is not None else 0.0)
            if self._move_next_write(key, seen=seen, to=slot + interval):
                return slot
            # another container took that slot: take the next one
        raise StoreUnavailable(f"claim a GitHub write slot for {key}", "Contention",
                               f"lost the race {CLAIM_TRIES} times")


    def _move_next_write(self, key: str, *, seen: float | None, to: float) -> bool:
        """Set ``next_write`` to ``to`` if it is still ``seen`` (None: not set yet)."""
        m, item = self.model, self.model(self._prefix + key)
        condition = m.next_write.does_not_exist() if seen is None else m.next_write == seen
        return _conditional(lambda: item.update(actions=[m.next_write.set(_num(to))], condition=condition),
                            f"claim a GitHub write slot for {key}")


class DynamoRedeliveryMarks(_PoolRows[MarkItem]):
    """The sweep's rows in the pool table: a high-water mark per hook, and the hook list."""

    base = MarkItem

    def get(self, hook: str) -> int | None:
        row = _get(self.model, MARK_PK + hook, action=f"read the redelivery mark of {hook}")
        return None if row is None or row.mark is None else int(row.mark)

    def advance(self, hook: str, mark: int) -> None:
        m, item = self.model, self.model(MARK_PK + hook)
        _conditional(lambda: item.update(  # False: another sweep went further, its mark stays
            actions=[m.mark.set(mark), m.kind.set("redelivery-mark")],
            condition=m.mark.does_not_exist() | (m.mark < mark)), f"advance the redelivery mark of {hook}")

    def hooks(self) -> list[str]:
        row = _get(self.model, HOOKS_PK, action="read the redelivery hooks")
        return [str(h) for h in row.hooks] if row is not None and row.hooks is not None else []

    def set_hooks(self, hooks: Sequence[str]) -> None:
        item = self.model(HOOKS_PK, kind="redelivery-hooks", hooks=list(hooks))
        _conditional(item.save, "store the redelivery hooks")


def _num(value: float) -> float:
    """Epoch seconds as stored: to the millisecond, as the gate always wrote them."""
    return round(value, 3)


if TYPE_CHECKING:  # mypy proves the classes meet their contracts
    from gip.store.protocols import RateGate, RedeliveryMarks

    def _conforms(settings: Settings) -> tuple[RateGate, RedeliveryMarks]:
        return DynamoRateGate.from_settings(settings), DynamoRedeliveryMarks.from_settings(settings)
