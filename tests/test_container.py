"""``gip.container.once``: the per-container singleton idiom of every handler."""

from __future__ import annotations

import threading
import time

import pytest

from gip.container import once


def test_concurrent_first_calls_build_once_and_share_the_value() -> None:
    builds: list[int] = []
    started = threading.Barrier(8)

    @once
    def service() -> object:
        builds.append(1)
        time.sleep(0.05)  # a slow build: the others arrive while it runs
        return object()

    results: list[object] = []

    def call() -> None:
        started.wait()
        results.append(service())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_a_failed_build_is_not_kept_and_cache_clear_builds_afresh() -> None:
    attempts: list[int] = []

    @once
    def settings() -> int | None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("GIP_PREFIX is missing")
        return None  # None is a value like any other

    with pytest.raises(ValueError, match="missing"):
        settings()
    assert settings() is None and settings() is None
    assert len(attempts) == 2
    settings.cache_clear()
    assert settings() is None
    assert len(attempts) == 3
    assert settings.__wrapped__.__name__ == "settings" and settings.__name__ == "settings"


def test_a_builder_with_an_argument_builds_once_per_argument() -> None:
    built: list[str] = []

    @once
    def registrar(function_arn: str) -> str:
        built.append(function_arn)
        return function_arn.split(":")[4]

    arn = "arn:aws:lambda:us-east-1:123456789012:function:gip-registrar"
    assert registrar(arn) == registrar(arn) == "123456789012"
    assert built == [arn]
