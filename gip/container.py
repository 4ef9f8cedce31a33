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
