"""Worker figures (printed, not timed tests):

- runner overhead: wall time to run a trivial snippet in a clean subprocess (bash, python, node),
  including the syntax check, the run's directory and identity, and the verified kill;
- isolation overhead: the per-run identity's setup (uid, lock, directory) plus teardown (kill
  everything of the run, verify by a /proc scan, remove its files), against the run itself
  (child start to exit), for a trivial snippet and a one-second one; per-uid when root;
- sweeper reads: items DynamoDB returns to one sweep with N accounts and 3 stale leases
  (moto in-process), for N = 10 and N = 1,000: the same, because only the sparse indexes are read.

Run: ``.venv/bin/python bench/worker.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(key, value)

from gip.domain.repro import JAVASCRIPT, PYTHON, SHELL  # noqa: E402
from worker.runner import Interpreters, Limits, run_snippet  # noqa: E402
from worker.sandbox import MARKER, UID, Box, Isolation  # noqa: E402


def runner_overhead(rounds: int = 10) -> None:
    interpreters = Interpreters.discover()
    cases = [(SHELL, "true"), (PYTHON, "pass")] + ([(JAVASCRIPT, "0")] if interpreters.node else [])
    for language, code in cases:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = run_snippet(language, code, credentials={}, region="us-east-1", interpreters=interpreters)
            times.append(time.perf_counter() - started)
            assert result.exit_code == 0, result
        print(f"runner overhead {language:<10} median {statistics.median(times) * 1000:6.1f} ms over {rounds} runs")


def isolation_overhead(mode: str, code: str, rounds: int = 20) -> None:
    """Time Isolation.open, and Box.kill_all/close (outermost call only: close calls kill_all)."""
    spent = {"setup": 0.0, "teardown": 0.0}
    depth = [0]
    originals = {"open": Isolation.open, "kill_all": Box.kill_all, "close": Box.close}

    def timed(name: str, bucket: str):  # type: ignore[no-untyped-def]
        def wrapper(self, *args):  # type: ignore[no-untyped-def]
            depth[0] += 1
            started = time.perf_counter()
            try:
                return originals[name](self, *args)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[bucket] += time.perf_counter() - started
        return wrapper

    Isolation.open = timed("open", "setup")  # type: ignore[method-assign]
    Box.kill_all = timed("kill_all", "teardown")  # type: ignore[method-assign]
    Box.close = timed("close", "teardown")  # type: ignore[method-assign]
    ratios, extra, runs = [], [], []
    try:
        for _ in range(rounds):
            spent.update(setup=0.0, teardown=0.0)
            result = run_snippet(SHELL, code, credentials={}, region="us-east-1",
                                 limits=Limits(isolation=Isolation(mode)))
            assert result.exit_code == 0, result
            overhead = spent["setup"] + spent["teardown"]
            extra.append(overhead)
            runs.append(result.duration_s)
            ratios.append(overhead / max(result.duration_s, 1e-3))
    finally:
        Isolation.open, Box.kill_all, Box.close = (originals["open"], originals["kill_all"],  # type: ignore[method-assign]
                                                   originals["close"])
    print(f"isolation {mode:<6} {code!r:<10} setup+teardown median {statistics.median(extra) * 1000:6.1f} ms, "
          f"run itself median {statistics.median(runs) * 1000:7.1f} ms, ratio {statistics.median(ratios):.3f}"
          f" ({rounds} runs)")


def sweeper_reads(accounts: int) -> Counter[str]:
    import botocore.client
    from moto import mock_aws

    from gip.services.sweeper import sweep
    from tests.worker_env import bulk_register, bulk_reserve, make_stack, member_ids

    with mock_aws():
        stack = make_stack(prefix=f"bench{accounts}")
        ids = member_ids(accounts)
        bulk_register(stack, ids)
        now = datetime.now(UTC)
        bulk_reserve(stack, ids[:3], at=now - timedelta(hours=1))
        bulk_reserve(stack, ids[3:6], at=now)
        reads: Counter[str] = Counter()
        original = botocore.client.BaseClient._make_api_call

        def counting(self, operation, params):  # type: ignore[no-untyped-def]
            answer = original(self, operation, params)
            if operation in ("Query", "Scan"):
                reads[operation] += answer.get("Count", 0)
            elif operation == "GetItem":
                reads[operation] += 1
            return answer

        botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
        try:
            done = sweep(stack.pool, stack.issues, now=now, hard_cap_seconds=3 * 3600)
        finally:
            botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
        assert len(done["timed_out"]) == 3, done
    return reads


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    runner_overhead()
    for mode in ([UID, MARKER] if os.geteuid() == 0 else [MARKER]):
        for snippet in ("true", "sleep 1"):
            isolation_overhead(mode, snippet, rounds=20 if snippet == "true" else 5)
    for n in (10, 1000):
        reads = sweeper_reads(n)
        print(f"sweeper items read, {n:>5} accounts, 3 stale: {sum(reads.values())} ({dict(reads)})")
