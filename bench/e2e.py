"""End-to-end figures over the local stack (prints them; not a timed test).
Run: ``.venv/bin/python bench/e2e.py [--issues 20] [--accounts 3] [--workers 3] [--warm]``
(``--warm``: label one issue first and wait for its verdict and cleanup; it is not counted, so
the burst meets functions already built, as a stack that has seen an issue does).

Starts ``bootstrap.py --local --count-aws-calls`` as a subprocess with a fake GitHub (in this
process, recording every request), sends N signed labelled issues (a third fail with the
quoted error, a third pass, a third carry no snippet), waits until every verdict is on
GitHub and every account is AVAILABLE again, then prints:

1. AWS API calls per issue lifecycle, by service and operation. They are counted by a WSGI
   middleware around the embedded endpoint (``gip.local.counting``), so the calls of every
   process are seen: the in-process functions, the pollers and the worker subprocesses.
   Polls that came back empty are counted apart (idle cost, per second). The background
   work that does not depend on issues (reconcile, sweeper and capacity on their compressed
   schedules) is measured over an idle window first and subtracted at the same rate.
2. GitHub API calls per issue (goal: <= 4), and the calls shared by all issues (the
   permission and ``reproduce.yml`` reads, cached per container): all calls per issue counts
   them too, spread over the issues.
3. Queue wait (IssueQueued -> IssueProcessingStarted) against processing time
   (IssueProcessingStarted -> IssueProcessed), worst and median, from the event log; where the
   time before the queue goes, hop by hop (the local pollers write one line per record they
   hand to a function when ``GIP_LOCAL_HOPS`` names a file: ``gip.local.hops``), and after the
   queue from the workers' decision lines (``worker/decisions.py``); and
   received -> verdict against the issue's own processing time and against the lower bound
   the account pool imposes (N issues on A accounts: ceil(N/A) runs in a row on one account,
   each a run and its cleanup).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gip.domain import verdict_labels  # noqa: E402
from gip.local import samples  # noqa: E402
from tests.fakes.github_server import FakeGitHub  # noqa: E402
from tests.worker_env import wait_until  # noqa: E402

SECRET = "bench-secret"
TOKEN = "bench-token"
FAKE = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1"}
BODIES = (samples.FAILS, samples.PASSES, samples.NO_SNIPPET)
IDLE_WINDOW_S = 12.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "GIP_"))}
    return {**base, **FAKE, "PYTHONPATH": str(ROOT), **extra}


def wait(predicate: Any, *, timeout: float, what: str) -> Any:
    return wait_until(predicate, timeout=timeout, what=what, every=0.5, error=SystemExit)


def stats(base: str) -> tuple[Counter[str], Counter[str]]:
    doc = requests.get(f"{base}/stats", timeout=10).json()
    return Counter(doc["calls"]), Counter(doc["empty_polls"])


def replay(endpoint: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "bootstrap.py", "replay", "--format", "jsonl", "--endpoint-url", endpoint],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def github_per_issue(gh: FakeGitHub, repo: str, numbers: list[int], *,
                     since: int = 0) -> tuple[dict[int, Counter[str]], Counter[str]]:
    """Requests from the ``since``-th on, attributed to each issue (comment ids mapped back to
    their issue), and the rest."""
    owner_of: dict[int, int] = {}
    for n in numbers:
        for comment in gh.comments(repo, n):
            owner_of[int(comment["id"])] = n
    per: dict[int, Counter[str]] = defaultdict(Counter)
    shared: Counter[str] = Counter()
    for r in gh.requests[since:]:
        m = re.search(r"/issues/(\d+)(/\w+)?", r.path)
        c = re.search(r"/issues/comments/(\d+)", r.path)
        route = re.sub(r"/\d+", "/{n}", r.path.split(repo, 1)[-1])
        key = f"{r.method} {route}"
        if c and int(c[1]) in owner_of:
            per[owner_of[int(c[1])]][key] += 1
        elif m and not c:
            per[int(m[1])][key] += 1
        else:
            shared[key] += 1
    return per, shared


def send(gh: FakeGitHub, base: str, n: int) -> None:
    """Issue ``n``, labelled: on the fake GitHub, and its signed webhook delivery (202)."""
    payload = samples.issue_payload(number=n, body=BODIES[n % 3], title=f"bench issue {n}")
    gh.add_issue_from_payload(payload)
    body = samples.encode(payload)
    answer = requests.post(f"{base}/webhook", data=body, timeout=30,
                           headers=samples.headers(body, SECRET, delivery=f"bench-{n}"))
    assert answer.status_code == 202, answer.text


def idle_pool(base: str, accounts: int) -> bool:
    """Every account AVAILABLE and every queue empty (from the stack's /healthz)."""
    pool = requests.get(f"{base}/healthz", timeout=10).json()
    busy = sum(q["visible"] + q["in_flight"] for name, q in pool["queues"].items() if name != "dlq_total")
    return bool(pool["accounts"] == {"AVAILABLE": accounts} and not busy)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = int(-(-len(ordered) * p // 100))  # ceil
    return ordered[max(0, min(len(ordered), rank) - 1)] if ordered else float("nan")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def account_cycles(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each AccountReserved to the account's next AccountCleaned (a run and its cleanup)."""
    cycles, reserved_at = [], {}
    for e in events:
        if not e["stream"].startswith("account-"):
            continue
        if e["type"] == "AccountReserved":
            reserved_at[e["stream"]] = parse(e["occurred_at"])
        elif e["type"] == "AccountCleaned" and e["stream"] in reserved_at:
            cycles.append((parse(e["occurred_at"]) - reserved_at.pop(e["stream"])).total_seconds())
    return cycles


def print_hops(path: Path, by_stream: dict[str, dict[str, str]]) -> None:
    """Where the time before the queue goes: per issue, each hop's share of received -> queued."""
    notes: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        doc = json.loads(line)
        if doc.get("type") == "IssueReceived" and (doc["hop"] == "stream" or doc.get("fn", "").endswith("gatekeeper")):
            notes.setdefault((doc["hop"], str(doc["stream"])), doc)  # the first delivery
    hops: dict[str, list[float]] = defaultdict(list)
    for stream, times in by_stream.items():
        published, gate = notes.get(("stream", stream)), notes.get(("sqs", stream))
        if not (published and gate and {"IssueReceived", "IssueQueued"} <= set(times)):
            continue
        received = parse(times["IssueReceived"]).timestamp()
        queued = parse(times["IssueQueued"]).timestamp()
        hops["appended -> stream read by the poller"].append(published["read"] - received)
        hops["publisher invocation (batch of records)"].append(published["end"] - published["read"])
        hops["published -> SQS sent (during the invocation)"].append(gate["sent"] - published["end"])
        hops["SQS sent -> gatekeeper invoked"].append(gate["received"] - gate["sent"])
        hops["gatekeeper invoked -> IssueQueued"].append(queued - gate["received"])
    if not hops:
        print(f"   (no per-hop timestamps in {path})")
        return
    print(f"   received -> queued, hop by hop over {len(next(iter(hops.values())))} issues (p50 / p95 / max, s):")
    for name, values in hops.items():
        print(f"     {name:<44} {pct(values, 50):6.2f} {pct(values, 95):6.2f} {max(values):6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--warm", action="store_true",
                        help="label one issue first (not counted), so the burst meets warm functions")
    args = parser.parse_args()

    gh = FakeGitHub(token=TOKEN, login="gip-bot").start()
    gh.set_permission(samples.REPO, "maintainer", "write")
    port, aws_port = free_port(), free_port()
    base, endpoint = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{aws_port}"
    state = ROOT / ".local" / "bench-e2e"
    state.parent.mkdir(parents=True, exist_ok=True)
    log = open(state.with_suffix(".log"), "wb")  # noqa: SIM115
    hops_file = state.with_suffix(".hops.jsonl")
    hops_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(port),
         "--aws-port", str(aws_port), "--accounts", str(args.accounts), "--workers", str(args.workers),
         "--bot-login", "gip-bot", "--count-aws-calls", "--state-dir", str(state), "--fresh"],
        cwd=ROOT, env=env(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN, GITHUB_WEBHOOK_SECRET=SECRET,
                GIP_LOCAL_HOPS=str(hops_file)),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        print(f"starting the local stack ({args.accounts} accounts, {args.workers} workers) ...", flush=True)
        wait(healthy, timeout=180, what="/healthz 200")
        if args.warm:  # one issue first, not counted: the burst meets functions already built
            warm_up = 10_000 + args.issues
            print(f"warming up with issue {warm_up} ...", flush=True)
            send(gh, base, warm_up)
            wait(lambda: bool(set(verdict_labels.ALL) & set(gh.labels(samples.REPO, warm_up))),
                 timeout=300, what="the warm-up issue's verdict")
            wait(lambda: idle_pool(base, args.accounts), timeout=300, what="the warm-up's cleanup")
        mark = len(gh.requests)
        calls0, _ = stats(base)
        time.sleep(IDLE_WINDOW_S)
        calls1, empty1 = stats(base)
        idle_rate = {k: (calls1[k] - calls0[k]) / IDLE_WINDOW_S for k in calls1}

        numbers = list(range(1, args.issues + 1))
        print(f"sending {len(numbers)} labelled issues ...", flush=True)
        started = time.monotonic()
        for n in numbers:
            send(gh, base, n)

        def labelled() -> bool:  # read from the fake GitHub: no AWS call
            return all(set(verdict_labels.ALL) & set(gh.labels(samples.REPO, n)) for n in numbers)

        def settled() -> tuple[Counter[str], Counter[str], float] | None:
            # Snapshot the counters *before* asking /healthz (its own queue and pool reads
            # would count): the snapshot is kept only if the stack was already idle then.
            wait(labelled, timeout=600, what="every verdict label on GitHub")
            calls, empty, at = *stats(base), time.monotonic() - started
            return (calls, empty, at) if idle_pool(base, args.accounts) else None

        calls2, empty2, elapsed = wait(settled, timeout=600, what="every account AVAILABLE, queues empty")
        events = replay(endpoint)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        gh.stop()

    n_issues = len(numbers)
    print(f"\n{n_issues} issues, {args.accounts} accounts, {args.workers} workers: all verdicts on GitHub "
          f"and the pool AVAILABLE again after {elapsed:.1f}s")

    # 1. AWS calls per issue lifecycle
    print("\n1. AWS API calls per issue lifecycle (counted at the endpoint; idle background "
          f"subtracted at its measured rate over {elapsed:.0f}s)")
    per_issue: dict[str, float] = {}
    for key in set(calls2) | set(calls1):
        work = calls2[key] - calls1[key] - idle_rate.get(key, 0.0) * elapsed
        if work / n_issues >= 0.05:
            per_issue[key] = work / n_issues
    by_service: dict[str, float] = defaultdict(float)
    for key, value in per_issue.items():
        by_service[key.split(":", 1)[0]] += value
    print(f"   {'service:operation':<52} per issue")
    for key in sorted(per_issue, key=lambda k: (k.split(':')[0], -per_issue[k])):
        print(f"   {key:<52} {per_issue[key]:6.1f}")
    print("   " + "-" * 60)
    for service in sorted(by_service, key=lambda s: -by_service[s]):
        print(f"   {service:<52} {by_service[service]:6.1f}")
    print(f"   {'total':<52} {sum(per_issue.values()):6.1f}")
    idle_total = sum(idle_rate.values())
    empty_rate = sum(empty2[k] - empty1[k] for k in empty2) / elapsed
    print(f"   idle background: {idle_total:.1f} working calls/s (schedules), "
          f"{empty_rate:.1f} empty polls/s during the run ({', '.join(sorted(empty2))})")

    # 2. GitHub calls per issue
    per, shared = github_per_issue(gh, samples.REPO, numbers, since=mark)
    totals = [sum(per[n].values()) for n in numbers]
    all_calls = (sum(totals) + sum(shared.values())) / n_issues  # the shared reads spread over the issues
    kinds: Counter[str] = Counter()
    for n in numbers:
        kinds.update(per[n])
    writes = [sum(v for k, v in per[n].items() if not k.startswith("GET")) for n in numbers]
    print(f"\n2. GitHub API calls per issue (goal <= 4): min {min(totals)}, mean {statistics.mean(totals):.1f}, "
          f"max {max(totals)}; writes per issue: mean {statistics.mean(writes):.1f}, max {max(writes)}")
    for key, count in kinds.most_common():
        print(f"   {key:<52} {count / n_issues:5.2f}")
    print(f"   shared by all issues: {dict(shared) or 'none'}")
    print(f"   all calls, shared ones spread over the issues: {all_calls:.2f} per issue (goal <= 4)")

    # 3. queue wait against processing time
    by_stream: dict[str, dict[str, str]] = defaultdict(dict)
    measured = {f"issue-{samples.REPO}#{n}" for n in numbers}  # not the warm-up
    for e in events:
        if e["stream"] in measured:
            by_stream[e["stream"]].setdefault(e["type"], e["occurred_at"])
    first_received = min(times["IssueReceived"] for times in by_stream.values())
    waits, runs, totals_s, gates = [], [], [], []
    for times in by_stream.values():
        if {"IssueQueued", "IssueProcessingStarted", "IssueProcessed"} <= set(times):
            waits.append((parse(times["IssueProcessingStarted"]) - parse(times["IssueQueued"])).total_seconds())
            runs.append((parse(times["IssueProcessed"]) - parse(times["IssueProcessingStarted"])).total_seconds())
            totals_s.append((parse(times["IssueProcessed"]) - parse(times["IssueReceived"])).total_seconds())
            gates.append((parse(times["IssueQueued"]) - parse(times["IssueReceived"])).total_seconds())
    print(f"\n3. queue wait vs processing ({len(waits)} runs): worst wait {max(waits):.1f}s "
          f"(median {statistics.median(waits):.1f}s) against worst processing {max(runs):.1f}s "
          f"(median {statistics.median(runs):.1f}s)")
    print(f"   before the queue: IssueReceived -> IssueQueued p50 {pct(gates, 50):.2f}s, p95 {pct(gates, 95):.2f}s, "
          f"max {max(gates):.2f}s (goal p95 <= 1 s)")
    print(f"   received -> verdict (IssueProcessed) worst {max(totals_s):.1f}s = {max(totals_s) / max(runs):.1f}x "
          f"the worst processing time {max(runs):.2f}s (goal <= 3x); median {statistics.median(totals_s):.1f}s")
    lanes = min(args.accounts, args.workers)  # a run needs an account and a worker
    in_a_row = -(-n_issues // lanes)
    cycles = account_cycles([e for e in events if e["occurred_at"] >= first_received])
    cycle = statistics.median(cycles) if cycles else float("nan")
    bound = (in_a_row - 1) * cycle + statistics.median(runs)  # the last wave's verdict waits for no cleanup
    print(f"   the pool bounds it: {n_issues} issues on {lanes} account(s) with a worker are {in_a_row} run(s) in a "
          f"row on one account; a run plus its cleanup (AccountReserved -> AccountCleaned) takes {cycle:.1f}s "
          f"(median of {len(cycles)}), so the last verdict comes at least {in_a_row - 1} x {cycle:.1f}s + a run "
          f"({statistics.median(runs):.1f}s) = {bound:.1f}s after the burst; received -> verdict worst is "
          f"{max(totals_s) / bound:.2f}x that bound")
    print(f"   GitHub calls per issue: all {all_calls:.2f} (own: mean {statistics.mean(totals):.2f}, max "
          f"{max(totals)}); writes mean {statistics.mean(writes):.2f}, max {max(writes)}")
    print_hops(hops_file, by_stream)
    print_queue_hops(state / "logs", by_stream, first_received)
    print_slowest(events, by_stream, first_received)
    return 0


def print_queue_hops(logs: Path, by_stream: dict[str, dict[str, str]], first: str) -> None:
    """Where the queue wait goes, from the workers' decision lines (``worker/decisions.py``):
    IssueQueued -> on the issue queue -> received by a worker -> decided (the first time), and
    what the workers decided. The log files grow across runs: lines before the burst are left out."""
    start = parse(first).timestamp()
    seen: dict[str, tuple[float, float, float]] = {}
    kinds: Counter[str] = Counter()
    bounces = 0
    for path in sorted(logs.glob("local-worker-*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            at = parse(doc["timestamp"]).timestamp()
            if at < start:
                continue
            bounces += "is being cleaned by" in doc.get("message", "")
            if "decision" not in doc or doc.get("stream") not in by_stream:
                continue
            kinds[doc["decision"]] += 1
            got = at - float(doc.get("decide_s", 0))
            sent = got - float(doc.get("message_age_s", 0))
            if doc["stream"] not in seen or at < seen[doc["stream"]][2]:
                seen[doc["stream"]] = (sent, got, at)
    hops: dict[str, list[float]] = defaultdict(list)
    for stream, (sent, got, at) in seen.items():
        if "IssueQueued" in by_stream[stream]:
            hops["IssueQueued -> on the issue queue"].append(sent - parse(by_stream[stream]["IssueQueued"]).timestamp())
        hops["on the issue queue -> received by a worker"].append(got - sent)
        hops["received -> decided (stream check, reserve)"].append(at - got)
    if not seen:
        print(f"   (no worker decision lines in {logs})")
        return
    print(f"   queued -> a worker's first decision, over {len(seen)} issues (p50 / p95 / max, s); decisions: "
          f"{dict(kinds.most_common())}; busy cleanup messages put back: {bounces}")
    for name, values in hops.items():
        print(f"     {name:<44} {pct(values, 50):6.2f} {pct(values, 95):6.2f} {max(values):6.2f}")


def print_slowest(events: list[dict[str, Any]], by_stream: dict[str, dict[str, str]], first: str) -> None:
    """The three slowest issues' own timelines (seconds after the burst's first IssueReceived),
    with the account reservations made for them: where a slow verdict waited."""
    start = parse(first)
    reserved: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e["type"] == "AccountReserved":
            reserved[str(e['data'].get('issue', ''))].append(e["occurred_at"])  # the issue's stream
    slowest = sorted((s for s in by_stream if "IssueProcessed" in by_stream[s]),
                     key=lambda s: parse(by_stream[s]["IssueProcessed"]) - parse(by_stream[s]["IssueReceived"]))[-3:]
    print("   the slowest issues (s after the burst began):")
    for stream in reversed(slowest):
        steps = [f"{kind.removeprefix('Issue')} {(parse(at) - start).total_seconds():.1f}"
                 for kind, at in sorted(by_stream[stream].items(), key=lambda kv: kv[1])]
        leases = [f"{(parse(at) - start).total_seconds():.1f}" for at in reserved.get(stream, [])]
        print(f"     {stream.rsplit('#', 1)[-1]:>4}: {', '.join(steps)}; account reserved at {', '.join(leases) or '-'}")


if __name__ == "__main__":
    sys.exit(main())
