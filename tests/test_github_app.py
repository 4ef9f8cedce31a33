"""GitHub App authentication (gip.adapters.github.app) against the fake GitHub playing an App."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import jwt
import pytest
from moto import mock_aws

from gip.adapters.github import app as app_mod
from gip.adapters.github import client as client_mod
from gip.adapters.github import errors
from gip.adapters.github.app import (
    AppConfig,
    AppCredentials,
    AppNotInstalled,
    app_jwt,
    load_private_key,
)
from gip.adapters.github.client import GitHubClient, RequestsTransport
from gip.adapters.github.token import TokenSource, credentials_from_settings, load_app_config
from gip.config import Settings
from gip.errors import ConfigError, UsageError
from tests.fakes.clock import FakeTime
from tests.fakes.github_app import FakeGitHubApp

REPO = "octo/repo"


@pytest.fixture(autouse=True)
def _fresh_installations() -> Iterator[None]:
    app_mod._installations.clear()  # process-wide cache: each test starts from nothing
    yield
    app_mod._installations.clear()


@pytest.fixture
def t() -> FakeTime:
    return FakeTime(start=float(int(time.time())))


@pytest.fixture
def gh(t: FakeTime) -> Iterator[FakeGitHubApp]:
    server = FakeGitHubApp(app_id=4242, clock=t.clock, pat="ghp_side_by_side").start()
    server.install(REPO, 77)
    server.add_issue(REPO, 7, labels=["needs-reproduction"])
    try:
        yield server
    finally:
        server.stop()


def creds(gh: FakeGitHubApp, t: FakeTime, **kw: object) -> AppCredentials:
    config = AppConfig(str(kw.pop("app_id", gh.app_id)), str(kw.pop("key", gh.private_key_pem)))
    return AppCredentials(config, base_url=gh.url, transport=RequestsTransport(), clock=t.clock)


def app_client(gh: FakeGitHubApp, t: FakeTime, c: AppCredentials, repo: str) -> GitHubClient:
    """A client on the App's credentials: the client of issue 19 asks them per repository;
    before it, a zero-argument callable stands in for the one repository under test."""
    token = c if "token_for" in inspect.getsource(client_mod) else (lambda: c.token_for(repo))
    return GitHubClient(base_url=gh.url, token=token, sleep=t.sleep, clock=t.clock,  # type: ignore[arg-type]
                        rand=lambda: 1.0, write_interval_s=0, max_attempts=3)


def repo_call(gh: FakeGitHubApp, token: str | None) -> dict:
    return GitHubClient(base_url=gh.url, token=token, max_attempts=1).get_issue(REPO, 7)


def test_the_jwt_is_rs256_backdated_short_and_names_the_app(gh, t):
    token = app_jwt("4242", load_private_key(gh.private_key_pem), now=t.now)
    claims = jwt.decode(token, gh.public_key, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["iss"] == "4242"
    assert claims["iat"] == int(t.now) - 60
    assert 0 < claims["exp"] - t.now <= 600


def test_the_jwt_is_re_signed_before_it_expires_and_an_expired_one_is_refused(gh, t):
    c = creds(gh, t)
    first = c.jwt()
    t.now += 470  # 70 s left: still used
    assert c.jwt() == first
    t.now += 20  # less than a minute left: re-signed
    second = c.jwt()
    assert second != first
    t.now += 60  # the first one is past its exp now
    app = GitHubClient(base_url=gh.url, token=first, max_attempts=1)
    with pytest.raises(errors.Unauthorized):
        app.request("GET", "/app")
    assert GitHubClient(base_url=gh.url, token=second, max_attempts=1).request("GET", "/app")["id"] == 4242


def test_an_installation_token_is_minted_once_and_works_on_the_repository(gh, t):
    c = creds(gh, t)
    first = c.token_for(REPO)
    assert c.token_for(REPO) == first and gh.minted == [77]  # cached
    assert repo_call(gh, first)["number"] == 7
    assert gh.auth_kinds() == ["jwt", "jwt", "installation"]  # installation lookup, mint, call
    assert c.rate_key(REPO) == "installation-77"
    assert "ghs_" not in repr(c) and gh.private_key_pem not in repr(c)


def test_expiry_re_mints_five_minutes_before_expires_at(gh, t):
    c = creds(gh, t)
    first = c.token_for(REPO)
    t.now += 3600 - 301  # 5 min + 1 s before expires_at: still good
    assert c.token_for(REPO) == first
    t.now += 2  # inside the margin: a new one, and it works
    second = c.token_for(REPO)
    assert second != first and gh.minted == [77, 77]
    assert repo_call(gh, second)["number"] == 7
    t.now += 600  # the first one has expired at GitHub too
    with pytest.raises(errors.Unauthorized):
        repo_call(gh, first)


def test_a_401_re_mints_once_after_invalidate(gh, t):
    c = creds(gh, t)
    old = c.token_for(REPO)
    gh.revoke_tokens()  # GitHub stops honouring it before expires_at
    with pytest.raises(errors.Unauthorized):
        repo_call(gh, c.token_for(REPO))
    c.invalidate(REPO)  # what the client does after a 401
    new = c.token_for(REPO)
    assert new != old and gh.minted == [77, 77]
    assert repo_call(gh, new)["number"] == 7


def test_the_webhook_installation_id_saves_the_lookup_and_a_stale_one_is_looked_up_again(gh, t):
    app_mod.note_installation(REPO, 77)
    c = creds(gh, t)
    c.token_for(REPO)
    assert not any(p.endswith("/installation") for _, p, _ in gh.auth_log)
    gh.install(REPO, 78)  # uninstalled and installed again: the id an old event carries is gone
    c.invalidate(REPO)
    assert c.token_for(REPO) and gh.minted == [77, 78]  # mint 404 -> lookup -> mint
    assert c.rate_key(REPO) == "installation-78"


def test_a_repository_without_the_app_raises_app_not_installed(gh, t):
    c = creds(gh, t)
    with pytest.raises(AppNotInstalled, match="not installed on stranger/repo"):
        c.token_for("stranger/repo")
    assert gh.minted == []


def test_a_token_of_another_installation_is_refused(gh, t):
    gh.install("other/repo", 99)
    gh.add_issue("other/repo", 1)
    token = creds(gh, t).token_for("other/repo")
    with pytest.raises(errors.NotFound):
        repo_call(gh, token)


def test_app_and_pat_side_by_side(gh, t):
    """The PAT still works for repository calls while the App mints its own tokens."""
    installation = creds(gh, t).token_for(REPO)
    assert repo_call(gh, "ghp_side_by_side")["number"] == 7
    assert repo_call(gh, installation)["number"] == 7
    assert gh.auth_kinds("GET")[-2:] == ["pat", "installation"]
    with pytest.raises(errors.Unauthorized):  # the PAT is no App JWT
        GitHubClient(base_url=gh.url, token="ghp_side_by_side", max_attempts=1).request("GET", "/app")


def test_a_bad_key_and_an_unknown_app_id_are_one_clear_config_error(gh, t):
    with pytest.raises(ConfigError, match="not a PEM private key") as info:
        creds(gh, t, key="-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----")
    assert "nope" not in str(info.value)
    with pytest.raises(ConfigError, match="numeric id"):
        creds(gh, t, app_id="my-app")
    with pytest.raises(ConfigError, match=r"GitHub refused GitHub App 999 .*Integration not found"):
        creds(gh, t, app_id="999").check()
    other_key = FakeGitHubApp().private_key_pem  # a valid key, but not this App's
    with pytest.raises(ConfigError, match="HTTP 401"):
        creds(gh, t, key=other_key).check()
    assert creds(gh, t).check()["id"] == 4242


# ---------------------------------------------------------------- settings


def settings(gh: FakeGitHubApp | None = None) -> Settings:
    return Settings.for_prefix("test", github_api_url=gh.url if gh else "http://127.0.0.1:9")


def test_local_settings_read_the_key_file(gh, tmp_path):
    key = tmp_path / "key.pem"
    key.write_text(gh.private_key_pem)
    config = load_app_config(settings(), env={"GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY_FILE": str(key)})
    assert config == AppConfig("4242", gh.private_key_pem)
    assert gh.private_key_pem not in repr(config)
    with pytest.raises(ConfigError, match="neither GITHUB_APP_PRIVATE_KEY"):
        load_app_config(settings(), env={"GITHUB_APP_ID": "4242"})
    with pytest.raises(ConfigError, match="cannot read GITHUB_APP_PRIVATE_KEY_FILE"):
        load_app_config(settings(), env={"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": str(tmp_path / "no")})
    assert load_app_config(settings(), env={}) is None


def test_the_app_wins_over_a_token_with_a_notice(gh, caplog):
    env = {"GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem, "GITHUB_TOKEN": "ghp_x"}
    with caplog.at_level(logging.WARNING):
        chosen = credentials_from_settings(settings(gh), env=env)
    assert isinstance(chosen, AppCredentials)
    assert "the App is used" in caplog.text and "ghp_x" not in caplog.text
    assert gh.private_key_pem.splitlines()[1] not in caplog.text
    token_only = credentials_from_settings(settings(gh), env={"GITHUB_TOKEN": "ghp_x"})
    assert isinstance(token_only, TokenSource) and token_only.token_for(REPO) == "ghp_x"


def test_an_unknown_app_id_fails_at_start_up_with_a_config_error(gh):
    env = {"GITHUB_APP_ID": "31337", "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem}
    with pytest.raises(ConfigError, match="GitHub refused GitHub App 31337"):
        credentials_from_settings(settings(gh), env=env)


@pytest.fixture
def sm() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_deployed_the_app_comes_from_its_secret(gh, sm):
    lam = {"AWS_LAMBDA_FUNCTION_NAME": "test-gatekeeper"}
    s = settings(gh)
    sm.create_secret(Name=s.github_app_secret_id, SecretString="unset")
    assert load_app_config(s, env=lam, secrets_client=lambda: sm) is None  # placeholder: the PAT
    sm.put_secret_value(SecretId=s.github_app_secret_id,
                        SecretString=json.dumps({"app_id": 4242, "private_key": gh.private_key_pem}))
    assert load_app_config(s, env=lam, secrets_client=lambda: sm) == AppConfig("4242", gh.private_key_pem)
    sm.put_secret_value(SecretId=s.github_app_secret_id, SecretString="not json")
    with pytest.raises(ConfigError, match="is not") as info:
        load_app_config(s, env=lam, secrets_client=lambda: sm)
    assert "not json" not in str(info.value)


def test_the_client_uses_installation_tokens_per_repository(gh, t):
    """Through GitHubClient once it takes a Credentials (issue 19): writes with the token."""
    c = creds(gh, t)
    client = GitHubClient(base_url=gh.url, token=c, max_attempts=2,  # type: ignore[arg-type]
                          sleep=t.sleep, clock=t.clock)  # the write spacing and the retry on the fake clock
    if "token_for" not in inspect.getsource(client_mod):
        pytest.skip("GitHubClient does not take a Credentials yet (issue 19 changes client.py)")
    client.create_comment(REPO, 7, "hello")
    gh.fail_next(401, method="POST", path_contains="/comments")  # rotated under our feet
    client.create_comment(REPO, 7, "again")
    assert [c["body"] for c in gh.comments(REPO, 7)] == ["hello", "again"]
    assert [kind for _, p, kind in gh.auth_log if p.endswith("/comments")] == ["installation"] * 3  # (2nd: the 401)
    assert len(gh.minted) == 2  # the 401 re-minted once




# ---------------------------------------------------------------- webhook -> gatekeeper


def test_a_webhook_from_an_app_installation_carries_its_id():
    from gip.domain.delivery import Delivery
    from gip.domain.qualify import Receive, Rules, qualify

    payload = {"action": "labeled", "label": {"name": "needs-reproduction"}, "installation": {"id": 77},
               "repository": {"full_name": REPO}, "sender": {"login": "mia", "type": "User"},
               "issue": {"number": 7, "title": "t", "state": "open", "labels": [{"name": "needs-reproduction"}]}}
    delivery = Delivery(event="issues", delivery_id="g-1", payload=payload)
    decision = qualify(delivery, Rules(required_labels=["needs-reproduction"]))
    assert isinstance(decision, Receive) and decision.data["installation_id"] == 77
    del payload["installation"]  # a repository webhook: no field
    decision = qualify(delivery, Rules(required_labels=["needs-reproduction"]))
    assert isinstance(decision, Receive) and "installation_id" not in decision.data


@pytest.mark.parametrize("installed", [True, False])
def test_the_gatekeeper_uses_the_events_installation_or_skips_app_not_installed(shared_core, gh, t, installed):
    from tests.conftest import empty_tables
    from tests.test_gatekeeper import LABEL, NUMBER, make_gatekeeper, receive
    from tests.test_gatekeeper import REPO as GK_REPO

    core = empty_tables(shared_core)
    if installed:
        gh.install(GK_REPO, 55)
    gh.add_issue(GK_REPO, NUMBER, labels=[LABEL])
    gh.set_permission(GK_REPO, "maintainer-mia", "write")
    c = creds(gh, t)
    gatekeeper = make_gatekeeper(core, gh, t)
    gatekeeper.github = app_client(gh, t, c, GK_REPO)
    event = receive(core, installation_id=55)
    outcome = gatekeeper.handle(event)
    last = core.store.read(f"issue-{GK_REPO}#{NUMBER}")[-1]
    if installed:
        assert outcome == "IssueQueued" and gh.minted == [55]
        assert not any(p.endswith("/installation") for _, p, _ in gh.auth_log)  # from the event
        assert set(gh.auth_kinds("GET")) == {"installation"}
        assert gh.reactions(GK_REPO, NUMBER) == []  # the 👀 is the notifier's (issue 18)
    else:
        assert outcome == "IssueSkipped" and last["data"]["reason"] == "app_not_installed"
        assert gh.minted == [] and gh.reactions(GK_REPO, NUMBER) == []


# ---------------------------------------------------------------- deploy flags


class Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    notice = info


def test_deploy_stores_the_app_secret_and_the_hooks_and_never_prints_the_key(gh, tmp_path, sm, capsys, monkeypatch):
    from gip.cli import github_app
    from gip.cli.deploy import DeployOptions
    from gip.cli.main import build_parser
    from gip.store.dynamo_ops import DynamoRedeliveryMarks

    key = tmp_path / "key.pem"
    key.write_text(gh.private_key_pem)
    args = build_parser().parse_args(["deploy", "--org", "o-abcdefghij", "--prefix", "t1", "--github-app-id", "4242",
                                      "--github-app-key-file", str(key), "--redeliver-hooks", "repos/o/r/hooks/9",
                                      "--github-api-url", gh.url])
    assert gh.private_key_pem not in repr(args)
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(TableName="t1-pool", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    options = DeployOptions(org_id="o-abcdefghij", prefix="t1", region="us-east-1")
    reporter = Reporter()
    deployed = []
    out = github_app.deploying(args, options, reporter,
                               lambda o, r: deployed.append(o) or {"PoolTable": "t1-pool", "WebhookUrl": "u"})
    assert [o.bot_login for o in deployed] == ["gip-app[bot]"] and out["WebhookUrl"] == "u"
    doc = json.loads(sm.get_secret_value(SecretId="t1/github-app")["SecretString"])
    assert doc == {"app_id": 4242, "private_key": gh.private_key_pem}
    assert DynamoRedeliveryMarks("t1-pool", region="us-east-1").hooks() == ["repos/o/r/hooks/9"]
    printed = "\n".join(reporter.lines) + capsys.readouterr().out
    assert "stored GitHub App 4242 in t1/github-app" in printed and "PRIVATE KEY" not in printed
    assert load_app_config(Settings.for_prefix("t1"), env={"AWS_LAMBDA_FUNCTION_NAME": "f"},
                           secrets_client=lambda: sm) == AppConfig("4242", gh.private_key_pem)


def test_deploy_flags_are_checked_before_anything_is_deployed(gh, tmp_path, capsys, monkeypatch):
    from gip.cli import github_app
    from gip.cli.main import build_parser

    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["deploy", "--org", "o-abcdefghij", "--github-app-key-file", str(bad)])
    assert info.value.code == 2 and "not a PEM private key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "--org", "o-abcdefghij", "--github-app-key-file", str(tmp_path / "none")])
    assert "cannot read" in capsys.readouterr().err
    never = lambda o, r: pytest.fail("deployed")  # noqa: E731
    for argv, message in ((["--github-app-id", "1"], "go together"),
                          (["--redeliver-hooks", "users/u/hooks/1"], "not a hook")):
        args = build_parser().parse_args(["deploy", "--org", "o-abcdefghij", *argv])
        with pytest.raises(UsageError, match=message):
            github_app.deploying(args, SimpleNamespace(dry_run=False), Reporter(), never)
    key = tmp_path / "other.pem"
    key.write_text(FakeGitHubApp().private_key_pem)  # a key, but not this App's
    args = build_parser().parse_args(["deploy", "--org", "o-abcdefghij", "--github-app-id", "4242",
                                      "--github-app-key-file", str(key), "--github-api-url", gh.url])
    with pytest.raises(ConfigError, match="GitHub refused GitHub App 4242"):
        github_app.deploying(args, SimpleNamespace(dry_run=False, bot_login=""), Reporter(), never)


def test_a_broken_app_deployed_is_one_config_error_line_per_call_never_a_traceback(gh, sm, caplog):
    from gip.adapters.github.token import BrokenCredentials

    s = settings(gh)
    sm.create_secret(Name=s.github_app_secret_id, SecretString=json.dumps({"app_id": 31337, "private_key": gh.private_key_pem}))
    env = {"AWS_LAMBDA_FUNCTION_NAME": "test-notifier"}
    with caplog.at_level(logging.ERROR):
        broken = credentials_from_settings(s, env=env)
    assert isinstance(broken, BrokenCredentials)
    assert [r.getMessage() for r in caplog.records] == [
        "ConfigError: GitHub refused GitHub App 31337 (HTTP 401: Integration not found)"]
    assert all(r.exc_info is None for r in caplog.records)
    with pytest.raises(ConfigError, match="31337"):
        broken.token_for(REPO)


def test_local_start_up_names_the_app_or_says_one_line(gh):
    from gip.adapters.github.token import check_app

    good = {"GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem}
    app = check_app(settings(gh), env=good)
    assert app is not None and app.bot_login == "gip-app[bot]"
    assert app.line == "GitHub App 4242 (gip-app): installation tokens per repository"
    assert check_app(settings(gh), env={}) is None
    with pytest.raises(ConfigError) as info:
        check_app(settings(gh), env={**good, "GITHUB_APP_ID": "4243"})
    assert "\n" not in str(info.value) and "4243" in str(info.value)


def test_the_notifier_stops_on_a_repository_without_the_app(shared_core, gh, t):
    """An app_not_installed skip reaches the notifier too: no retry loop, nothing written."""
    from tests.conftest import empty_tables
    from tests.test_notifier import Run, make_notifier

    core = empty_tables(shared_core)
    c = creds(gh, t)
    n = make_notifier(core, gh, t)
    n.github = app_client(gh, t, c, "octo-org/hello-world")
    run = Run(core)
    # run 1 without a status record: there is no comment to find, so GitHub is not even asked
    assert n.handle(run.record("IssueSkipped", reason="app_not_installed")) == "no_status_comment"
    assert gh.minted == [] and gh.writes() == []
    Run(core, delivery="d-2").record("IssueSkipped", reason="app_not_installed")  # run 2: a listing
    assert n.handle(core.store.read(run.events[0]["stream"])[-1]) == "issue_gone"
    assert gh.minted == [] and gh.writes() == []


def test_the_lambda_bundle_vendors_pyjwt_with_cryptography():
    from gip.cli import packaging

    assert any(r.startswith("PyJWT[crypto]") for r in packaging.requirements(kind="lambda"))


def test_the_worker_never_sees_the_app():
    """Locally a worker's environment has no GITHUB_*; in AWS only the three GitHub-calling
    functions may read the App's secret, and the worker template never names it."""
    import json as _json
    from pathlib import Path

    from gip.local.gaps import load_template
    from gip.local.workers import worker_environment

    env = worker_environment({"GITHUB_APP_SECRET_ID": "s", "EVENTS_TABLE": "e"}, name="w", endpoint="http://x",
                             region="us-east-1", credentials={}, parent={"GITHUB_APP_PRIVATE_KEY": "k", "PATH": "/bin"})
    assert "EVENTS_TABLE" in env and not any(k.startswith("GITHUB_") for k in env)
    root = Path(__file__).resolve().parent.parent
    mgmt = load_template((root / "templates" / "management.yaml").read_text())
    readers = sorted(name for name, res in mgmt["Resources"].items() if res["Type"] == "AWS::IAM::Role"
                     and "GithubAppSecret" in _json.dumps(res))
    assert readers == ["GatekeeperRole", "NotifierRole", "RedeliverRole"]
    assert "github-app" not in (root / "templates" / "worker.yaml").read_text()
    assert "GITHUB_APP" not in "".join(p.read_text() for p in (root / "worker").rglob("*.py"))


def test_client_from_settings_chooses_the_app_then_the_token_then_nothing(gh, monkeypatch):
    from gip.adapters.github.token import client_from_settings

    monkeypatch.delenv("GITHUB_APP_ID", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_side_by_side")
    pat_client = client_from_settings(settings(gh))
    assert pat_client.get_issue(REPO, 7)["number"] == 7 and gh.auth_kinds()[-1] == "pat"
    monkeypatch.setenv("GITHUB_APP_ID", str(gh.app_id))
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", gh.private_key_pem)
    app_client = client_from_settings(settings(gh))
    token = getattr(app_client, "credentials", getattr(app_client, "_token", None))
    assert isinstance(token, AppCredentials)  # the client of issue 19 asks it per repository
    monkeypatch.delenv("GITHUB_APP_ID")
    monkeypatch.delenv("GITHUB_TOKEN")
    with mock_aws():  # no secret either: local print mode
        assert client_from_settings(settings(gh)) is None
