"""gip.local.hops: bench/e2e.py's per-hop timestamps are written only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gip.local import hops


def test_nothing_is_written_unless_the_variable_names_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hops.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    hops.note("sqs", stream="issue-o/r#1")
    assert not hops.enabled() and list(tmp_path.iterdir()) == []


def test_one_json_line_per_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hops.jsonl"
    monkeypatch.setenv(hops.ENV, str(path))
    hops.note("stream", stream="issue-o/r#1", type="IssueReceived", read=1.5)
    hops.note("sqs", stream="issue-o/r#1", sent=2.0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"hop": "stream", "stream": "issue-o/r#1", "type": "IssueReceived", "read": 1.5},
                     {"hop": "sqs", "stream": "issue-o/r#1", "sent": 2.0}]


@pytest.mark.parametrize(("body", "expected"), [
    ('{"detail-type": "IssueReceived", "detail": {"stream": "issue-o/r#1", "type": "IssueReceived"}}',
     {"stream": "issue-o/r#1", "type": "IssueReceived"}),
    ('{"detail": "not an object"}', {}),
    ("not json", {}),
    ("[1, 2]", {}),
])
def test_the_envelope_of_an_sqs_body(body: str, expected: dict[str, str]) -> None:
    assert hops.envelope_of(body) == expected
