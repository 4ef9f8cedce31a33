"""End to end (issue 14 §1), one stop and one start on the same --state-dir for every check (a
stack start is the expensive part): before the stop issue 1 reaches its verdict, issue 11 runs
(slowly) and issue 12 waits behind it; after the start the old events are there, --verify finds
no drift, the pool is usable, a redelivery of the old delivery is still a duplicate, and 11 and
12 come back from the queue and reach their verdicts; the member accounts come back with the
same ids, AVAILABLE, with no registration churn; and ``status`` read the first stack's own
figures from its /healthz. Then a corrupt log refuses to start."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from gip.local import samples
from tests.conftest import free_port
from tests.fakes.github_server import FakeGitHub
from tests.test_local_e2e import (
    BOOT_TIMEOUT_S,
    QUICK,
    REPO,
    ROOT,
    RUN_TIMEOUT_S,
    SECRET,
    TOKEN,
    _cli,
    _cli_process,
    _env,
    _healthy,
    _send,
    _statuses,
    _stop,
    _types,
    _wait,
)

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(600)]
# reconcile runs every GIP_LOCAL_RECONCILE_S (1 s) here; a vanished account goes after two strikes
RECONCILE_PASSES_S = 4 * float(QUICK["GIP_LOCAL_RECONCILE_S"])


def start(state_dir: Path, gh: FakeGitHub, log: Path, *extra: str) -> SimpleNamespace:
    port, aws_port = free_port(), free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(port),
             "--aws-port", str(aws_port), "--accounts", "2", "--workers", "1", "--state-dir", str(state_dir), *extra],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=_env(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN, GITHUB_WEBHOOK_SECRET=SECRET, **QUICK))
    base = f"http://127.0.0.1:{port}"
    stack = SimpleNamespace(proc=proc, webhook=f"{base}/webhook", base=base, log=log,
                            endpoint=f"http://127.0.0.1:{aws_port}")
    _wait(lambda: _healthy(base), timeout=BOOT_TIMEOUT_S, what="/healthz 200", proc=proc, log=log)
    return stack


def events(stack: SimpleNamespace, number: int = 1) -> list[dict]:
    done = _cli("replay", "--stream", f"{REPO}#{number}", "--format", "jsonl", endpoint=stack.endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def members(log: Path) -> list[list[str]]:
    """The ids each start printed ("Organization with N member account(s): <ids> ...")."""
    return [m.split() for m in re.findall(r"member account\(s\): ([\d ]+) \(reconcile", log.read_text())]


def account_events(endpoint: str) -> list[dict]:
    done = _cli("replay", "--type", "AccountRegistered", "--type", "AccountDeregistered", "--format", "jsonl",
                endpoint=endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def settled(stack: SimpleNamespace) -> bool:
    """The runs that came back (11, 12) are done, and then every account is AVAILABLE or
    DEREGISTERED, at least two AVAILABLE (cleaned after the last run)."""
    if not all("IssueProcessed" in _types(stack, n) for n in (11, 12)):
        return False
    statuses = _statuses(stack)
    return sum(s == "AVAILABLE" for s in statuses) >= 2 and set(statuses) <= {"AVAILABLE", "DEREGISTERED"}


def slow_until(marker: Path) -> str:
    """The failing sample, which sleeps 20 s first as long as ``marker`` does not exist."""
    return samples.FAILS.replace('printf', f'test -e {marker} || sleep 20\nprintf', 1)


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Two accounts, one worker. Before the stop: issue 1 reaches its verdict; issue 11 runs
    (slowly) and issue 12 is queued behind it (the one worker is busy). Stop (SIGTERM): 11's and
    12's messages go with the old embedded AWS. Start again on the same --state-dir; by then the
    marker exists, so 11 is no longer slow. Yields the second stack, running."""
    tmp = tmp_path_factory.mktemp("restart")
    state_dir, log = tmp / "state", tmp / "stack.log"
    folder = Path(tempfile.mkdtemp(prefix="gip-restart-"))  # a run reads it whatever its uid
    folder.chmod(0o755)
    marker = folder / "fast"
    gh = FakeGitHub(token=TOKEN, login="gip-bot").start()
    gh.set_permission(REPO, "maintainer", "write")
    payloads = {1: samples.issue_payload(number=1, title="crashes", body=samples.FAILS),
                11: samples.issue_payload(number=11, title="slow crash", body=slow_until(marker)),
                12: samples.issue_payload(number=12, title="crashes", body=samples.FAILS)}
    for payload in payloads.values():
        gh.add_issue_from_payload(payload)
    second = None
    try:
        first = start(state_dir, gh, log)
        try:
            status = _cli("status", "--format", "json", "--state-dir", str(state_dir), endpoint=first.endpoint)
            assert _send(first, payloads[1], delivery="restart-1").json()["status"] == "accepted"
            _wait(lambda: "IssueProcessed" in _types(first, 1), timeout=RUN_TIMEOUT_S,
                  what="the verdict", proc=first.proc, log=log)
            before = events(first)
            assert _send(first, payloads[11], delivery="unfinished-11").json()["status"] == "accepted"
            _wait(lambda: "IssueProcessingStarted" in _types(first, 11),
                  timeout=RUN_TIMEOUT_S, what="issue 11 running", proc=first.proc, log=log)
            assert _send(first, payloads[12], delivery="unfinished-12").json()["status"] == "accepted"
            _wait(lambda: "IssueQueued" in _types(first, 12),
                  timeout=RUN_TIMEOUT_S, what="issue 12 queued", proc=first.proc, log=log)
            first.proc.send_signal(signal.SIGTERM)
            assert first.proc.wait(timeout=90) == 0
        finally:
            _stop(first.proc)
        saved_text = (state_dir / "events.jsonl").read_text()
        first_log = log.read_text()
        marker.touch()
        second = start(state_dir, gh, log)
        yield SimpleNamespace(stack=second, gh=gh, log=log, state_dir=state_dir, before=before, status=status,
                              first_log=first_log, saved_text=saved_text, tmp=tmp, started=time.monotonic())
    finally:
        if second is not None:
            _stop(second.proc)
        gh.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_event_log_survives_a_restart(restarted: SimpleNamespace) -> None:
    second, gh, before = restarted.stack, restarted.gh, restarted.before
    assert "event log saved: " in restarted.first_log and restarted.saved_text
    assert "restored " in restarted.log.read_text()
    after = events(second)
    assert [e["event_id"] for e in after[:len(before)]] == [e["event_id"] for e in before]  # replay shows them
    again = _send(second, samples.issue_payload(number=1, title="crashes", body=samples.FAILS), delivery="restart-1")
    assert again.status_code == 202 and again.json()["status"] == "ignored", again.text
    assert [e["type"] for e in events(second)].count("IssueReceived") == 1
    # the restored events were not published again: GitHub saw one status comment only
    assert len([r for r in gh.requests if r.method == "POST" and r.path.endswith("/issues/1/comments")]) == 1
    # the pool is usable: once the runs that came back are done, every account is settled
    _wait(lambda: settled(second), timeout=3 * RUN_TIMEOUT_S, what="the pool settled", proc=second.proc,
          log=restarted.log)
    accounts = json.loads(_cli("accounts", "--format", "json", endpoint=second.endpoint).stdout)
    assert accounts and all(a["status"] in ("AVAILABLE", "DEREGISTERED") for a in accounts), accounts
    assert sum(a["status"] == "AVAILABLE" for a in accounts) >= 2
    verify = _cli("replay", "--verify", endpoint=second.endpoint)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_unfinished_runs_come_back_to_the_queue_after_a_restart(restarted: SimpleNamespace) -> None:
    """Issue 14 §1: 11 (running at the stop) and 12 (queued at the stop) are sent again by the
    restore, and both reach a verdict."""
    second, log = restarted.stack, restarted.log
    saved = [json.loads(line) for line in restarted.saved_text.splitlines()[1:]]
    verdicts = {e["event"]["stream"] for e in saved if e.get("event", {}).get("type") == "IssueProcessed"}
    assert f"issue-{REPO}#12" not in verdicts  # it was still waiting at the stop
    assert f"issue-{REPO}#11" not in verdicts  # it was still running at the stop
    assert f"issue-{REPO}#1" in verdicts  # (and the finished one is in the saved log)
    assert "queue messages of unfinished work sent again: " in log.read_text()
    assert "to github-issue-processor-issues" in log.read_text()
    for number in (12, 11):
        _wait(lambda n=number: "IssueProcessed" in _types(second, n),  # type: ignore[misc]
              timeout=3 * RUN_TIMEOUT_S, what=f"issue {number}'s verdict", proc=second.proc, log=log)
        assert "IssueProcessed" in [e["type"] for e in events(second, number)]  # replay shows it
    verify = _cli_process("replay", "--verify", endpoint=second.endpoint)  # as a process
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_damaged_event_log_is_one_line_and_is_left_as_it_was(restarted: SimpleNamespace) -> None:
    """A copy of the log saved at the stop, cut short: one line naming the file, exit 1."""
    state_dir = restarted.tmp / "damaged"
    state_dir.mkdir()
    saved = state_dir / "events.jsonl"
    saved.write_text(restarted.saved_text[:-40])
    damaged = saved.read_bytes()
    done = subprocess.run([sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port",
                           str(free_port()), "--aws-port", str(free_port()), "--state-dir", str(state_dir)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot use the saved event log {saved}: ") and "--fresh" in line
    assert saved.read_bytes() == damaged
    assert os.path.getsize(saved) > 0


def test_a_restored_stack_keeps_its_member_ids_and_status_reads_its_healthz(restarted: SimpleNamespace) -> None:
    """Issue 14's last gaps: ``status`` on the first stack read its /healthz (live workers,
    publisher lag); after the restart the member accounts are the same ids, AVAILABLE (once the
    runs that came back are done), with no registration churn in the log."""
    status, second = restarted.status, restarted.stack
    assert status.returncode == 0 and "not reachable" not in status.stderr, status.stderr
    health = json.loads(status.stdout)["health"]
    assert health["source"] == "local" and health["workers"] == {"live": 1, "configured": 1}, health
    assert isinstance(health["publisher_lag_s"], float)
    assert "restored " in restarted.log.read_text()
    time.sleep(max(0.0, restarted.started + RECONCILE_PASSES_S - time.monotonic()))  # time enough to churn
    _wait(lambda: settled(second), timeout=3 * RUN_TIMEOUT_S, what="the pool settled", proc=second.proc,
          log=restarted.log)
    ids = members(restarted.log)
    assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) == 2, ids
    accounts = json.loads(_cli("accounts", "--format", "json", endpoint=second.endpoint).stdout)
    assert {a["account_id"]: a["status"] for a in accounts} == dict.fromkeys(ids[0], "AVAILABLE")
    log_events = account_events(second.endpoint)
    assert Counter((e["type"], e["stream"]) for e in log_events) == \
        Counter(("AccountRegistered", f"account-{i}") for i in ids[0])  # once each, none deregistered
