"""What the notifier's container knows of GitHub, per issue stream (:class:`Memory`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gip.services.status_record import Record

K = TypeVar("K")
V = TypeVar("V")
MEMORY_SIZE = 4096  # issues remembered per container (least recently used go first)


class Bounded(Generic[K, V]):
    """A small LRU map."""

    def __init__(self, size: int = MEMORY_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def drop(self, key: K) -> None:
        self._items.pop(key, None)


@dataclass(frozen=True)
class Shown:
    """Our status comment on an issue, as we last saw or wrote it."""

    comment_id: int
    body: str


@dataclass
class Memory:
    """What this container knows of GitHub, per issue stream."""

    shown: Bounded[str, Shown] = field(default_factory=Bounded)
    labelled: Bounded[str, tuple[int, str]] = field(default_factory=Bounded)  # (run, label)
    told: Bounded[str, bool] = field(default_factory=Bounded)  # untrusted note seen or posted
    repo_labels: Bounded[str, bool] = field(default_factory=Bounded)  # verdict labels created
    records: Bounded[str, Record] = field(default_factory=Bounded)  # the status_record, as read or put
    confused: Bounded[str, int] = field(default_factory=Bounded)  # run whose untrusted command got 😕
