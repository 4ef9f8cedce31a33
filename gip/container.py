"""Per-container singletons: ``@once`` builds a builder's value once, on first use.

Lambda runs one invocation at a time in a container, where ``functools.cache`` would do. Local
mode plays a mapping's concurrent batches as threads of one process that share one handler
module (docs/local.md, "What plays AWS's runtime"). With ``functools.cache`` each of the first
concurrent invocations built its own service: a burst's first records each read the secret,
built the AWS clients and asked GitHub for the permission, all on one core. ``once`` builds
under a lock, so the others wait for that one value. Like ``functools.cache``, it keeps no
failed build: an exception (a missing setting) is raised again on the next call until it is fixed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Once(Generic[P, T]):
    """A builder called once per distinct arguments (usually none); ``cache_clear()`` forgets
    the values (a new container)."""

    def __init__(self, build: Callable[P, T]) -> None:
        functools.update_wrapper(self, build)
        self.__wrapped__ = build
        self._lock = threading.RLock()  # a builder that (wrongly) calls itself fails, not hangs
        self._values: dict[Hashable, T] = {}

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self.__wrapped__(*args, **kwargs)
            return self._values[key]

    def cache_clear(self) -> None:
        with self._lock:
            self._values.clear()


def once(build: Callable[P, T]) -> Once[P, T]:
    """Decorator: ``@once`` over a per-container builder (``_service()`` in each handler)."""
    return Once(build)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values per key for ``ttl_s`` seconds, in one container (a failed fetch is not kept).

    The gatekeeper's GitHub reads that do not change per issue: a sender's permission and the
    repository's ``reproduce.yml`` (docs/internals.md, "Only the reads that decide")."""

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._fetching: dict[K, threading.Lock] = {}  # one fetch per key at a time (local mode's threads)

    def get(self, key: K, fetch: Callable[[], V]) -> V:
        hit = self._fresh(key)
        if hit is not None:
            return hit[1]
        with self._fetching.setdefault(key, threading.Lock()):
            hit = self._fresh(key)  # fetched by another thread meanwhile
            if hit is not None:
                return hit[1]
            now = self._clock()
            value = fetch()
            self._entries[key] = (now, value)
            return value

    def _fresh(self, key: K) -> tuple[float, V] | None:
        hit = self._entries.get(key)
        return hit if hit is not None and self._clock() - hit[0] < self.ttl_s else None
