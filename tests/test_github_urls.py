"""Issue 19 §3: GitHub Enterprise Server when deployed (--github-api-url, the template, /api/v3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gip.adapters.github.client import GitHubClient
from gip.adapters.github.urls import api_url_arg, normalize_api_url
from gip.cli import deploy
from gip.local.gaps import load_template
from tests.fakes import fixtures
from tests.fakes.clock import FakeTime

github_server = fixtures.github_server
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "management.yaml"


@pytest.mark.parametrize(("given", "used", "noticed"), [
    ("https://api.github.com", "https://api.github.com", False),
    ("https://api.github.com/", "https://api.github.com", False),
    ("https://github.com", "https://api.github.com", True),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/v3", False),
    ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/v3", False),
    ("https://ghe.example.com", "https://ghe.example.com/api/v3", True),
    ("https://ghe.example.com:8443/api", "https://ghe.example.com:8443/api/v3", True),
    ("https://octo.ghe.com", "https://api.octo.ghe.com", True),
    ("https://api.octo.ghe.com", "https://api.octo.ghe.com", False),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080", False),
    ("http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080/api/v3", False),
])
def test_api_urls_are_kept_or_corrected_with_a_notice(given: str, used: str, noticed: bool) -> None:
    url, notice = normalize_api_url(given)
    assert url == used and bool(notice) == noticed


@pytest.mark.parametrize("given", [
    "http://ghe.example.com/api/v3", "https://ghe.example.com/api/v4", "https://ghe.example.com/v3",
    "https://api.github.com/v3", "ftp://ghe.example.com", "not a url", "",
    "https://user:pw@ghe.example.com/api/v3",
])
def test_anything_else_is_refused_in_one_line(given: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_api_url(given)
    assert "\n" not in str(info.value) and "--github-api-url" in str(info.value)


def test_deploy_flag_corrects_with_a_notice_or_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bootstrap")
    deploy.add_arguments(parser)
    args = parser.parse_args(["--org", "o-abcdefghij", "--github-api-url", "https://ghe.example.com"])
    assert args.github_api_url == "https://ghe.example.com/api/v3"
    assert "notice: --github-api-url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as code:
        parser.parse_args(["--org", "o-abcdefghij", "--github-api-url", "https://ghe.example.com/x"])
    assert code.value.code == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert error.startswith("bootstrap: error: argument --github-api-url: ") and "HOST/api/v3" in error
    assert api_url_arg("https://api.github.com") == "https://api.github.com"


def _env(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]["Environment"]["Variables"]


def test_every_function_holding_the_token_gets_the_api_url_and_the_rate_gate() -> None:
    mgmt = load_template(TEMPLATE.read_text())
    holders = [name for name, res in mgmt["Resources"].items()
               if res["Type"] == "AWS::Lambda::Function"
               and "GITHUB_TOKEN_SECRET_ID" in res["Properties"].get("Environment", {}).get("Variables", {})]
    assert sorted(holders) == ["GatekeeperFunction", "NotifierFunction"]
    for name in holders:
        assert _env(mgmt, name)["GITHUB_API_URL"] == {"Ref": "GitHubApiUrl"}
    assert mgmt["Parameters"]["GitHubApiUrl"]["Default"] == "https://api.github.com"
    mapping = mgmt["Resources"]["GatekeeperMapping"]["Properties"]
    assert (mapping["BatchSize"], mapping["ScalingConfig"]) == (1, {"MaximumConcurrency": 5})  # issue 18
    publisher = mgmt["Resources"]["PublisherMapping"]["Properties"]
    assert publisher["MaximumBatchingWindowInSeconds"] == 0  # a stream record is published at once
    params = deploy._parameters(
        deploy.DeployOptions(org_id="o-abcdefghij", github_api_url="https://ghe.example.com/api/v3"),
        bucket="b", external_id="x",
        artifacts={"lambda": SimpleNamespace(key="l.zip"), "worker": SimpleNamespace(key="w.zip")})
    assert params["management.yaml"]["GitHubApiUrl"] == "https://ghe.example.com/api/v3"


def test_the_client_works_against_ghes_paths_under_api_v3(github_server) -> None:
    gh, t = github_server, FakeTime()
    gh.add_issue("octo/repo", 7, labels=["needs-reproduction"])
    url, notice = normalize_api_url(gh.url + "/api/v3")
    assert notice is None
    client = GitHubClient(base_url=url, token="test-token", sleep=t.sleep, clock=t.clock)
    assert client.get_issue("octo/repo", 7)["number"] == 7
    client.create_comment("octo/repo", 7, "hello")
    comments = client.list_comments("octo/repo", 7)
    assert [c["body"] for c in comments] == ["hello"]
    assert gh.requests and all(r.raw_path.startswith("/api/v3/") for r in gh.requests)
