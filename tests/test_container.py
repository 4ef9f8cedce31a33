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


def test_a_ttl_cache_fetches_once_per_key_while_fresh_even_when_threads_race() -> None:
    from gip.container import TtlCache
    from tests.fakes.clock import FakeTime

    t = FakeTime()
    cache: TtlCache[tuple[str, str], str] = TtlCache(ttl_s=300, clock=t.clock)
    fetched: list[str] = []
    started = threading.Barrier(6)

    def fetch() -> str:
        fetched.append("permission")
        time.sleep(0.05)
        return "write"

    def call() -> None:
        started.wait()
        assert cache.get(("octo/repo", "mia"), fetch) == "write"

    threads = [threading.Thread(target=call) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert fetched == ["permission"]
    assert cache.get(("octo/repo", "bob"), lambda: "read") == "read"  # another key: its own fetch
    t.now += 299
    assert cache.get(("octo/repo", "mia"), lambda: "admin") == "write"
    t.now += 1
    assert cache.get(("octo/repo", "mia"), lambda: "admin") == "admin"  # expired: fetched again

    def broken() -> str:
        raise TimeoutError("GitHub did not answer")

    with pytest.raises(TimeoutError):
        cache.get(("octo/other", "mia"), broken)
    assert cache.get(("octo/other", "mia"), lambda: "write") == "write"  # a failure is not kept
