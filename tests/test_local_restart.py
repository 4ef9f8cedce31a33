"""End to end (issue 14 §1): process an issue, stop the local stack, start it again on the same
--state-dir: the old events are there, --verify finds no drift, the pool is usable and a
redelivery of the old delivery is still a duplicate. Then a corrupt log refuses to start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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
    _env,
    _healthy,
    _send,
    _stop,
    _wait,
)

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(600)]


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


def events(stack: SimpleNamespace) -> list[dict]:
    done = _cli("replay", "--stream", f"{REPO}#1", "--format", "jsonl", endpoint=stack.endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    server = FakeGitHub(token=TOKEN, login="gip-bot").start()
    server.set_permission(REPO, "maintainer", "write")
    try:
        yield server
    finally:
        server.stop()


def test_the_event_log_survives_a_restart(tmp_path: Path, gh: FakeGitHub) -> None:
    state_dir, log = tmp_path / "state", tmp_path / "stack.log"
    payload = samples.issue_payload(number=1, title="crashes", body=samples.FAILS)
    gh.add_issue_from_payload(payload)
    first = start(state_dir, gh, log)
    try:
        assert _send(first, payload, delivery="restart-1").json()["status"] == "accepted"
        _wait(lambda: any(e["type"] == "IssueProcessed" for e in events(first)), timeout=RUN_TIMEOUT_S,
              what="the verdict", proc=first.proc, log=log)
        before = events(first)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=90) == 0
    finally:
        _stop(first.proc)
    assert "event log saved: " in log.read_text() and (state_dir / "events.jsonl").exists()

    second = start(state_dir, gh, log)
    try:
        assert "restored " in log.read_text()
        after = events(second)
        assert [e["event_id"] for e in after[:len(before)]] == [e["event_id"] for e in before]  # replay shows them
        verify = _cli("replay", "--verify", endpoint=second.endpoint)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        accounts = json.loads(_cli("accounts", "--format", "json", endpoint=second.endpoint).stdout)
        assert accounts and all(a["status"] in ("AVAILABLE", "DEREGISTERED") for a in accounts), accounts
        assert sum(a["status"] == "AVAILABLE" for a in accounts) >= 2
        again = _send(second, payload, delivery="restart-1")
        assert again.status_code == 202 and again.json()["status"] == "ignored", again.text
        assert [e["type"] for e in events(second)].count("IssueReceived") == 1
        # the restored events were not published again: GitHub saw one status comment only
        assert len([r for r in gh.requests if r.method == "POST" and r.path.endswith("/comments")]) == 1
    finally:
        _stop(second.proc)

    # a damaged log: one line naming the file, exit 1, and the file left as it was
    saved = state_dir / "events.jsonl"
    saved.write_text(saved.read_text()[:-40])
    damaged = saved.read_bytes()
    done = subprocess.run([sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port",
                           str(free_port()), "--aws-port", str(free_port()), "--state-dir", str(state_dir)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot use the saved event log {saved}: ") and "--fresh" in line
    assert saved.read_bytes() == damaged
    assert os.path.getsize(saved) > 0


def slow_until(marker: Path) -> str:
    """The failing sample, which sleeps 20 s first as long as ``marker`` does not exist."""
    return samples.FAILS.replace('printf', f'test -e {marker} || sleep 20\nprintf', 1)


@pytest.fixture
def marker() -> Iterator[Path]:
    """A path a run can look at whatever its uid (not under pytest's 0700 tmp_path)."""
    folder = Path(tempfile.mkdtemp(prefix="gip-restart-"))
    folder.chmod(0o755)
    try:
        yield folder / "fast"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stream_events(stack: SimpleNamespace, number: int) -> list[dict]:
    done = _cli("replay", "--stream", f"{REPO}#{number}", "--format", "jsonl", endpoint=stack.endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_unfinished_runs_come_back_to_the_queue_after_a_restart(tmp_path: Path, gh: FakeGitHub,
                                                                marker: Path) -> None:
    """Issue 14 §1: one account, one worker: issue 11 runs (slowly), issue 12 is queued behind it
    (no account free). Stop: 12's message and 11's go with the old embedded AWS. Start again on the
    same --state-dir: both are sent again, and both reach a verdict (11 no longer slow: the
    marker exists by then, so the second stack need not sit out the 20 s)."""
    state_dir, log = tmp_path / "state", tmp_path / "stack.log"
    slow = samples.issue_payload(number=11, title="slow crash", body=slow_until(marker))
    queued = samples.issue_payload(number=12, title="crashes", body=samples.FAILS)
    for payload in (slow, queued):
        gh.add_issue_from_payload(payload)
    first = start(state_dir, gh, log, "--accounts", "1")
    try:
        assert _send(first, slow, delivery="unfinished-11").json()["status"] == "accepted"
        _wait(lambda: any(e["type"] == "IssueProcessingStarted" for e in stream_events(first, 11)),
              timeout=RUN_TIMEOUT_S, what="issue 11 running", proc=first.proc, log=log)
        assert _send(first, queued, delivery="unfinished-12").json()["status"] == "accepted"
        _wait(lambda: any(e["type"] == "IssueQueued" for e in stream_events(first, 12)),
              timeout=RUN_TIMEOUT_S, what="issue 12 queued", proc=first.proc, log=log)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=90) == 0
    finally:
        _stop(first.proc)
    saved = [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()[1:]]
    verdicts = {e["event"]["stream"] for e in saved if e.get("event", {}).get("type") == "IssueProcessed"}
    assert f"issue-{REPO}#12" not in verdicts  # it was still waiting at the stop
    assert f"issue-{REPO}#11" not in verdicts  # it was still running at the stop
    marker.touch()

    second = start(state_dir, gh, log, "--accounts", "1")
    try:
        assert "queue messages of unfinished work sent again: " in log.read_text()
        assert "to github-issue-processor-issues" in log.read_text()
        for number in (12, 11):
            _wait(lambda n=number: any(e["type"] == "IssueProcessed" for e in stream_events(second, n)),  # type: ignore[misc]
                  timeout=3 * RUN_TIMEOUT_S, what=f"issue {number}'s verdict", proc=second.proc, log=log)
        verify = _cli("replay", "--verify", endpoint=second.endpoint)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        _stop(second.proc)
