"""The heartbeat of a run in progress: a thread that calls ``beat`` every ``every`` seconds
(the worker extends the message's visibility and renews the lease) until stopped or a beat
says the run is lost."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable


class Heartbeat(threading.Thread):
    """Extends the message's visibility and renews the lease every ``every`` seconds."""

    def __init__(self, *, every: float, beat: Callable[[], bool]) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.every, self._beat = every, beat
        self._context = contextvars.copy_context()  # the run's log keys on the beat's lines too
        self._done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        self._context.run(self._run)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            if not self._beat():
                self.lost.set()
                return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)
