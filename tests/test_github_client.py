"""GitHub client: pure request/response halves with plain values, the shell against FakeGitHub."""

from __future__ import annotations

import json
import socket

import pytest

from gip import errors as core_errors
from gip.adapters.github import errors
from gip.adapters.github.client import (
    GitHubClient,
    Permission,
    backoff,
    build_request,
    decode_response,
    next_link,
    repo_path,
    retry_after,
)
from tests.fakes import fixtures
from tests.fakes.clock import FakeTime
from tests.fakes.github_server import FakeGitHub

github_server = fixtures.github_server
NOW = 1_700_000_000.0


def make_client(gh: FakeGitHub, t: FakeTime, **kw: object) -> GitHubClient:
    opts: dict = dict(base_url=gh.url, token="test-token", sleep=t.sleep, clock=t.clock,
                      rand=lambda: 1.0, write_interval_s=0.0)
    opts.update(kw)
    return GitHubClient(**opts)


# ---------------------------------------------------------------- pure: requests


def test_request_joins_ghes_base_and_carries_token_but_repr_hides_it():
    req = build_request("get", "/repos/o/r/issues/1", base_url="https://ghe.example/api/v3/",
                        token="ghp_secret")
    assert req.method == "GET"
    assert req.url == "https://ghe.example/api/v3/repos/o/r/issues/1"
    assert req.headers["Authorization"] == "Bearer ghp_secret"
    assert req.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert "ghp_secret" not in repr(req)


def test_request_encodes_json_body_and_params():
    req = build_request("POST", "/x", base_url="https://api.github.com", token=None,
                        json_body={"body": "hi"}, params={"per_page": 100})
    assert req.url == "https://api.github.com/x?per_page=100"
    assert json.loads(req.body or b"") == {"body": "hi"}
    assert "Authorization" not in req.headers


def test_request_refuses_to_send_the_token_to_another_host():
    with pytest.raises(errors.Invalid):
        build_request("GET", "https://evil.example/steal", base_url="https://api.github.com",
                      token="t")


@pytest.mark.parametrize("repo", ["../etc", "o/r/../x", "o", "o/r?x=1", "o/r#1"])
def test_repo_path_rejects_anything_but_owner_slash_name(repo):
    with pytest.raises(errors.Invalid):
        repo_path(repo)


# ---------------------------------------------------------------- pure: responses


def test_2xx_decodes_json_and_204_is_none():
    assert decode_response(200, {}, b'{"a": 1}', now=NOW) == {"a": 1}
    assert decode_response(204, {}, b"", now=NOW) is None


@pytest.mark.parametrize(("status", "error"), [
    (404, errors.NotFound), (410, errors.NotFound), (401, errors.Unauthorized),
    (422, errors.Invalid), (400, errors.Invalid), (500, errors.ServerError),
    (502, errors.ServerError), (403, errors.Forbidden),
])
def test_error_statuses_raise_typed_errors(status, error):
    with pytest.raises(error) as info:
        decode_response(status, {}, b'{"message": "nope"}', now=NOW)
    assert info.value.status == status
    assert isinstance(info.value, core_errors.GipError)


def test_not_found_is_also_the_core_not_found():
    with pytest.raises(core_errors.NotFound):
        decode_response(404, {}, b"{}", now=NOW)


def test_403_with_retry_after_is_rate_limited_for_that_long():
    with pytest.raises(errors.RateLimited) as info:
        decode_response(403, {"retry-after": "7"}, b"{}", now=NOW)
    assert info.value.retry_after == 7


def test_exhausted_primary_limit_waits_until_reset():
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)}
    with pytest.raises(errors.RateLimited) as info:
        decode_response(403, headers, b"{}", now=NOW)
    assert info.value.retry_after == 31  # one second of margin: reset is whole seconds


def test_secondary_limit_without_headers_waits_a_minute():
    with pytest.raises(errors.RateLimited) as info:
        decode_response(403, {}, b'{"message": "You have exceeded a secondary rate limit"}', now=NOW)
    assert info.value.retry_after == 60
    with pytest.raises(errors.RateLimited):
        decode_response(429, {}, b"", now=NOW)


def test_retry_after_accepts_an_http_date():
    assert retry_after({"Retry-After": "Tue, 14 Nov 2023 22:13:20 GMT"}, now=NOW - 20) == 20


def test_next_link_finds_rel_next_only():
    link = '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"'
    assert next_link({"Link": link}) == "https://api.github.com/x?page=2"
    assert next_link({"link": '<https://x/?page=1>; rel="prev"'}) is None
    assert next_link({}) is None


def test_backoff_grows_exponentially_up_to_the_cap():
    assert [backoff(a, base_s=0.5, cap_s=8, rand=1.0) for a in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert backoff(3, base_s=0.5, cap_s=8, rand=0.25) == 1.0


# ---------------------------------------------------------------- shell against the fake


def test_403_with_retry_after_then_success(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 7)
    gh.fail_next(403, 1, {"Retry-After": "3"})
    issue = make_client(gh, t).get_issue("octo/repo", 7)
    assert issue["state"] == "open"
    assert t.sleeps == [3.0]
    assert [r.path for r in gh.requests] == ["/repos/octo/repo/issues/7"] * 2


def test_429_with_reset_header_then_success(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.fail_next(429, 1, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 5)})
    assert make_client(gh, t).login() == "gip-bot"
    assert t.sleeps == [6.0]


def test_a_500_storm_then_success_backs_off_exponentially(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 7)
    gh.fail_next(500, 4)
    comment = make_client(gh, t, max_attempts=5).create_comment("octo/repo", 7, "hello")
    assert comment["body"] == "hello"
    assert t.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert len(gh.requests) == 5
    assert [c["body"] for c in gh.comments("octo/repo", 7)] == ["hello"]


def test_a_500_storm_longer_than_the_attempts_raises_server_error(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 7)
    gh.fail_next(503, 10)
    with pytest.raises(errors.ServerError):
        make_client(gh, t, max_attempts=3).get_issue("octo/repo", 7)
    assert len(gh.requests) == 3
    assert len(t.sleeps) == 2


def test_a_long_rate_limit_is_not_slept_but_raised(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.fail_next(403, 1, {"Retry-After": "600"})
    with pytest.raises(errors.RateLimited) as info:
        make_client(gh, t, max_wait_s=30).login()
    assert info.value.retry_after == 600
    assert t.sleeps == []


def test_retries_stop_when_the_time_budget_is_spent(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.fail_next(403, 10, {"Retry-After": "20"})
    with pytest.raises(errors.RateLimited):
        make_client(gh, t, budget_s=45, max_wait_s=100).login()
    assert t.sleeps == [20.0]  # then 40 s (back-off on the second limit) overruns the budget
    assert len(gh.requests) == 2


def test_a_client_error_is_not_retried(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.fail_next(422, 3)
    with pytest.raises(errors.Invalid):
        make_client(gh, t).login()
    assert len(gh.requests) == 1 and t.sleeps == []


def test_wrong_token_is_unauthorized(github_server):
    with pytest.raises(errors.Unauthorized):
        make_client(github_server, FakeTime(NOW), token="wrong").login()


def test_ghes_base_url_with_api_v3_works(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 1)
    client = make_client(gh, t, base_url=gh.url + "/api/v3")
    client.add_labels("octo/repo", 1, ["reproduced"])
    assert gh.labels("octo/repo", 1) == ["reproduced"]


def test_comments_are_read_across_pages(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 3)
    for i in range(230):
        gh.add_comment("octo/repo", 3, f"c{i}")
    comments = make_client(gh, t).list_comments("octo/repo", 3)
    assert [c["body"] for c in comments] == [f"c{i}" for i in range(230)]
    assert len(gh.requests) == 3


def test_writes_are_spaced_out_by_the_write_interval(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 3)
    client = make_client(gh, t, write_interval_s=1.0)
    client.add_reaction("octo/repo", 3, "eyes")
    client.get_issue("octo/repo", 3)  # reads are not spaced
    client.add_labels("octo/repo", 3, ["x"])
    assert t.sleeps == [1.0]


def test_remove_label_that_is_absent_is_fine(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 3, labels=["bug", "repro-broken"])
    client = make_client(gh, t)
    client.remove_label("octo/repo", 3, "repro-broken")
    client.remove_label("octo/repo", 3, "not-there")
    assert gh.labels("octo/repo", 3) == ["bug"]


def test_permission_reports_role_and_legacy_permission(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.set_permission("octo/repo", "mia", "maintain")
    client = make_client(gh, t)
    assert client.permission("octo/repo", "mia") == Permission("write", "maintain")
    assert client.permission("octo/repo", "stranger") == Permission("read", "read")


def test_unreachable_host_is_retried_then_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = FakeTime(NOW)
    client = GitHubClient(base_url=f"http://127.0.0.1:{port}", token="t", sleep=t.sleep,
                          clock=t.clock, rand=lambda: 1.0, max_attempts=2)
    with pytest.raises(errors.Unreachable):
        client.login()
    assert t.sleeps == [0.5]


def test_the_token_never_appears_in_the_client_repr():
    client = GitHubClient(token="ghp_abcdefghijklmnopqrstuvwxyz0123456789")
    assert "ghp_" not in repr(client) and "ghp_" not in str(vars(client).get("base_url"))


def test_the_fake_can_be_waited_on_from_another_thread(github_server):
    import threading

    gh = github_server
    gh.add_issue("octo/repo", 5)
    client = make_client(gh, FakeTime(NOW))
    threading.Timer(0.05, lambda: client.create_comment("octo/repo", 5, "later")).start()
    assert gh.wait_until(lambda g: g.comments("octo/repo", 5)[0]["body"] == "later", timeout=5)
    assert not gh.wait_until(lambda g: len(g.comments("octo/repo", 5)) == 2, timeout=0.1)


def test_last_attempts_tells_a_retried_write_from_a_first_time_one(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue("octo/repo", 7)
    client = make_client(gh, t, max_attempts=3)
    assert client.last_attempts == 0
    client.create_comment("octo/repo", 7, "once")
    assert client.last_attempts == 1
    gh.fail_next(502, 1, method="POST", applied=True)  # applied, but the answer was lost
    client.create_comment("octo/repo", 7, "twice")
    assert client.last_attempts == 2
    assert [c["body"] for c in gh.comments("octo/repo", 7)] == ["once", "twice", "twice"]
