"""worker.sandbox: per-run identity, and nothing of a run survives it. Real processes throughout."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gip.domain.repro import SHELL
from worker import procs, sandbox
from worker.credserver import CredentialServer, socket_owner
from worker.procs import carries_marker, status_uids
from worker.runner import Limits, run_snippet
from worker.sandbox import (
    MARKER,
    UID,
    Isolation,
    Leftover,
    parse_uid_range,
)

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="a per-run uid needs root")
MODES = [pytest.param(UID, marks=ROOT_ONLY, id="uid"), pytest.param(MARKER, id="marker")]
# This test process's own uids, outside RUN_UID_RANGE's default: other test processes (pytest-xdist
# workers, the worker processes other tests start) clean the idle uids of the default range between
# runs, and would kill the leftover a test keeps on purpose or take a uid a test then checks.
PRIVATE_UIDS = range(300000 + os.getpid() % 10000 * 16, 300000 + os.getpid() % 10000 * 16 + 16)
MEMBER = {"AWS_ACCESS_KEY_ID": "ASIAFIRST", "AWS_SECRET_ACCESS_KEY": "first-secret", "AWS_SESSION_TOKEN": "first-token"}

# Four ways out of a process group, each ignoring SIGTERM/SIGHUP: a double fork into a new
# session, a plain setsid, nohup, and a re-exec with an empty environment (drops the marker). Each writes its pid; the snippet prints them and who it is.
HOSTILE = """
( trap '' TERM HUP; setsid sh -c 'trap "" TERM HUP; echo $$ >> pids; while :; do sleep 1; done' & ) &
setsid sh -c 'trap "" TERM HUP; echo $$ >> pids; exec sleep 300' &
nohup sh -c 'trap "" TERM HUP; echo $$ >> pids; sleep 300' > /dev/null 2>&1 &
setsid env -i sh -c 'trap "" TERM HUP; echo $$ >> '"$PWD"'/pids; exec sleep 300' > /dev/null 2>&1 &
for i in $(seq 50); do [ "$(wc -l < pids 2>/dev/null || echo 0)" -ge 4 ] && break; sleep 0.05; done
echo "who $(id -u) $GIP_RUN"
echo "pids $(cat pids | tr '\\n' ' ')"
"""
ENDINGS = {"exit": "exit 0\n", "timeout": "sleep 300\n", "cancel": "sleep 300\n"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return not status_uids(handle.read())[1]
    except FileNotFoundError:
        return False


def _line(output: str, key: str) -> list[str]:
    return next(line for line in output.splitlines() if line.startswith(key + " ")).split()[1:]


def _run(mode: str, code: str, *, cancel: threading.Event | None = None, timeout_s: float = 20,
         credentials: dict[str, str] = MEMBER, isolation: Isolation | None = None, **kw):
    limits = Limits(timeout_s=timeout_s, kill_grace_s=0.2,
                    isolation=isolation or Isolation(mode, uids=PRIVATE_UIDS))
    return run_snippet(SHELL, code, credentials=credentials, region="us-east-1", limits=limits,
                       cancel=cancel, **kw)


# --- pure ------------------------------------------------------------------------------------------
def test_uid_range_is_parsed_and_bad_ranges_are_one_clear_error():
    assert parse_uid_range("300000-300009") == range(300000, 300010)
    assert parse_uid_range("") == range(200000, 201000)
    for bad in ("nobody", "5-1", "0-10", "300000", "3e5-4e5"):
        with pytest.raises(ValueError, match="RUN_UID_RANGE"):
            parse_uid_range(bad)


def test_bad_range_in_the_environment_is_a_config_error_when_root():
    from gip.errors import ConfigError

    if os.geteuid() != 0:
        assert Isolation.detect("nonsense").mode == MARKER
        return
    with pytest.raises(ConfigError, match="RUN_UID_RANGE"):
        Isolation.detect("nonsense")


def test_status_gives_every_uid_and_tells_zombies_apart():
    status = "Name:\tsh\nState:\tS (sleeping)\nUid:\t200001\t0\t200002\t200003\n"
    assert status_uids(status) == ({200001, 0, 200002, 200003}, False)
    assert status_uids("State:\tZ (zombie)\nUid:\t5\t5\t5\t5\n") == ({5}, True)


def test_marker_matches_the_whole_variable_only():
    block = b"PATH=/bin\0GIP_RUN=123.abc\0HOME=/h\0"
    assert carries_marker(block, "123.abc")
    assert not carries_marker(block, "123.ab") and not carries_marker(block, "23.abc")


def test_socket_owner_reads_the_peer_uid_from_proc_net_tcp():
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:A3F2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 200042 0 1 1\n"
             "   1: 0100007F:1F90 0100007F:A3F2 01 00000000:00000000 00:00000000 00000000     0 0 2 1\n")
    assert socket_owner(table, local_port=0xA3F2, remote_port=0x1F90) == 200042
    assert socket_owner(table, local_port=0x1F90, remote_port=0xA3F2) == 0
    assert socket_owner(table, local_port=1, remote_port=2) is None


# --- nothing survives the run ------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_a_snippet_that_double_forks_setsids_and_ignores_sigterm_leaves_nothing_behind(mode, ending):
    # GIVEN a snippet whose children escape its process group and ignore SIGTERM
    cancel = threading.Event()
    if ending == "cancel":
        threading.Timer(1.5, cancel.set).start()
    # WHEN its run ends by exiting, by timing out, or by the worker cancelling it
    result = _run(mode, HOSTILE + ENDINGS[ending], cancel=cancel, timeout_s=1.5 if ending == "timeout" else 20)
    # THEN the run reports the ending, and not one of its processes is alive
    assert result.timed_out == (ending == "timeout") and result.interrupted == (ending == "cancel")
    uid, marker = _line(result.output, "who")
    pids = [int(p) for p in _line(result.output, "pids")]
    assert len(pids) == 4, result.output
    assert not [pid for pid in pids if _alive(pid)]
    if mode == UID:
        assert int(uid) in PRIVATE_UIDS and procs.pids_of_uid(int(uid)) == []
    else:
        assert uid == str(os.geteuid()) and marker.startswith(f"{os.getpid()}.")
        assert procs.pids_with_marker(marker) == []


@ROOT_ONLY
def test_each_run_has_its_own_uid_and_a_directory_only_that_uid_can_enter():
    code = "id -u; id -g; id -G; stat -c '%u %a' . tmp snippet.sh; echo $TMPDIR; sleep 1\n"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(_run(UID, code))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = (r.output.split("\n") for r in results)
    assert first[0] != second[0], "two runs at once shared a uid"
    for lines in (first, second):
        uid = lines[0]
        assert lines[1] == uid and lines[2] == uid  # its own gid, no supplementary groups
        assert lines[3] == f"{uid} 700" and lines[4] == f"{uid} 700" and lines[5] == f"{uid} 600"
        assert lines[6].endswith("/tmp") and not os.path.exists(os.path.dirname(lines[6]))


@ROOT_ONLY
def test_files_a_run_leaves_in_shared_temp_dirs_are_removed():
    result = _run(UID, "echo left-behind > /tmp/gip-test-$(id -u).txt; id -u\n")
    assert result.exit_code == 0
    assert not os.path.exists(f"/tmp/gip-test-{result.output.strip()}.txt")


# --- credentials --------------------------------------------------------------------------------------
@ROOT_ONLY
def test_a_concurrent_run_cannot_read_the_other_runs_credentials_from_proc():
    # GIVEN run B holding its secret while run A scans every environment it can open
    secret = "SECOND-RUN-" + os.urandom(6).hex()
    second = threading.Thread(target=_run, args=(UID, "sleep 4\n"),
                              kwargs={"credentials": {**MEMBER, "AWS_SECRET_ACCESS_KEY": secret}})
    second.start()
    try:
        time.sleep(1)
        # the scan itself can find it: root sees it (so the assertion below could fail)
        assert any(secret.encode() in (procs.read(f"/proc/{p}/environ", binary=True) or b"")
                   for p in procs.all_pids())
        spy = _run(UID, f"cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c {secret} || true\n")
    finally:
        second.join()
    # THEN A found nothing
    assert spy.output.strip() == "0"


@pytest.mark.parametrize("mode", MODES)
def test_nothing_the_first_run_started_can_read_the_second_runs_credentials(mode):
    # GIVEN a first run that leaves a spy behind, polling every environment and writing what it finds
    shared = Path(tempfile.mkdtemp(prefix="gip-spy-"))
    shared.chmod(0o777)
    spy_file = shared / "found"
    secret = "SECOND-RUN-" + os.urandom(6).hex()
    spy = (f"setsid sh -c 'trap \"\" TERM HUP; while :; do cat /proc/[0-9]*/environ 2>/dev/null "
           f"| tr \"\\0\" \"\\n\" | grep SECOND-RUN >> {spy_file}; sleep 0.05; done' > /dev/null 2>&1 &\n"
           f"sleep 0.3; echo started\n")
    first = _run(mode, spy)
    assert first.output.strip() == "started" and spy_file.exists()
    # WHEN the second run holds its credentials for a while
    second = _run(mode, "sleep 1.5; echo ok\n", credentials={**MEMBER, "AWS_SECRET_ACCESS_KEY": secret})
    # THEN the spy was gone before they existed
    assert second.output.strip() == "ok"
    assert secret not in spy_file.read_text()


def _fetch_credentials(token: str = "$AWS_CONTAINER_AUTHORIZATION_TOKEN", uri: str = "$AWS_CONTAINER_CREDENTIALS_FULL_URI") -> str:
    """A bash GET through /dev/tcp (no curl needed), printing the status line and the body."""
    return (f"u={uri}; u=${{u#http://}}; hp=${{u%%/*}}; path=/${{u#*/}}\n"
            "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}\n"
            f"printf 'GET %s HTTP/1.0\\r\\nAuthorization: %s\\r\\n\\r\\n' \"$path\" \"{token}\" >&3\n"
            "cat <&3\n")


@ROOT_ONLY
def test_the_credential_endpoint_serves_the_runs_uid_only_even_to_a_holder_of_the_token():
    source = lambda: {**MEMBER, "AWS_CREDENTIAL_EXPIRATION": "2099-01-01T00:00:00Z"}  # noqa: E731
    with CredentialServer(source) as server:
        holder: list = []
        # GIVEN run A with the refreshing endpoint (its uid is the one allowed)
        first = threading.Thread(target=lambda: holder.append(
            _run(UID, _fetch_credentials() + "sleep 3\n", credentials={}, credserver=server)))
        first.start()
        time.sleep(1)
        # WHEN run B (another uid) and the root worker itself ask with the right token
        other = _run(UID, _fetch_credentials(server.token, server.uri))
        request = urllib.request.Request(server.uri, headers={"Authorization": server.token})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        first.join()
    # THEN only A got the credentials
    assert " 200 " in holder[0].output.splitlines()[0] and "ASIAFIRST" in holder[0].output
    assert " 403 " in other.output.splitlines()[0] and "ASIAFIRST" not in other.output
    assert refused.value.code == 403


# --- a leftover --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_survivor_is_a_leftover_error_and_is_found_and_killed_between_runs(mode, monkeypatch):
    # GIVEN a kill that does not work (stands in for a process the kernel will not let go)
    isolation = Isolation(mode, uids=PRIVATE_UIDS, verify_s=0.2)
    monkeypatch.setattr(sandbox, "_kill_as", lambda uid, gid: None)
    monkeypatch.setattr(sandbox, "_signal_all", lambda pids, sig: None)
    # WHEN a run leaves a process behind
    with pytest.raises(Leftover, match="leftover processes") as raised:
        _run(mode, "setsid sleep 60 > /dev/null 2>&1 &\nsleep 0.3\n", isolation=isolation)
    pids = raised.value.pids
    assert pids and all(_alive(pid) for pid in pids)
    # THEN the worker sees it between runs, and cleaning kills it
    assert set(pids) <= set(isolation.leftovers())
    assert not isolation.clean()
    monkeypatch.undo()
    assert isolation.clean()
    assert not [pid for pid in pids if _alive(pid)] and isolation.leftovers() == []


def test_a_leftover_fails_the_run_retryably_sends_the_account_to_cleanup_and_blocks_new_runs(monkeypatch):
    from moto import mock_aws

    from gip.domain.envelope import account_stream, issue_stream
    from tests.worker_env import (
        last,
        make_stack,
        make_worker,
        member_ids,
        queue_issue,
        register,
        types,
    )

    fence = "### Reproduction Steps\n\n```sh\n{}\n```\n"
    with mock_aws():
        # GIVEN a worker whose kill does not work, and a run that leaves a process behind
        stack = make_stack(prefix="sbx")
        member = member_ids(1)[0]
        register(stack, [member])
        queue_issue(stack, fence.format("setsid sleep 60 > /dev/null 2>&1 &\nsleep 0.3"), number=1)
        isolation = Isolation(MARKER, verify_s=0.2)
        monkeypatch.setattr(sandbox, "_signal_all", lambda pids, sig: None)
        worker = make_worker(stack, limits=Limits(timeout_s=20, kill_grace_s=0.2, isolation=isolation))
        # WHEN it processes the run
        assert worker.poll_once() == "failed"
        # THEN the run failed as an infrastructure error (retryable) and the account went to cleanup
        failed = last(stack, issue_stream("octo/demo", 1), "IssueProcessingFailed")["data"]
        assert failed["retryable"] is True and "leftover processes" in failed["error"]
        assert "AccountReleased" in types(stack, account_stream(member))
        # AND while the leftover lives, the worker takes no issue
        queue_issue(stack, fence.format("true"), number=2)

        def queued() -> int:  # every message of the queue, whatever its visibility: run 1's retry
            attrs = stack.sqs.get_queue_attributes(  # may come back visible while this test runs
                QueueUrl=stack.settings.issue_queue_url, AttributeNames=["All"])["Attributes"]
            return sum(int(attrs[k]) for k in ("ApproximateNumberOfMessages",
                                              "ApproximateNumberOfMessagesNotVisible",
                                              "ApproximateNumberOfMessagesDelayed"))

        before = queued()
        assert worker.poll_once() == "unclean"
        assert queued() == before  # nothing taken: issue 2 is left in the queue for a clean worker
        assert types(stack, issue_stream("octo/demo", 2))[-1] == "IssueQueued"
        # AND once it can kill it, the worker is clean and serves again
        monkeypatch.undo()
        assert worker.poll_once() not in ("unclean", "idle")
        assert isolation.leftovers() == []


def test_adopted_orphans_are_the_subtrees_of_new_children_only():
    from worker.procs import Proc, adopted, parse_status

    status = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nPid:\t7\nPPid:\t1\nUid:\t5\t5\t5\t5\n"
    assert parse_status(7, "\n" + status) == Proc(7, 1, frozenset({5}), False)
    table = [Proc(10, 1, frozenset({0}), False),   # the worker
             Proc(11, 10, frozenset({0}), False),  # a child it had before the run (moto server)
             Proc(12, 11, frozenset({0}), False),  # ... and its child
             Proc(20, 10, frozenset({5}), False),  # an orphan adopted during the run
             Proc(21, 20, frozenset({5}), True)]   # its dead child
    assert adopted(10, frozenset({11}), table) == ([20], [21])


def test_a_root_worker_whose_python_no_run_uid_can_execute_falls_back_with_a_note(monkeypatch):
    from gip.isolation import reachable_by_others

    base = Path(tempfile.mkdtemp(prefix="gip-reach-"))  # 0700, like /root
    try:
        program = base / "python"
        program.write_text("")
        program.chmod(0o755)
        assert not reachable_by_others(str(program))
        base.chmod(0o755)
        assert reachable_by_others(str(program))
        if os.geteuid() == 0:
            monkeypatch.setattr(sandbox.sys, "executable", str(program))
            assert Isolation.detect() == Isolation(UID)
            base.chmod(0o700)
            fallback = Isolation.detect()
            assert fallback.mode == MARKER and "cannot be executed by another uid" in fallback.note
    finally:
        base.chmod(0o700)
        program.unlink()
        base.rmdir()
