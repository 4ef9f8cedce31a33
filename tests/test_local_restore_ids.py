"""End to end, one local stack start / stop / start on one --state-dir (issue 14's last gaps):
the member accounts come back with the same ids, AVAILABLE, with no registration churn in the
log; and `status` reads the running stack's own figures (live workers, publisher lag) from its
/healthz."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests import test_local_restart
from tests.fakes.github_server import FakeGitHub
from tests.test_local_e2e import _cli, _stop
from tests.test_local_restart import start

gh = test_local_restart.gh  # the fake GitHub fixture, shared

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(600)]
RECONCILE_PASSES_S = 12  # reconcile runs every 4 s locally; a vanished account goes after two strikes


def members(log: Path) -> list[list[str]]:
    """The ids each start printed ("Organization with N member account(s): <ids> ...")."""
    return [m.split() for m in re.findall(r"member account\(s\): ([\d ]+) \(reconcile", log.read_text())]


def account_events(endpoint: str) -> list[dict]:
    done = _cli("replay", "--type", "AccountRegistered", "--type", "AccountDeregistered", "--format", "jsonl",
                endpoint=endpoint)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_a_restored_stack_keeps_its_member_ids_and_status_reads_its_healthz(tmp_path: Path, gh: FakeGitHub) -> None:
    state_dir, log = tmp_path / "state", tmp_path / "stack.log"
    first = start(state_dir, gh, log)
    try:
        status = _cli("status", "--format", "json", "--state-dir", str(state_dir), endpoint=first.endpoint)
        assert status.returncode == 0 and "not reachable" not in status.stderr, status.stderr
        health = json.loads(status.stdout)["health"]
        assert health["source"] == "local" and health["workers"] == {"live": 1, "configured": 1}, health
        assert isinstance(health["publisher_lag_s"], float)
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(timeout=60)
    finally:
        _stop(first.proc)

    second = start(state_dir, gh, log)
    try:
        assert "restored " in log.read_text()
        time.sleep(RECONCILE_PASSES_S)  # long enough for reconcile to churn, if it were going to
        ids = members(log)
        assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) == 2, ids
        accounts = json.loads(_cli("accounts", "--format", "json", endpoint=second.endpoint).stdout)
        assert {a["account_id"]: a["status"] for a in accounts} == dict.fromkeys(ids[0], "AVAILABLE")
        log_events = account_events(second.endpoint)
        assert Counter((e["type"], e["stream"]) for e in log_events) == \
            Counter(("AccountRegistered", f"account-{i}") for i in ids[0])  # once each, none deregistered
    finally:
        _stop(second.proc)
