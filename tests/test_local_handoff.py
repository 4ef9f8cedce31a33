"""gip.local.handoff: the supervisor's /proc/<pid>/environ holds no GitHub secret (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gip.local.console import NOT_A_SANDBOX, isolation_notice
from gip.local.handoff import SECRET_VARS, hand_over, split_secrets
from worker.sandbox import MARKER, UID

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"GITHUB_TOKEN": "ghp_" + "t" * 36, "GITHUB_WEBHOOK_SECRET": "hook-secret-42",
           "GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"}
PROBE = ("from gip.local import handoff\n"
         "handoff.hand_over()\n"
         "handoff.take_over()\n"
         "import os, subprocess, sys, time\n"
         "print(os.getpid(), os.environ['GITHUB_TOKEN'], os.environ['GITHUB_WEBHOOK_SECRET'], flush=True)\n"
         "sys.stdin.readline()\n")


def test_split_keeps_everything_but_the_secrets():
    env, secrets = split_secrets({"PATH": "/bin", "GITHUB_API_URL": "http://x", **SECRETS, "GITHUB_TOKEN": ""})
    assert env == {"PATH": "/bin", "GITHUB_API_URL": "http://x"}
    assert set(secrets) == {"GITHUB_WEBHOOK_SECRET", "GITHUB_APP_PRIVATE_KEY"} and set(secrets) <= set(SECRET_VARS)


def test_without_secrets_there_is_nothing_to_hand_over_and_no_exec():
    hand_over({"PATH": "/bin"}, argv=["/nonexistent"])  # would raise if it tried to exec


def test_the_supervisor_keeps_the_secrets_in_memory_and_out_of_its_proc_environ():
    # GIVEN a supervisor started with the GitHub secrets in its environment
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **SECRETS}
    proc = subprocess.Popen([sys.executable, "-c", PROBE], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        pid, token, secret = proc.stdout.readline().split()
        # WHEN another process reads /proc/<pid>/environ (root can; a same-user snippet cannot at all)
        environ = Path(f"/proc/{pid}/environ").read_bytes() if os.geteuid() == 0 else b""
        status = Path(f"/proc/{pid}/status").read_text()
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)
    # THEN it is the same process, holding the values, and its environment block has none of them
    assert int(pid) == proc.pid and token == SECRETS["GITHUB_TOKEN"] and secret == SECRETS["GITHUB_WEBHOOK_SECRET"]
    assert all(value.encode() not in environ for value in SECRETS.values())
    if os.geteuid() == 0:
        assert b"PYTHONPATH=" in environ  # the block itself was read
    assert proc.returncode == 0 and "Uid:" in status


def test_start_up_notice_only_when_runs_do_not_get_their_own_uid():
    assert isolation_notice(MARKER) == "notice: local mode runs reproductions as you; it is not a sandbox"
    assert isolation_notice(UID) is None
    assert NOT_A_SANDBOX in (ROOT / "docs" / "local.md").read_text()
