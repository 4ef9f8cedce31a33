"""The fake GitHub refuses what GitHub's OpenAPI description refuses, and the test then fails."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from tests.fakes import github_openapi
from tests.fakes.github_server import FakeGitHub, OpenAPIViolations

AUTH = {"Authorization": "Bearer test-token"}
pytest_plugins = ["pytester"]
PREFIXES = pytest.mark.parametrize("prefix", ["", "/api/v3"], ids=["github.com", "ghes"])


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    """A fake that expects invalid requests (each test asserts what was recorded)."""
    server = FakeGitHub(token="test-token", login="gip-bot").start()
    server.allow_violations = True
    server.add_issue("octo/repo", 7)
    try:
        yield server
    finally:
        server.stop()


def send(gh: FakeGitHub, method: str, path: str, body: Any = None, *, data: bytes | None = None
         ) -> requests.Response:
    return requests.request(method, gh.url + path, json=body, data=data, headers=AUTH, timeout=5)


def only(gh: FakeGitHub) -> github_openapi.Violation:
    assert len(gh.violations) == 1, gh.violations
    return gh.violations[0]


@PREFIXES
def test_a_valid_request_passes_and_is_routed(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "POST", f"{prefix}/repos/octo/repo/issues/7/comments", {"body": "hello"})
    assert response.status_code == 201
    assert gh.violations == []
    assert [c["body"] for c in gh.comments("octo/repo", 7)] == ["hello"]


@PREFIXES
def test_an_unknown_route_is_a_404(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "GET", f"{prefix}/repos/octo/repo/issuez/7")
    assert (response.status_code, response.json()["message"]) == (404, "Not Found")
    v = only(gh)
    assert (v.status, v.method, v.path) == (404, "GET", "/repos/octo/repo/issuez/7")
    assert "no path in GitHub's description" in v.message


@PREFIXES
def test_a_wrong_method_is_a_404_naming_the_methods_there_are(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "PUT", f"{prefix}/repos/octo/repo/issues/7/comments", {"body": "x"})
    assert response.status_code == 404
    assert only(gh).message == "/repos/{owner}/{repo}/issues/{issue_number}/comments has no PUT (only ['GET', 'POST'])"
    assert gh.comments("octo/repo", 7) == []


@PREFIXES
def test_a_non_integer_issue_number_is_a_404(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "GET", f"{prefix}/repos/octo/repo/issues/seven")
    assert response.status_code == 404
    assert only(gh).message == "path parameter issue_number: 'seven' is not of type 'integer'"


@PREFIXES
def test_a_body_without_a_required_field_is_a_422(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "POST", f"{prefix}/repos/octo/repo/issues/7/comments", {"text": "hello"})
    assert (response.status_code, response.json()["message"]) == (422, "Validation Failed")
    assert only(gh).message == "body: 'body' is a required property"
    assert gh.comments("octo/repo", 7) == []  # refused before routing


def test_a_missing_required_body_is_a_422(gh: FakeGitHub) -> None:
    assert send(gh, "POST", "/repos/octo/repo/issues/7/comments").status_code == 422
    assert only(gh).message == "a request body is required"


@PREFIXES
def test_labels_as_a_string_is_a_422(gh: FakeGitHub, prefix: str) -> None:
    response = send(gh, "POST", f"{prefix}/repos/octo/repo/issues/7/labels", {"labels": "bug"})
    assert response.status_code == 422
    assert only(gh).message == "body: labels: 'bug' is not of type 'array'"
    assert gh.labels("octo/repo", 7) == []


def test_a_reaction_github_does_not_have_is_a_422(gh: FakeGitHub) -> None:
    assert send(gh, "POST", "/repos/octo/repo/issues/7/reactions", {"content": "wave"}).status_code == 422
    assert "'wave' is not one of" in only(gh).message


def test_a_body_that_is_not_json_is_a_400(gh: FakeGitHub) -> None:
    response = send(gh, "POST", "/repos/octo/repo/issues/7/comments", data=b'{"body": ')
    assert (response.status_code, response.json()["message"]) == (400, "Problems parsing JSON")
    assert only(gh).status == 400


def test_declared_query_parameters_are_checked_and_unknown_ones_ignored(gh: FakeGitHub) -> None:
    assert send(gh, "GET", "/repos/octo/repo/issues/7/comments?per_page=100&utm=x").status_code == 200
    assert gh.violations == []
    assert send(gh, "GET", "/repos/octo/repo/issues/7/comments?per_page=many").status_code == 422
    assert only(gh).message == "query parameter per_page: 'many' is not of type 'integer'"


def test_an_encoded_slash_in_a_label_name_is_one_path_parameter(gh: FakeGitHub) -> None:
    gh.set_labels("octo/repo", 7, ["area/x"])
    assert send(gh, "DELETE", "/repos/octo/repo/issues/7/labels/area%2Fx").status_code == 200
    assert gh.violations == [] and gh.labels("octo/repo", 7) == []


def test_stop_fails_with_every_violation_unless_the_test_opts_out() -> None:
    server = FakeGitHub(token="test-token").start()
    send(server, "GET", "/nowhere")
    send(server, "GET", "/repos/octo/repo/issues/x")
    with pytest.raises(OpenAPIViolations) as caught:
        server.stop()
    assert len(caught.value.violations) == 2
    assert "404 GET /nowhere" in str(caught.value) and "404 GET /repos/octo/repo/issues/x" in str(caught.value)
    quiet = FakeGitHub(token="test-token").start()
    quiet.allow_violations = True
    send(quiet, "GET", "/nowhere")
    quiet.stop()  # no raise
    assert len(quiet.violations) == 1


def test_a_subclass_route_is_not_reached_by_an_invalid_request() -> None:
    class Everything(FakeGitHub):
        def route(self, method: str, path: str, query: dict[str, str], doc: Any,
                  headers: Mapping[str, str]) -> tuple[int, dict[str, str], Any]:
            return 200, {}, {"routed": path}

    with Everything(token="test-token").start() as server:
        server.allow_violations = True
        assert send(server, "GET", "/app").json() == {"routed": "/app"}  # in the description
        assert send(server, "GET", "/app/nonsense").status_code == 404
        assert [v.path for v in server.violations] == ["/app/nonsense"]


def test_a_missing_description_fails_loudly_in_one_line(tmp_path: Any) -> None:
    with pytest.raises(github_openapi.DescriptionMissing) as caught:
        github_openapi.load(tmp_path / "absent.json")
    message = str(caught.value)
    assert "\n" not in message and "make openapi" in message and str(tmp_path) in message


def test_the_env_var_names_the_description(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(github_openapi.ENV, str(tmp_path / "elsewhere.json"))
    assert github_openapi.description_path() == tmp_path / "elsewhere.json"
    monkeypatch.delenv(github_openapi.ENV)
    monkeypatch.setattr(github_openapi, "DEFAULT", tmp_path / "cache.json")
    (tmp_path / "cache.json").write_text("{}")
    assert github_openapi.description_path() == tmp_path / "cache.json"


def test_the_fixture_fails_a_test_that_sent_an_invalid_request_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import requests
        from tests.fakes.fixtures import github_server  # noqa: F401

        def send(gh):
            return requests.get(gh.url + "/repos/o/r/issues/x", headers={"Authorization": "Bearer test-token"})

        def test_sends_an_invalid_request(github_server):
            assert send(github_server).status_code == 404

        def test_opts_out(github_server):
            github_server.allow_violations = True
            assert send(github_server).status_code == 404
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_sends_an_invalid_request*",
                                 "*path parameter issue_number: 'x' is not of type 'integer'*"])


def test_a_git_worktree_without_the_description_uses_the_main_checkouts(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    relative = github_openapi.DEFAULT.relative_to(github_openapi.DEFAULT.parents[3])
    worktree, main = tmp_path / "wt", tmp_path / "main"
    gitdir = main / ".git" / "worktrees" / "wt"
    gitdir.mkdir(parents=True)
    (gitdir / "commondir").write_text("../..\n")
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {gitdir}\n")
    monkeypatch.delenv(github_openapi.ENV, raising=False)
    monkeypatch.setattr(github_openapi, "DEFAULT", worktree / relative)
    assert github_openapi.description_path() == worktree / relative  # nowhere: the worktree's path
    (main / relative).parent.mkdir(parents=True)
    (main / relative).write_text("{}")
    assert github_openapi.description_path() == main / relative
    (worktree / relative).parent.mkdir(parents=True)
    (worktree / relative).write_text("{}")
    assert github_openapi.description_path() == worktree / relative


def test_make_test_fetches_the_pinned_description_and_points_the_tests_at_it() -> None:
    import re
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^OPENAPI_VERSION := (\S+)$", makefile, re.MULTILINE)[1] == github_openapi.VERSION  # type: ignore[index]
    assert re.search(r"^test:(?!.*:=).*\bopenapi\b", makefile, re.MULTILINE)
    assert re.search(r"^test: export GITHUB_OPENAPI := \$\(abspath \$\(OPENAPI_DIR\)/api\.github\.com\.json\)$",
                     makefile, re.MULTILINE)
    assert "npm pack" in makefile and "package/generated/api.github.com.json" in makefile
