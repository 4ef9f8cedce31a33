"""Pool benchmark: prints figures, asserts nothing (DESIGN: speed is measured, not asserted).

    .venv/bin/python bench/pool.py [--cycles 160]

1. conflicts per successful reserve, 16 workers over 16 accounts   (goal <= 0.25)
2. conflicts per successful reserve, 16 workers over 4 accounts    (goal <= 2.0) + starvation
3. items read per reserve with 10 and with 1,000 accounts          (goal: the same bound)
4. reducer fold speed over 100,000 in-memory events               (goal >= 200,000 events/s)

1 and 2 run against moto server over HTTP (the embedded endpoint of --local), each with a lease
held ~5 ms (a stress: workers spend a third of their time reserving) and ~1 s (the fastest real
runs seen in local mode take 0.2-1.4 s; real ones take minutes). Hold times vary ±50%. moto
serialises requests, so the read→write window of a reserve (and so the chance of a lost race)
is much longer than on DynamoDB: these conflict figures are pessimistic. 3 runs against moto in-process (only item
counts matter); 4 is pure Python.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for _k, _v in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
               ("AWS_DEFAULT_REGION", "us-east-1")):
    os.environ.setdefault(_k, _v)
os.environ.pop("AWS_ENDPOINT_URL", None)

from gip.config import Settings  # noqa: E402
from gip.domain.envelope import Cause, Envelope  # noqa: E402
from gip.domain.pool import fold  # noqa: E402
from gip.local.embedded_aws import EmbeddedAws  # noqa: E402
from gip.services.issues import Issues  # noqa: E402, F401
from gip.services.pool import Pool  # noqa: E402
from gip.store.dynamodb import DynamoEventStore  # noqa: E402
from gip.store.models import Tables, create_tables  # noqa: E402

CAUSE = Cause("bench", "bench")


def setup(prefix: str, accounts: int, endpoint: str | None) -> DynamoEventStore:
    # No table stream: the outbox is irrelevant to pool contention, and moto deep-copies stream
    # records on every transaction, which stretches the read→write window of a reserve.
    tables = Tables.from_settings(Settings.for_prefix(prefix, endpoint_url=endpoint), stream=False)
    create_tables(tables)
    store = DynamoEventStore(tables)
    pool = Pool(store=store)
    for i in range(accounts):
        aid = f"{i + 300000000000:012d}"
        pool.register(aid, role_arn=f"arn:aws:iam::{aid}:role/p", source="manual", cause=CAUSE)
    return store


def contention(endpoint: str, *, workers: int, accounts: int, cycles: int,
               hold_s: float = 0.005) -> dict[str, float]:
    store = setup(f"bench{workers}x{accounts}h{int(hold_s * 1000)}", accounts, endpoint)
    pools = [Pool(store=store, rng=random.Random(n)) for n in range(workers)]
    leases = [0] * workers
    per_worker = cycles // workers

    def work(n: int) -> None:
        pool = pools[n]
        rng = random.Random(n)
        for c in range(per_worker):
            misses = 0
            while (lease := pool.reserve(issue=f"issue-o/r#{n * 1000 + c + 1}", worker=f"w{n}", cause=CAUSE)) is None:
                # The worker's answer to "none free": exponential backoff with full jitter
                # (worker.messages.backoff_seconds, there in seconds of SQS visibility; here ms).
                misses += 1
                time.sleep(rng.uniform(0, min(0.64, 0.02 * 2**misses)))
            # hold the lease, as a run would; real runs vary, so ±50% around the nominal time
            time.sleep(hold_s * rng.uniform(0.5, 1.5))
            pool.release(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)
            pool.mark_cleaned(lease.account_id, lease_id=lease.lease_id, removed=[], cause=CAUSE)
            leases[n] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    conflicts = sum(p.stats.conflicts for p in pools)
    ok = sum(leases)
    return {"leases": ok, "conflicts": conflicts, "conflicts_per_reserve": conflicts / ok,
            "empty_polls": sum(p.stats.empty + p.stats.contended for p in pools), "min_leases_per_worker": min(leases),
            "seconds": elapsed}


def items_per_reserve(accounts: int, reserves: int = 20) -> float:
    from moto import mock_aws

    with mock_aws():
        store = setup(f"items{accounts}", accounts, None)
        pool = Pool(store=store, rng=random.Random(1))
        for i in range(reserves):
            lease = pool.reserve(issue=f"issue-o/r#{i + 1}", worker="w", cause=CAUSE)
            assert lease is not None
            pool.release(lease.account_id, lease_id=lease.lease_id, cause=CAUSE)
            pool.mark_cleaned(lease.account_id, lease_id=lease.lease_id, removed=[], cause=CAUSE)
        return pool.stats.items_read / reserves


def synthetic_events(n: int) -> list[Envelope]:
    out: list[Envelope] = []
    accounts = 1000
    cycle = ["AccountReserved", "AccountLeaseRenewed", "AccountReleased", "AccountCleaned"]
    versions = dict.fromkeys(range(accounts), 0)
    i = 0
    while len(out) < n:
        a = i % accounts
        aid = f"{a + 400000000000:012d}"
        v = versions[a] + 1
        versions[a] = v
        if v == 1:
            type_, data = "AccountRegistered", {"account_id": aid, "role_arn": f"arn:aws:iam::{aid}:role/p", "source": "manual"}
        else:
            type_ = cycle[(v - 2) % 4]
            lease = f"L{a}-{(v - 2) // 4}"
            data = {"lease_id": lease, "issue": "issue-o/r#1", "worker": "w", "expires_at": "2026-01-01T00:15:00.000Z",
                    "removed": []}
        out.append(Envelope(event_id=f"e{i}", type=type_, schema_version=1, stream=f"account-{aid}", version=v,
                            occurred_at="2026-01-01T00:00:00.000Z", correlation_id="c", causation_id=None,
                            actor="bench", data=data))
        i += 1
    return out


def fold_speed(n: int = 100_000) -> float:
    events = synthetic_events(n)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fold(events)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=160, help="reserve/release cycles per contention run")
    args = parser.parse_args()
    print("# bench/pool.py: figures, not assertions")
    with EmbeddedAws(port=0) as aws:
        for accounts, hold_ms in ((16, 5), (16, 1000), (4, 5), (4, 1000)):
            r = contention(aws.url, workers=16, accounts=accounts, cycles=args.cycles, hold_s=hold_ms / 1000)
            goal = 0.25 if accounts == 16 else 2.0
            print(f"16 workers / {accounts:>2} accounts, lease held ~{hold_ms:>4} ms: "
                  f"{r['conflicts_per_reserve']:.3f} conflicts per successful "
                  f"reserve (goal <= {goal}); {r['leases']} leases, {r['conflicts']} conflicts, "
                  f"{r['empty_polls']} empty polls, min leases per worker {r['min_leases_per_worker']} "
                  f"(starvation: {'no' if r['min_leases_per_worker'] > 0 else 'YES'}), {r['seconds']:.1f}s")
    for accounts in (10, 1000):
        print(f"items read per reserve with {accounts:>4} accounts: {items_per_reserve(accounts):.2f} "
              f"(bound: {Pool(store=None).candidates} per round)")  # type: ignore[arg-type]
    print(f"reducer fold speed: {fold_speed():,.0f} events/s over 100,000 events (goal >= 200,000); "
          f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
