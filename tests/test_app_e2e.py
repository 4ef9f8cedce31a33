"""End to end in ``--local`` with a GitHub App: ``GITHUB_APP_ID`` and a key file, no token.

The fake GitHub plays the App (tests/fakes/github_app.py) and posts the deliveries to the local
stack's webhook, signed. Checked from outside the stack:

- start-up names the App GitHub accepted;
- a labelled issue gets its status comment, written with an installation token (this needs the
  GitHub client of issue 19, which asks the credentials per repository: skipped before it);
- deliveries the fake reported as failed are recovered once: one on a repository hook by
  ``bootstrap.py redeliver --redeliver-hooks`` (after a ``--dry-run`` that changed nothing), one
  on the App's hook by that command or by the local schedule, whichever runs first; and
  ``replay --type WebhookRedeliveryRequested`` shows both.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import requests

from gip.adapters.github import client as client_mod
from gip.local import samples
from tests.conftest import free_port
from tests.fakes.github_app import FakeGitHubApp
from tests.test_local_e2e import BOOT_TIMEOUT_S, QUICK, ROOT, _env, _stop, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(420)]
SECRET = "app-e2e-webhook-secret"
REPO = samples.REPO
PAT = "ghp_hook_admin"
REPO_HOOK = f"repos/{REPO}/hooks/31"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("app-local")
    log, key = tmp / "stack.log", tmp / "app.pem"
    port, aws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    gh = FakeGitHubApp(app_id=4242, pat=PAT, webhook_url=f"{base}/webhook", webhook_secret=SECRET).start()
    gh.install(REPO, 77)
    gh.set_permission(REPO, "maintainer", "write")
    key.write_text(gh.private_key_pem)
    env = _env(GITHUB_API_URL=gh.url, GITHUB_APP_ID="4242", GITHUB_APP_PRIVATE_KEY_FILE=str(key),
               GITHUB_WEBHOOK_SECRET=SECRET, **QUICK)
    proc = None
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(port),
                 "--aws-port", str(aws_port), "--accounts", "1", "--workers", "1", "--state-dir", str(tmp / "state")],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)

        def healthy() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        _wait(healthy, timeout=BOOT_TIMEOUT_S, what="/healthz 200", proc=proc, log=log)
        yield SimpleNamespace(proc=proc, gh=gh, log=log, endpoint=f"http://127.0.0.1:{aws_port}", env=env)
    finally:
        if proc is not None:
            _stop(proc)
        gh.stop()


def cli(stack: SimpleNamespace, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "bootstrap.py", *args, "--endpoint-url", stack.endpoint],
                          cwd=ROOT, env={**stack.env, **env}, capture_output=True, text=True, timeout=90)


def requested(stack: SimpleNamespace) -> list[dict]:
    done = cli(stack, "replay", "--type", "WebhookRedeliveryRequested", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_start_up_names_the_app(stack):
    assert "GitHub App 4242 (gip-app): installation tokens per repository" in stack.log.read_text()


def test_failed_deliveries_are_recovered_by_the_schedule_and_by_the_cli(stack):
    gh: FakeGitHubApp = stack.gh
    on_app = samples.issue_payload(number=11, title="app hook", body=samples.NO_SNIPPET)
    on_repo = samples.issue_payload(number=12, title="repo hook", body=samples.NO_SNIPPET)
    for payload in (on_app, on_repo):
        gh.add_issue_from_payload(payload)
    # GIVEN two deliveries GitHub gave up on (our endpoint was down)
    app_failed = gh.record_delivery("issues", {**on_app, "installation": {"id": 77}}, status_code=502)
    repo_failed = gh.record_delivery("issues", on_repo, status_code=504, hook=REPO_HOOK)

    # WHEN the operator looks first: --dry-run lists the repository hook's one and changes nothing
    dry = cli(stack, "redeliver", "--dry-run", "--format", "json", "--redeliver-hooks", REPO_HOOK, GITHUB_TOKEN=PAT)
    assert dry.returncode == 0, dry.stderr
    hooks = {h["hook"]: h for h in json.loads(dry.stdout)["hooks"]}
    assert [r["guid"] for r in hooks[REPO_HOOK]["redelivered"]] == [repo_failed["guid"]]
    assert len(gh.attempts(repo_failed["guid"], REPO_HOOK)) == 1
    # ... then redelivers it
    done = cli(stack, "redeliver", "--redeliver-hooks", REPO_HOOK, GITHUB_TOKEN=PAT)
    assert done.returncode == 0, done.stderr
    assert f"{REPO_HOOK}: " in done.stdout and repo_failed["guid"] in done.stdout
    assert [a["status_code"] for a in gh.attempts(repo_failed["guid"], REPO_HOOK)] == [202, 504]

    # THEN the App hook's one is recovered too (by that command or the schedule), once
    _wait(lambda: gh.attempts(app_failed["guid"])[0]["status_code"] == 202, timeout=90,
          what="the scheduled sweep's redelivery", proc=stack.proc, log=stack.log)
    assert len(gh.attempts(app_failed["guid"])) == 2
    # ... both are in the log, once each, and both issues were received once
    history = {e["data"]["guid"]: e for e in requested(stack)}
    assert set(history) == {app_failed["guid"], repo_failed["guid"]}
    assert history[app_failed["guid"]]["data"]["hook"] == "app" and history[repo_failed["guid"]]["data"]["attempt"] == 1
    again = cli(stack, "redeliver", "--format", "json", "--redeliver-hooks", REPO_HOOK, GITHUB_TOKEN=PAT)
    assert again.returncode == 0 and all(h["redelivered"] == [] for h in json.loads(again.stdout)["hooks"])


def test_a_labelled_issue_gets_its_status_comment_with_an_installation_token(stack):
    if "token_for" not in inspect.getsource(client_mod):
        pytest.skip("GitHubClient does not take a Credentials yet (issue 19 changes client.py)")
    gh: FakeGitHubApp = stack.gh
    payload = {**samples.issue_payload(number=21, title="crash", body=samples.NO_SNIPPET), "installation": {"id": 77}}
    gh.add_issue_from_payload(payload)
    assert gh.deliver("issues", payload)["status_code"] == 202
    _wait(lambda: gh.comments(REPO, 21), timeout=120, what="the status comment", proc=stack.proc, log=stack.log)
    writes = [(m, p, kind) for m, p, kind in gh.auth_log if m == "POST" and p.endswith("/issues/21/comments")]
    assert writes and {kind for _, _, kind in writes} == {"installation"}
    assert gh.minted and set(gh.minted) == {77}


@pytest.mark.parametrize("key_text, message", [
    (None, "cannot read GITHUB_APP_PRIVATE_KEY_FILE"),
    ("not a key", "the GitHub App private key is not a PEM private key"),
])
def test_a_bad_key_at_start_up_is_one_line_and_exit_1(tmp_path, key_text, message):
    key = tmp_path / "app.pem"
    if key_text is not None:
        key.write_text(key_text)
    done = subprocess.run(
        [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(free_port()),
         "--aws-port", str(free_port()), "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, env=_env(GITHUB_APP_ID="4242", GITHUB_APP_PRIVATE_KEY_FILE=str(key)),
        capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1 and message in errors[0]
    assert "Traceback" not in done.stderr + done.stdout
