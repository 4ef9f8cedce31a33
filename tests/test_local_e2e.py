"""End to end: ``python bootstrap.py --org ... --local`` as a subprocess, a fake GitHub, signed
webhooks for three labelled issues (fails with the quoted error / passes / no snippet), a
duplicate delivery and a bad signature; then the verdicts, the one status comment per issue,
the labels, a bus subscriber added with ``subscribe``, ``replay --verify`` and the pool, all
read from outside the stack. On the same stack (one start for the module; a start is the
expensive part), in this order:

- issue 14 §2/§3: a bus subscriber whose target is gone; its record is parked, the rest flow;
- issue 17: the repository's ``.github/reproduce.yml`` on the fake GitHub, a local PEP 691 index
  listing 1.0.0 to 1.6.0, a snippet that fails below 1.4.0 and an issue reporting 1.1.0 →
  ``fixed_in_latest``, ``fixed_in`` 1.4.0, the table in the comment, the summary label, at most
  2 + ⌈log2 5⌉ runs. Then an invalid file → a ``bad_config`` skip whose comment names the line
  (it stays: no issue is sent after it);
- a killed worker replaced, a busy port refused, and SIGTERM stopping everything (last).

The first test counts every comment GitHub got, so it runs first."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from boto3.dynamodb.conditions import Key

from gip.domain import verdict_labels
from gip.domain.comment import STATUS_MARKER, VERDICT_TEXT
from gip.local import samples
from tests.conftest import FAKE_ENV, free_port
from tests.fakes.github_server import FakeGitHub
from tests.test_matrix_worker import BODY
from tests.test_repo_config import Index

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "e2e-webhook-secret"
TOKEN = "test-token"
REPO = samples.REPO
BOOT_TIMEOUT_S = 150  # deploy + two reconcile passes, on a loaded 2-core box
RUN_TIMEOUT_S = 120
STREAM_RETRIES = 3  # a failing stream record is parked after 1 + 3 attempts, not the template's 101
# The local runtime's knobs (gip/local/knobs.py): shorter waits, the same behaviour.
QUICK = {"GIP_LOCAL_STREAM_RETRIES": str(STREAM_RETRIES), "GIP_LOCAL_RECONCILE_S": "1",
         "GIP_LOCAL_REDELIVER_S": "5",
         # the matrix test edits reproduce.yml between two issues: the gatekeeper keeps no copy
         "REPO_CONFIG_TTL_S": "0"}
ISSUES = {
    1: ("crashes on an empty config", samples.FAILS, "reproduced"),
    2: ("listing fails", samples.PASSES, "not_reproduced"),
    3: ("slow dashboard", samples.NO_SNIPPET, "no_repro_found"),
}


def _wait(predicate: Callable[[], Any], *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the local stack exited ({proc.returncode}) while waiting for {what}:\n"
                                 + (log.read_text()[-4000:] if log else ""))
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n"
                         + (log.read_text()[-4000:] if log else ""))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "GIP_"))}
    return {**env, **FAKE_ENV, "PYTHONPATH": str(ROOT), **extra}


def _cli_process(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    """``python bootstrap.py <args> --endpoint-url <endpoint>`` as a process of its own."""
    return subprocess.run([sys.executable, "bootstrap.py", *args, "--endpoint-url", endpoint],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)


def _cli(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process (``gip.cli.main.main``, what bootstrap.py calls),
    with the environment ``_env`` gives a process: the code, stdout and stderr as a process
    would give them. A process each was ~0.5 CPU-s of start-up and imports, about 25 calls in
    this module and test_local_restart; each module still runs one as a process
    (``_cli_process``), and tests/test_cli.py checks bootstrap.py's exits."""
    from gip.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    process_env = _env()
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k not in process_env]:
            env.delenv(name)
        for name, value in process_env.items():
            env.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([*args, "--endpoint-url", endpoint])
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["bootstrap.py", *args], code, out.getvalue(), err.getvalue())


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the whole process tree (the stack, its workers and their children)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=45)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("local")
    log = tmp / "stack.log"
    gh = FakeGitHub(token=TOKEN, login="gip-bot").start()
    gh.set_permission(REPO, "maintainer", "write")
    port, aws_port = free_port(), free_port()
    proc = None
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(port),
                 "--aws-port", str(aws_port), "--accounts", "3", "--state-dir", str(tmp / "state")],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=_env(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN, GITHUB_WEBHOOK_SECRET=SECRET, **QUICK),
            )
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: _healthy(base), timeout=BOOT_TIMEOUT_S, what="/healthz 200", proc=proc, log=log)
        yield SimpleNamespace(proc=proc, gh=gh, webhook=f"{base}/webhook", base=base,
                              endpoint=f"http://127.0.0.1:{aws_port}", log=log)
    finally:
        if proc is not None:
            _stop(proc)
        gh.stop()


def _send(stack: SimpleNamespace, payload: dict[str, Any], *, delivery: str, secret: str = SECRET) -> requests.Response:
    body = samples.encode(payload)
    return requests.post(stack.webhook, data=body, timeout=30,
                         headers=samples.headers(body, secret, delivery=delivery))


def _events(stack: SimpleNamespace, number: int | None = None) -> list[dict[str, Any]]:
    """``replay`` of issue ``number``'s stream, or of the whole log (one CLI run either way)."""
    which = ("--stream", f"{REPO}#{number}") if number is not None else ()
    done = _cli("replay", *which, "--format", "jsonl", endpoint=stack.endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _table(stack: SimpleNamespace, name: str) -> Any:
    """One of the stack's tables through boto3 (credentials given: a module fixture runs before
    the autouse ``aws_env``)."""
    return boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=stack.endpoint,
                          aws_access_key_id="local", aws_secret_access_key="local").Table(f"github-issue-processor-{name}")


def _types(stack: SimpleNamespace, number: int) -> list[str]:
    """The types in issue ``number``'s stream, read from the events table with boto3: cheap
    enough to poll (a ``replay`` is a whole CLI process; the tests run it once the wait is over)."""
    table = _table(stack, "events")
    items = table.query(KeyConditionExpression=Key("pk").eq(f"issue-{REPO}#{number}"), ConsistentRead=True)["Items"]
    return [str(item["type"]) for item in items if "body" in item]


def _statuses(stack: SimpleNamespace) -> list[str]:
    """Every account's status, read from the pool table with boto3 (cheap enough to poll)."""
    items = _table(stack, "pool").scan(ConsistentRead=True)["Items"]
    return [str(item["status"]) for item in items if str(item["pk"]).startswith("account-") and "status" in item]


def test_three_issues_reach_their_verdicts_with_one_comment_each(stack: SimpleNamespace) -> None:
    gh: FakeGitHub = stack.gh
    # GIVEN three labelled issues on GitHub
    payloads = {n: samples.issue_payload(number=n, title=title, body=body) for n, (title, body, _) in ISSUES.items()}
    for payload in payloads.values():
        gh.add_issue_from_payload(payload)
    # ... and a subscriber on the bus, added with the CLI against the running stack
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=stack.endpoint)
    inbox = sqs.create_queue(QueueName="e2e-subscriber")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscribed = _cli("subscribe", "verdicts", "--pattern", '{"detail-type": ["IssueProcessed"]}',
                      "--target", inbox_arn, endpoint=stack.endpoint)
    assert subscribed.returncode == 0, subscribed.stdout + subscribed.stderr
    # WHEN GitHub delivers them, once more for issue 1 (a redelivery), and a forged one
    answers = {n: _send(stack, p, delivery=f"e2e-{n}") for n, p in payloads.items()}
    duplicate = _send(stack, payloads[1], delivery="e2e-1")
    forged = samples.issue_payload(number=4, title="forged", body=samples.FAILS)
    gh.add_issue_from_payload(forged)
    bad = _send(stack, forged, delivery="e2e-forged", secret="not-the-secret")

    assert {n: a.status_code for n, a in answers.items()} == {1: 202, 2: 202, 3: 202}
    assert all(a.json()["status"] == "accepted" for a in answers.values())
    assert duplicate.status_code == 202 and duplicate.json()["status"] == "ignored"
    assert bad.status_code == 401

    # THEN each reaches its verdict (bounded), as ``replay`` shows ...
    _wait(lambda: all("IssueProcessed" in _types(stack, n) for n in ISSUES), timeout=RUN_TIMEOUT_S,
          what="three verdicts", proc=stack.proc, log=stack.log)
    log = _events(stack)
    got = {n: [e for e in log if e["type"] == "IssueProcessed" and e["stream"] == f"issue-{REPO}#{n}"][-1]["data"]["verdict"]
           for n in ISSUES}
    assert got == {n: verdict for n, (_, _, verdict) in ISSUES.items()}

    # ... the subscriber got the three verdicts from the bus
    def delivered() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        seen.extend(json.loads(m["Body"]) for m in got)
        return seen if len(seen) >= 3 else []

    seen: list[dict[str, Any]] = []
    _wait(delivered, timeout=30, what="the subscriber's three IssueProcessed events")
    assert sorted(e["detail"]["data"]["verdict"] for e in seen) == sorted(v for _, _, v in ISSUES.values())

    # ... the redelivery appended nothing: one IssueReceived for issue 1, run 1
    received = [e for e in _events(stack, 1) if e["type"] == "IssueReceived"]
    assert [e["data"]["run"] for e in received] == [1]
    assert received[0]["correlation_id"] == "e2e-1"

    # ... GitHub shows exactly one status comment per issue, edited to the verdict, and the labels
    def github_done() -> bool:
        return all(_comment_shows(gh, n, verdict) and _label_ok(gh, n, verdict)
                   for n, (_, _, verdict) in ISSUES.items())

    try:
        _wait(github_done, timeout=60, what="the verdict comments and labels", proc=stack.proc, log=stack.log)
    except AssertionError as exc:
        calls = "\n".join(f"{r.method} {r.path}" for r in gh.requests)
        raise AssertionError(f"{exc}\nGitHub calls:\n{calls}") from None
    for n, (_, _, verdict) in ISSUES.items():
        ours = [c for c in gh.comments(REPO, n) if c["body"].startswith(STATUS_MARKER)]
        assert len(ours) == 1, [c["body"][:80] for c in gh.comments(REPO, n)]
        assert ours[0]["user"]["login"] == "gip-bot"
        # (created at "queued" and edited since, or created late with the verdict already:
        # the notifier renders the issue's latest state, so both are right)
        assert VERDICT_TEXT[verdict] in ours[0]["body"]
        assert "eyes" in gh.reactions(REPO, n)
    assert gh.labels(REPO, 1).count("reproduced") == 1 and "not-reproduced" not in gh.labels(REPO, 1)
    edited = {r.path for r in gh.requests if r.method == "PATCH" and "/issues/comments/" in r.path}
    created = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert len(created) == 3 and len(edited) <= 3  # one comment per issue, only ever edited

    # ... the forged delivery was refused and appended nothing, and GitHub never heard of it
    assert _events(stack, 4) == []
    assert not [r for r in gh.requests if "/issues/4" in r.path]
    assert "e2e-forged" not in _cli("replay", "--format", "jsonl", endpoint=stack.endpoint).stdout

    # ... the projections match the log
    verify = _cli_process("replay", "--verify", endpoint=stack.endpoint)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # ... and every account is back to AVAILABLE (released and cleaned)
    _wait(lambda: _statuses(stack) == ["AVAILABLE"] * 3, timeout=60, what="every account AVAILABLE",
          proc=stack.proc, log=stack.log)
    done = _cli("accounts", "--format", "json", endpoint=stack.endpoint)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and all(r["status"] == "AVAILABLE" for r in rows), rows
    assert len(rows) == 3 and {r["source"] for r in rows} == {"reconcile"}

    # ... and /healthz tells the truth: nothing parked, no lag, every worker alive
    doc = requests.get(f"{stack.base}/healthz", timeout=10).json()
    assert doc["status"] == "ready" and doc["reasons"] == [], doc
    assert doc["publisher"]["parked"] == 0 and doc["publisher"]["lag_s"] < 30
    assert doc["workers"] == {"live": 3, "configured": 3} and "publisher" in doc["dlq"]


def test_a_broken_subscription_parks_its_records_and_the_rest_flow(stack: SimpleNamespace) -> None:
    """Issue 14 §2/§3: a subscriber whose target is gone. moto delivers synchronously, so the
    publish fails; the stream mapping retries it MaximumRetryAttempts times (here
    GIP_LOCAL_STREAM_RETRIES), then parks it in the publisher DLQ (the template's on-failure
    destination) and the pipeline goes on."""
    gh: FakeGitHub = stack.gh
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=stack.endpoint)
    doomed = sqs.create_queue(QueueName="e2e-doomed")["QueueUrl"]
    doomed_arn = sqs.get_queue_attributes(QueueUrl=doomed, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"detail-type": ["IssueReceived"], "detail": {"data": {"number": [5]}}})
    done = _cli("subscribe", "broken", "--pattern", pattern, "--target", doomed_arn, endpoint=stack.endpoint)
    assert done.returncode == 0, done.stdout + done.stderr
    sqs.delete_queue(QueueUrl=doomed)  # the subscriber's target breaks
    payloads = {n: samples.issue_payload(number=n, title=f"issue {n}", body=samples.FAILS) for n in (5, 6)}
    for payload in payloads.values():
        gh.add_issue_from_payload(payload)
    assert _send(stack, payloads[5], delivery="e2e-5").json()["status"] == "accepted"

    def degraded() -> dict[str, Any] | None:
        doc = requests.get(f"{stack.base}/healthz", timeout=10).json()
        return doc if doc["publisher"]["parked"] else None

    doc = _wait(degraded, timeout=300, what="the record parked", proc=stack.proc, log=stack.log)
    assert doc["status"] == "degraded" and doc["dlq"]["publisher"] == 1
    assert "1 record(s) parked after failing (in the publisher DLQ)" in doc["reasons"]
    assert "dead-letter queue publisher holds 1 message(s)" in doc["reasons"]
    parked_url = sqs.get_queue_url(QueueName="github-issue-processor-publisher-dlq")["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=parked_url, VisibilityTimeout=0)["Messages"]
    context = json.loads(message["Body"])["requestContext"]
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["approximateInvokeCount"] == 1 + STREAM_RETRIES  # the first attempt and every retry
    status = _cli("status", endpoint=stack.endpoint)
    assert status.stdout.splitlines()[:2] == ["health: degraded", "  1 record(s) parked after failing (in the publisher DLQ)"]
    # ... and the pipeline flows on for everyone else: issue 6 reaches its verdict
    assert _send(stack, payloads[6], delivery="e2e-6").json()["status"] == "accepted"
    _wait(lambda: "IssueProcessed" in _types(stack, 6), timeout=RUN_TIMEOUT_S,
          what="issue 6's verdict", proc=stack.proc, log=stack.log)
    assert "IssueProcessed" in [e["type"] for e in _events(stack, 6)]
    assert _cli("unsubscribe", "broken", endpoint=stack.endpoint).returncode == 0


def _status(gh: FakeGitHub, number: int) -> str:
    ours = [c["body"] for c in gh.comments(REPO, number) if c["body"].startswith(STATUS_MARKER)]
    return ours[0] if len(ours) == 1 else ""


def test_a_matrix_run_names_the_fix_and_a_bad_config_names_its_line(stack: SimpleNamespace) -> None:
    gh: FakeGitHub = stack.gh
    index = Index()
    try:
        gh.set_file(REPO, ".github/reproduce.yml",
                    f"versions:\n  source: pypi:demo\n  index: {index.url}/simple\nbisect: true\nmax_runs: 8\n")
        payload = samples.issue_payload(number=11, title="fails on old versions", body=BODY)
        gh.add_issue_from_payload(payload)
        assert _send(stack, payload, delivery="mx-11").status_code == 202

        _wait(lambda: "IssueProcessed" in _types(stack, 11), timeout=RUN_TIMEOUT_S * 2, what="the matrix run",
              proc=stack.proc, log=stack.log)
        data = [e for e in _events(stack, 11) if e["type"] == "IssueProcessed"][-1]["data"]
        queued = [e for e in _events(stack, 11) if e["type"] == "IssueQueued"][-1]
        assert queued["data"]["matrix_config"]["versions"] == [f"1.{i}.0" for i in range(7)]
        assert (data["summary"], data["fixed_in"], data["verdict"]) == ("fixed_in_latest", "1.4.0", "reproduced")
        assert len(data["matrix"]) <= 2 + math.ceil(math.log2(5))
        assert len(index.requests) == 1  # the registry once per issue

        def commented() -> str:
            body = _status(gh, 11)
            return body if "| Version | Verdict | Time |" in body and "fixed-in-latest" in gh.labels(REPO, 11) else ""

        body = _wait(commented, timeout=60, what="the matrix comment and label", proc=stack.proc, log=stack.log)
        assert "| `1.4.0` | ❌ Not reproduced |" in body and "fixed in 1.4.0" in body

        # an invalid file: a bad_config skip, and a comment that names the line
        gh.set_file(REPO, ".github/reproduce.yml", "versions:\n  source: pypi:demo\nmax_runs: lots\n")
        bad = samples.issue_payload(number=12, title="another", body=BODY)
        gh.add_issue_from_payload(bad)
        assert _send(stack, bad, delivery="mx-12").status_code == 202

        _wait(lambda: "IssueSkipped" in _types(stack, 12), timeout=RUN_TIMEOUT_S, what="the bad_config skip",
              proc=stack.proc, log=stack.log)
        skip = [e for e in _events(stack, 12) if e["type"] == "IssueSkipped"][-1]["data"]
        assert skip["reason"] == "bad_config" and "line 3" in skip["detail"]
        body = _wait(lambda: _status(gh, 12), timeout=60, what="the bad_config comment", proc=stack.proc,
                     log=stack.log)
        assert "reproduce.yml line 3: max_runs: 'lots' is not of type 'integer'" in body
    finally:
        index.stop()


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def test_a_killed_worker_is_replaced_and_health_shows_it(stack: SimpleNamespace) -> None:
    workers = [p for p in _children(stack.proc.pid)
               if b"-m\x00worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) == 3
    os.kill(workers[0], signal.SIGKILL)

    def replaced() -> bool:
        return "replaced with a new process, as ECS would" in stack.log.read_text(errors="replace")

    _wait(replaced, timeout=15, what="the worker replaced", proc=stack.proc, log=stack.log)
    doc = requests.get(f"{stack.base}/healthz", timeout=10).json()
    assert doc["workers"] == {"live": 3, "configured": 3}, doc


def _comment_shows(gh: FakeGitHub, number: int, verdict: str) -> bool:
    ours = [c for c in gh.comments(REPO, number) if c["body"].startswith(STATUS_MARKER)]
    return len(ours) == 1 and VERDICT_TEXT[verdict] in ours[0]["body"]


def _label_ok(gh: FakeGitHub, number: int, verdict: str) -> bool:
    """Exactly one verdict label, the verdict's (and the trigger label is left alone)."""
    labels = gh.labels(REPO, number)
    return set(verdict_labels.ALL) & set(labels) == {verdict_labels.label_for(verdict)} \
        and samples.LABEL in labels


@pytest.mark.parametrize("which", ["--port", "--aws-port"])
def test_a_busy_port_is_one_clear_line(stack: SimpleNamespace, which: str) -> None:
    busy = (stack.webhook if which == "--port" else stack.endpoint).rsplit(":", 1)[1].split("/")[0]
    ports = {"--port": str(free_port()), "--aws-port": str(free_port()), which: busy}
    done = subprocess.run(
        [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", ports["--port"],
         "--aws-port", ports["--aws-port"]], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: port {busy} on 127.0.0.1 is already in use (choose another with {which}): Address already in use"]
    assert "Traceback" not in done.stdout + done.stderr


def test_sigterm_stops_everything_without_orphans_or_tracebacks(stack: SimpleNamespace) -> None:
    children = subprocess.run(["pgrep", "-g", str(stack.proc.pid)], capture_output=True, text=True).stdout.split()
    workers = [int(pid) for pid in children if int(pid) != stack.proc.pid]
    assert len(workers) >= 1
    # the worker processes hold the management credentials only, never the GitHub token
    for pid in workers:
        with contextlib.suppress(OSError):  # a non-dumpable process may hide its environment
            if b"-m\0worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert b"GITHUB_TOKEN" not in environ and b"GITHUB_WEBHOOK_SECRET" not in environ
                assert b"AWS_ACCESS_KEY_ID=" in environ
    # the supervisor holds the GitHub secrets in memory only, never in its environment block
    if os.geteuid() == 0:  # root reads even a non-dumpable process's environ
        supervisor = Path(f"/proc/{stack.proc.pid}/environ").read_bytes()
        assert b"PYTHONPATH=" in supervisor
        assert TOKEN.encode() not in supervisor and SECRET.encode() not in supervisor
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=60) == 0
    time.sleep(0.5)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    assert alive == []
    output = stack.log.read_text()
    assert "Traceback" not in output
    assert output.rstrip().endswith("stopped.")
