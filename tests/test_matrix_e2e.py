"""End to end in ``--local`` (issue 17): the repository's ``.github/reproduce.yml`` on the fake
GitHub, a local PEP 691 index listing 1.0.0 to 1.6.0, a snippet that fails below 1.4.0 and an
issue reporting 1.1.0 → ``fixed_in_latest``, ``fixed_in`` 1.4.0, the table in the comment, the
summary label, at most 2 + ⌈log2 5⌉ runs. Then an invalid file → a ``bad_config`` skip whose
comment names the line."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from gip.domain.comment import STATUS_MARKER
from gip.local import samples
from tests.fakes.github_server import FakeGitHub
from tests.test_local_e2e import RUN_TIMEOUT_S, _events, _send, _wait, stack  # noqa: F401
from tests.test_matrix_worker import BODY
from tests.test_repo_config import Index

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(420)]
REPO = samples.REPO


def _status(gh: FakeGitHub, number: int) -> str:
    ours = [c["body"] for c in gh.comments(REPO, number) if c["body"].startswith(STATUS_MARKER)]
    return ours[0] if len(ours) == 1 else ""


def test_a_matrix_run_names_the_fix_and_a_bad_config_names_its_line(stack: SimpleNamespace) -> None:  # noqa: F811
    gh: FakeGitHub = stack.gh
    index = Index()
    try:
        gh.set_file(REPO, ".github/reproduce.yml",
                    f"versions:\n  source: pypi:demo\n  index: {index.url}/simple\nbisect: true\nmax_runs: 8\n")
        payload = samples.issue_payload(number=11, title="fails on old versions", body=BODY)
        gh.add_issue_from_payload(payload)
        assert _send(stack, payload, delivery="mx-11").status_code == 202

        def processed() -> dict | None:
            done = [e for e in _events(stack, 11) if e["type"] == "IssueProcessed"]
            return done[-1]["data"] if done else None

        data = _wait(processed, timeout=RUN_TIMEOUT_S * 2, what="the matrix run", proc=stack.proc, log=stack.log)
        queued = [e for e in _events(stack, 11) if e["type"] == "IssueQueued"][-1]
        assert queued["data"]["matrix_config"]["versions"] == [f"1.{i}.0" for i in range(7)]
        assert (data["summary"], data["fixed_in"], data["verdict"]) == ("fixed_in_latest", "1.4.0", "reproduced")
        assert len(data["matrix"]) <= 2 + math.ceil(math.log2(5))
        assert len(index.requests) == 1  # the registry once per issue

        def commented() -> str:
            body = _status(gh, 11)
            return body if "| Version | Verdict | Time |" in body and "fixed-in-latest" in gh.labels(REPO, 11) else ""

        body = _wait(commented, timeout=60, what="the matrix comment and label", proc=stack.proc, log=stack.log)
        assert "| `1.4.0` | ❌ Not reproduced |" in body and "fixed in 1.4.0" in body

        # an invalid file: a bad_config skip, and a comment that names the line
        gh.set_file(REPO, ".github/reproduce.yml", "versions:\n  source: pypi:demo\nmax_runs: lots\n")
        bad = samples.issue_payload(number=12, title="another", body=BODY)
        gh.add_issue_from_payload(bad)
        assert _send(stack, bad, delivery="mx-12").status_code == 202

        def skipped() -> dict | None:
            done = [e for e in _events(stack, 12) if e["type"] == "IssueSkipped"]
            return done[-1]["data"] if done else None

        skip = _wait(skipped, timeout=RUN_TIMEOUT_S, what="the bad_config skip", proc=stack.proc, log=stack.log)
        assert skip["reason"] == "bad_config" and "line 3" in skip["detail"]
        body = _wait(lambda: _status(gh, 12), timeout=60, what="the bad_config comment", proc=stack.proc,
                     log=stack.log)
        assert "reproduce.yml line 3: max_runs: 'lots' is not of type 'integer'" in body
    finally:
        index.stop()
