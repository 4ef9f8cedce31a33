"""An injected clock and sleep for code that takes ``clock``/``sleep`` callables."""

from __future__ import annotations


class FakeTime:
    """Sleeping advances the clock and is recorded; nothing really waits."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
