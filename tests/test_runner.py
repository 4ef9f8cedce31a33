"""worker.runner: real subprocesses, clean environment, timeout, output cap."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from gip.domain.repro import JAVASCRIPT, PYTHON, SHELL, TYPESCRIPT
from worker.runner import Interpreters, Limits, Unavailable, child_env, command_for, run_snippet

MEMBER = {"AWS_ACCESS_KEY_ID": "ASIAMEMBER", "AWS_SECRET_ACCESS_KEY": "membersecret", "AWS_SESSION_TOKEN": "membertoken"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            state = next(line for line in handle if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]


def test_child_sees_only_member_credentials_region_and_basics(monkeypatch):
    # GIVEN a worker whose own environment holds management credentials and a GitHub token
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMANAGEMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "managementsecret")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    # WHEN the child prints the environment it actually got
    result = run_snippet(PYTHON, "import json, os\nprint(json.dumps(dict(os.environ)))",
                         credentials=MEMBER, region="eu-west-1")
    seen = json.loads(result.output)
    # THEN it holds the member credentials and nothing of the worker's
    assert seen["AWS_ACCESS_KEY_ID"] == "ASIAMEMBER"
    assert seen["AWS_SESSION_TOKEN"] == "membertoken"
    assert seen["AWS_REGION"] == "eu-west-1"
    assert "GITHUB_TOKEN" not in seen
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in seen
    assert not any("managementsecret" in v or "AKIAMANAGEMENT" in v or "ghp_" in v for v in seen.values())
    assert set(seen) <= set(child_env(MEMBER, region="x", home="/h", marker="m")) | {"PWD", "SHLVL", "_", "LC_CTYPE"}
    # and it ran in its own directory, which is removed afterwards
    assert seen["HOME"].startswith("/tmp") or "gip-run-" in seen["HOME"]
    assert not os.path.exists(seen["HOME"])


def test_shell_runs_under_bash_euo_pipefail_and_the_exact_command_is_recorded():
    result = run_snippet(SHELL, "false | true\necho unreachable", credentials=MEMBER, region="us-east-1")
    assert result.command[1:3] == ("-euo", "pipefail")
    assert result.command_line.startswith(result.command[0] + " -euo pipefail ")
    assert result.exit_code == 1
    assert "unreachable" not in result.output


def test_timeout_kills_the_whole_process_group_including_a_grandchild(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = f"sleep 300 &\necho $! > {pidfile}\nsleep 300\n"
    started = time.monotonic()
    result = run_snippet(SHELL, code, credentials=MEMBER, region="us-east-1",
                         limits=Limits(timeout_s=1.0, kill_grace_s=0.2))
    assert time.monotonic() - started < 10
    assert result.timed_out and result.exit_code == 124
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_background_grandchild_of_a_finished_snippet_does_not_outlive_it(tmp_path):
    pidfile = tmp_path / "bg.pid"
    result = run_snippet(SHELL, f"sleep 300 &\necho $! > {pidfile}\necho done", credentials=MEMBER, region="us-east-1")
    assert result.exit_code == 0 and result.duration_s < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_output_cap_keeps_head_and_tail_and_counts_the_rest():
    code = "for i in range(20000):\n    print(f'line {i:05d}')\nprint('THE END')"
    result = run_snippet(PYTHON, code, credentials=MEMBER, region="us-east-1", limits=Limits(output_cap=4000))
    assert result.exit_code == 0
    assert len(result.output.encode()) < 4200
    assert result.truncated_bytes > 200_000
    assert result.output.startswith("line 00000")
    assert result.output.rstrip().endswith("THE END")
    assert "output cap" in result.output


def test_cancel_interrupts_a_running_child():
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_snippet(SHELL, "sleep 60", credentials=MEMBER, region="us-east-1", cancel=cancel,
                         limits=Limits(kill_grace_s=0.2))
    assert result.interrupted and not result.timed_out
    assert result.duration_s < 5


def test_syntax_errors_never_start():
    py = run_snippet(PYTHON, "def broken(:\n  pass", credentials=MEMBER, region="us-east-1")
    sh = run_snippet(SHELL, "if then fi (", credentials=MEMBER, region="us-east-1")
    assert py.could_not_start and "syntax" in py.could_not_start
    assert sh.could_not_start and "syntax" in sh.could_not_start


def test_missing_interpreter_could_not_start():
    gone = Interpreters(bash=None, python="/nonexistent/python3", node=None)
    result = run_snippet(PYTHON, "print(1)", credentials=MEMBER, region="us-east-1", interpreters=gone)
    assert result.could_not_start and "/nonexistent/python3" in result.could_not_start


@pytest.mark.skipif(Interpreters.discover().node is None, reason="node not installed")
def test_javascript_runs_with_node():
    result = run_snippet(JAVASCRIPT, "console.log('from node'); process.exit(4)", credentials=MEMBER, region="us-east-1")
    assert (result.exit_code, result.output.strip()) == (4, "from node")


def test_node_absent_or_too_old_for_typescript_is_unavailable_with_a_reason():
    with pytest.raises(Unavailable, match="node is not installed"):
        command_for(JAVASCRIPT, "/x.js", Interpreters(bash="/bin/bash", python="/p", node=None))
    with pytest.raises(Unavailable, match=r"node >= 22.6.*node 20\.1\.0"):
        command_for(TYPESCRIPT, "/x.ts", Interpreters(bash="/bin/bash", python="/p", node="/n", node_version=(20, 1, 0)))
    assert command_for(TYPESCRIPT, "/x.ts", Interpreters(bash="/b", python="/p", node="/n", node_version=(23, 0, 0)))[1] == "--experimental-strip-types"


def _job(body: str, **kw):
    from worker.processor import Job

    return Job(repo="o/r", number=1, run=1, title="t", body=body, html_url="", account_id="210987654321",
               lease_id="L", region="us-east-1", credentials=lambda: MEMBER, **kw)


def test_processor_without_node_says_why_for_a_javascript_snippet():
    from worker.processor import reproduce

    no_node = Interpreters(bash="/usr/bin/bash", python=Interpreters.discover().python, node=None)
    outcome = reproduce(_job("### Reproduction Steps\n\n```js\nthrow new Error('x')\n```\n"), interpreters=no_node)
    assert outcome.verdict == "no_repro_found"
    assert "node is not installed" in outcome.message


@pytest.mark.skipif(Interpreters.discover().node is None, reason="node not installed")
def test_processor_runs_a_javascript_repro_with_node_and_records_versions():
    from worker.processor import reproduce

    outcome = reproduce(_job("### Reproduction Steps\n\n```javascript\nthrow new Error('frob')\n```\n"))
    assert (outcome.verdict, outcome.exit_code) == ("reproduced", 1)
    assert "Error: frob" in outcome.log
    assert outcome.details["versions"]["node"] and outcome.details["language"] == "javascript"
    assert outcome.command.split()[0].endswith("node")


@pytest.mark.skipif(os.geteuid() != 0, reason="a per-run uid needs root")
def test_a_run_uid_cannot_read_the_workers_environ_or_root_files():
    # GIVEN a worker running as root (the container default) with per-run uids
    from worker.sandbox import UID, Isolation

    code = ("id -u\n"
            "cat /proc/$PPID/environ > /dev/null 2>&1 && echo ENVIRON-READABLE || echo environ-denied\n"
            "cat /etc/shadow > /dev/null 2>&1 && echo SHADOW-READABLE || echo shadow-denied\n"
            "touch probe && echo can-write-workdir\n")
    isolation = Isolation(UID)
    result = run_snippet(SHELL, code, credentials=MEMBER, region="us-east-1", limits=Limits(isolation=isolation))
    lines = result.output.split()
    assert int(lines[0]) in isolation.uids
    assert "environ-denied" in lines and "ENVIRON-READABLE" not in lines
    assert "shadow-denied" in lines and "SHADOW-READABLE" not in lines
    assert "can-write-workdir" in lines
    assert result.exit_code == 0


def test_worker_process_is_made_non_dumpable(tmp_path):
    import subprocess
    import sys

    probe = ("from worker.runner import protect_worker_process\n"
             "protect_worker_process()\n"
             "import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n")  # PR_GET_DUMPABLE
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
                          cwd=os.path.dirname(os.path.dirname(__file__)), check=True)
    assert done.stdout.split()[-1] == "0"


def _rotating_source():
    from datetime import UTC, datetime, timedelta

    calls = []

    def source():
        calls.append(1)
        expires = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"AWS_ACCESS_KEY_ID": f"ASIAMEMBER{len(calls)}", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_SESSION_TOKEN": "t", "AWS_CREDENTIAL_EXPIRATION": expires}

    return source, calls


def test_long_run_child_refreshes_member_credentials_through_the_loopback_endpoint(monkeypatch):
    # GIVEN a run allowed to outlive one session, and a worker holding its own keys
    from worker.processor import reproduce

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMANAGEMENT")
    source, calls = _rotating_source()
    code = ("import os, botocore.session\n"
            "print(sorted(k for k in os.environ if k.startswith('AWS_')))\n"
            "creds = botocore.session.get_session().get_credentials()\n"
            "print(creds.get_frozen_credentials().access_key)\n"
            "print(creds.get_frozen_credentials().access_key)\n")
    body = f"### Reproduction Steps\n\n```python\n{code}```\n"
    job = _job(body, limits=Limits(timeout_s=4000))
    job = type(job)(**{**job.__dict__, "credentials": source})
    # WHEN the snippet asks botocore for credentials twice (they are close to expiry)
    outcome = reproduce(job)
    # THEN they came from the endpoint, refreshed, and no static key was in its environment
    lines = outcome.log.strip().split("\n")
    assert outcome.exit_code == 0, outcome.log
    assert "AWS_ACCESS_KEY_ID" not in lines[0] and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in lines[0]
    assert lines[1].startswith("ASIAMEMBER") and lines[2].startswith("ASIAMEMBER")
    assert lines[1] != lines[2] and len(calls) >= 2
    assert "AKIAMANAGEMENT" not in outcome.log


def test_credential_endpoint_refuses_a_wrong_token():
    import urllib.error
    import urllib.request

    from worker.credserver import CredentialServer

    source, calls = _rotating_source()
    with CredentialServer(source) as server:
        request = urllib.request.Request(server.uri, headers={"Authorization": "guess"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        good = urllib.request.Request(server.uri, headers={"Authorization": server.token})
        served = json.loads(urllib.request.urlopen(good, timeout=5).read())
    assert refused.value.code == 403 and calls == [1]
    assert served["AccessKeyId"] == "ASIAMEMBER1" and served["Expiration"].endswith("Z")
