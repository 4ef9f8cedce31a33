"""Issue 19 §1-2: one shared rate-limit gate per key, the 401 retry, 403s and redirects.

Two clients sharing one gate stand for two containers; the Dynamo gate runs against moto.
"""

from __future__ import annotations

import itertools
import time

import pytest

from gip.adapters.github import errors
from gip.adapters.github.client import GitHubClient
from gip.adapters.github.ratelimit import MAX_BACKOFF_S, blocked_wait
from gip.store.dynamo_ops import DynamoRateGate
from gip.store.memory_ops import MemoryRateGate
from tests.fakes import fixtures
from tests.fakes.clock import FakeTime
from tests.fakes.github_server import FakeGitHub

github_server = fixtures.github_server
NOW = 1_700_000_000.0
REPO = "octo/repo"


def client(gh: FakeGitHub, t: FakeTime, gate, **kw: object) -> GitHubClient:
    opts: dict = dict(base_url=gh.url, token="test-token", sleep=t.sleep, clock=t.clock,
                      rand=lambda: 1.0, write_interval_s=1.0, gate=gate)
    opts.update(kw)
    return GitHubClient(**opts)


class Rotating:
    """Credentials whose token changes after ``invalidate`` (a rotated secret)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.invalidated, self.asked = tokens, [], []

    def token_for(self, repo):
        self.asked.append(repo)
        return self.tokens[0]

    def invalidate(self, repo):
        self.invalidated.append(repo)
        if len(self.tokens) > 1:
            self.tokens.pop(0)

    def rate_key(self, repo):
        return f"inst-{repo}"


# ---------------------------------------------------------------- pure


def test_consecutive_limits_back_off_up_to_the_reset():
    assert blocked_wait(60, 0, reset_in=None) == 60
    assert blocked_wait(60, 2, reset_in=None) == 240
    assert blocked_wait(60, 30, reset_in=None) == MAX_BACKOFF_S
    assert blocked_wait(60, 3, reset_in=300) == 300  # never past the primary reset
    assert blocked_wait(500, 0, reset_in=100) == 500  # what GitHub asked for, at least


def test_memory_gate_spaces_claimed_writes_and_never_shortens_a_block():
    gate = MemoryRateGate()
    assert [gate.claim_write("k", now=10.0, interval=1.0) for _ in range(3)] == [10.0, 11.0, 12.0]
    assert gate.claim_write("k", now=20.0, interval=1.0) == 20.0
    gate.block("k", 100.0, 1)
    gate.block("k", 50.0, 2)
    assert (gate.state("k").blocked_until, gate.state("k").strikes) == (100.0, 2)


# ---------------------------------------------------------------- the Dynamo gate (moto)


@pytest.fixture
def dynamo_gate(core):
    return lambda: DynamoRateGate(core.settings.pool_table)


def test_dynamo_gate_is_one_row_every_container_sees(dynamo_gate, core):
    a, b = dynamo_gate(), dynamo_gate()
    a.block("token", NOW + 600, 1)
    assert b.state("token").blocked_until == pytest.approx(NOW + 600)
    b.block("token", NOW + 60, 2)  # an earlier time never shortens the block
    assert a.state("token").blocked_until == pytest.approx(NOW + 600)
    assert a.state("token").strikes == 2
    slots = [gate.claim_write("token", now=NOW, interval=1.0) for gate in (a, b, a, b)]
    assert slots == pytest.approx([NOW, NOW + 1, NOW + 2, NOW + 3])
    a.clear_strikes("token")
    assert b.state("token").strikes == 0
    assert b.state("other").blocked_until == 0.0
    # the row lives beside the pool's rows without looking like an account
    assert core.pool.counts() is not None


def test_a_limit_seen_by_one_container_stops_the_others_without_a_request(github_server, dynamo_gate):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue(REPO, 7)
    first, second = client(gh, t, dynamo_gate()), client(gh, t, dynamo_gate())
    gh.fail_next(403, 1, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 600)})
    with pytest.raises(errors.RateLimited) as hit:
        first.get_issue(REPO, 7)
    assert 600 <= hit.value.retry_after <= 602
    sent = len(gh.requests)
    with pytest.raises(errors.RateLimited) as blocked:
        second.create_comment(REPO, 7, "hi")
    assert blocked.value.status == 0 and len(gh.requests) == sent  # nothing sent while blocked
    assert second.blocked_for(REPO) == pytest.approx(hit.value.retry_after)
    t.now += 601
    assert second.get_issue(REPO, 7)["number"] == 7


# ---------------------------------------------------------------- the client and the gate


def test_a_secondary_limit_without_retry_after_blocks_a_minute(github_server):
    gh, t, gate = github_server, FakeTime(NOW), MemoryRateGate()
    gh.fail_next(403, 1, body={"message": "You have exceeded a secondary rate limit"})
    with pytest.raises(errors.RateLimited) as info:
        client(gh, t, gate, max_wait_s=30).login()
    assert info.value.retry_after == 60
    assert gate.state("token").blocked_until == NOW + 60 and t.sleeps == []


def test_consecutive_short_limits_double_the_wait_and_a_success_clears_the_strikes(github_server):
    gh, t, gate = github_server, FakeTime(NOW), MemoryRateGate()
    gh.fail_next(403, 2, {"Retry-After": "5"}, body={"message": "secondary rate limit"})
    assert client(gh, t, gate).login() == "gip-bot"
    assert t.sleeps == [5.0, 10.0] and len(gh.requests) == 3
    assert gate.state("token").strikes == 0


def test_writes_from_two_containers_stay_a_second_apart(github_server):
    gh, t, gate = github_server, FakeTime(NOW), MemoryRateGate()
    gh.add_issue(REPO, 7)
    a, b = client(gh, t, gate), client(gh, t, gate)
    a.create_comment(REPO, 7, "one")
    b.create_comment(REPO, 7, "two")
    a.add_labels(REPO, 7, ["x"])
    assert t.sleeps == [1.0, 1.0]


def test_the_fake_limit_counts_requests_sent_while_blocked(github_server):
    gh, t = github_server, FakeTime(time.time())
    gh.limit(time.time() + 120, kind="secondary", retry_after=False)
    c = client(gh, t, MemoryRateGate(), max_wait_s=30)
    for _ in range(3):
        with pytest.raises(errors.RateLimited):
            c.login()
    assert len(gh.requests) == 1 and gh.blocked_requests == 0


# ---------------------------------------------------------------- 401 / 403 / 301


def test_a_401_invalidates_the_token_and_retries_once_with_the_new_one(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue(REPO, 7)
    creds = Rotating(["old-token", "test-token"])
    assert client(gh, t, MemoryRateGate(), token=creds).get_issue(REPO, 7)["number"] == 7
    assert creds.invalidated == [REPO] and creds.asked == [REPO, REPO]
    assert [r.headers["authorization"] for r in gh.requests] == ["Bearer old-token", "Bearer test-token"]


def test_a_terminal_401_after_expiry_is_unauthorized_after_exactly_one_retry(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue(REPO, 7)
    gh.expire_token()
    creds = Rotating(["test-token"])
    with pytest.raises(errors.Unauthorized):
        client(gh, t, MemoryRateGate(), token=creds).create_comment(REPO, 7, "hi")
    assert len(gh.requests) == 2 and creds.invalidated == [REPO, REPO]


def test_a_plain_callable_token_still_works_with_one_bucket(github_server):
    gh, t, gate = github_server, FakeTime(NOW), MemoryRateGate()
    gh.fail_next(403, 1, {"Retry-After": "600"})
    with pytest.raises(errors.RateLimited):
        client(gh, t, gate, token=lambda: "test-token").login()
    assert gate.state("token").blocked_until == NOW + 600


def test_an_uncovered_repository_is_forbidden_not_rate_limited(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue(REPO, 7)
    gh.uncover(REPO)
    with pytest.raises(errors.Forbidden):
        client(gh, t, MemoryRateGate()).get_issue(REPO, 7)
    assert len(gh.requests) == 1


def test_a_write_to_a_transferred_issue_is_an_error_naming_the_new_place(github_server):
    gh, t = github_server, FakeTime(NOW)
    gh.add_issue(REPO, 7)
    gh.transfer_issue(REPO, 7, "octo/elsewhere", 3)
    c = client(gh, t, MemoryRateGate())
    with pytest.raises(errors.Moved) as moved:
        c.create_comment(REPO, 7, "hi")
    assert moved.value.location.endswith("/repos/octo/elsewhere/issues/3/comments")
    assert gh.comments("octo/elsewhere", 3) == []  # the write was not replayed there
    assert c.get_issue(REPO, 7)["number"] == 3  # a read follows the redirect


def test_concurrent_claims_from_many_containers_get_distinct_slots(dynamo_gate):
    import threading

    slots: list[float] = []
    lock = threading.Lock()

    request_lock = threading.Lock()

    def one_request_at_a_time(gate: DynamoRateGate) -> None:
        """DynamoDB applies each request atomically; moto in-process does not across threads.
        Each request is made atomic here, nothing more: threads still interleave between the
        read and the conditional write, which is the race claim_write must survive."""
        connection = gate.model._get_connection().connection
        call = connection.dispatch

        def atomic(operation: str, kwargs: dict) -> dict:
            with request_lock:
                return call(operation, kwargs)
        connection.dispatch = atomic

    def claim() -> None:
        gate = dynamo_gate()
        one_request_at_a_time(gate)
        for _ in range(3):
            slot = gate.claim_write("token", now=NOW, interval=1.1)
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(slots)
    assert len(ordered) == 12 and ordered[0] == pytest.approx(NOW)
    assert all(b - a == pytest.approx(1.1) for a, b in itertools.pairwise(ordered))
