"""Reporting a matrix run (issue 17): the status comment's table and sentence, the summary
label beside the verdict label (notifier against the fake GitHub)."""

from __future__ import annotations

import cmarkgfm
import pytest

from gip.domain import verdict_labels
from gip.domain.comment import StatusView, matrix_rows, render_status
from gip.errors import InvalidEvent
from tests.test_notifier import (  # noqa: F401
    LABEL,
    NUMBER,
    REPO,
    Run,
    core,
    gh,
    make_notifier,
    status_comments,
    t,
)

MATRIX = [{"version": "1.1.0", "verdict": "reproduced", "exit_code": 1, "duration_s": 1.25},
          {"version": "1.6.0", "verdict": "not_reproduced", "exit_code": 0, "duration_s": 0.5},
          {"version": "1.3.0", "verdict": "reproduced", "exit_code": 1, "duration_s": 75},
          {"version": "1.4.0", "verdict": "not_reproduced", "exit_code": 0, "duration_s": 2}]
SENTENCE = "Reproduces on 1.1.0 (reported); fixed in 1.4.0; latest 1.6.0 passes."


def test_the_comment_carries_the_table_and_the_sentence():
    view = StatusView(state="processed", run=1, verdict="reproduced", message=SENTENCE,
                      matrix=matrix_rows({"matrix": MATRIX}))
    body = render_status(view)
    assert "| Version | Verdict | Time |" in body
    assert "| `1.1.0` | ✅ Reproduced | 1.2s |" in body and "| `1.3.0` | ✅ Reproduced | 1m 15s |" in body
    assert "| `1.4.0` | ❌ Not reproduced | 2.0s |" in body
    html = cmarkgfm.github_flavored_markdown_to_html(body)
    assert html.count("<tr>") >= 5 and "fixed in 1.4.0" in html


def test_a_version_that_is_not_version_text_is_not_put_in_a_cell():
    rows = matrix_rows({"matrix": [{"version": "1.0 | @owner <b>", "verdict": "reproduced", "duration_s": 1}]})
    body = render_status(StatusView(state="processed", run=1, matrix=rows))
    assert "@owner" not in body and "<b>" not in body and "| ? |" in body
    assert matrix_rows({"verdict": "reproduced"}) == ()


def test_summary_labels_and_their_changes():
    assert verdict_labels.matrix_label_for("fixed_in_latest") == "fixed-in-latest"
    assert verdict_labels.matrix_label_for("regressed") is None
    assert verdict_labels.matrix_label_for("still_reproduces", {"still_reproduces": "bug-current"}) == "bug-current"
    assert verdict_labels.matrix_changes("still-reproduces", ["bug", "Fixed-In-Latest"]) == \
        (["still-reproduces"], ["Fixed-In-Latest"])


def test_the_notifier_shows_the_matrix_and_sets_the_summary_label(core, gh, t):  # noqa: F811
    earlier = [LABEL, "still-reproduces"]
    gh.set_labels(REPO, NUMBER, earlier)
    n, run = make_notifier(core, gh, t), Run(core, labels=earlier)
    n.handle(run.queued()), n.handle(run.started())
    n.handle(run.processed(matrix=MATRIX, summary="fixed_in_latest", fixed_in="1.4.0",
                           reported_version="1.1.0", latest_version="1.6.0", message=SENTENCE))
    body = status_comments(gh)[0]["body"]
    assert "| `1.4.0` | ❌ Not reproduced | 2.0s |" in body and SENTENCE.replace(".", "\\.", 0) in body
    assert gh.labels(REPO, NUMBER) == [LABEL, "reproduced", "fixed-in-latest"]

    assert gh.repo_labels(REPO)["fixed-in-latest"]["color"] == "0e8a16"  # created up front, not grey


def test_the_summary_label_names_are_configurable(core, gh, t):  # noqa: F811
    from gip.config import Settings
    env = Settings.from_env({"MATRIX_FIXED_LABEL": "fixed-upstream", "MATRIX_STILL_LABEL": " bug-current "})
    assert env.matrix_labels == {"fixed_in_latest": "fixed-upstream", "still_reproduces": "bug-current"}
    assert Settings.from_env({}).matrix_labels == verdict_labels.MATRIX_LABELS
    earlier = [LABEL, "bug-current", "still-reproduces"]  # a default-named label is not ours now
    gh.set_labels(REPO, NUMBER, earlier)
    n = make_notifier(core, gh, t, matrix_fixed_label="fixed-upstream", matrix_still_label="bug-current")
    run = Run(core, labels=earlier)
    n.handle(run.queued()), n.handle(run.started())
    n.handle(run.processed(matrix=MATRIX, summary="fixed_in_latest", fixed_in="1.4.0",
                           reported_version="1.1.0", latest_version="1.6.0", message=SENTENCE))
    assert gh.labels(REPO, NUMBER) == [LABEL, "still-reproduces", "reproduced", "fixed-upstream"]
    created = gh.repo_labels(REPO)
    assert created["fixed-upstream"]["color"] == "0e8a16" and "bug-current" in created
    assert "fixed-in-latest" not in created and "still-reproduces" not in created


def test_v1_events_upcast_to_v2_without_matrix_fields():
    from gip.domain.schemas import upcast, validate

    for type_, data in (("IssueQueued", {"run": 1, "sender": "s", "permission": "write"}),
                        ("IssueProcessed", {"run": 1, "verdict": "reproduced", "exit_code": 1,
                                            "duration_s": 1.0, "result_uri": "s3://b/k"})):
        v1 = {"type": type_, "schema_version": 1, "data": data}
        v2 = upcast(v1)
        assert v2["schema_version"] == 2 and v2["data"] == data and v1["schema_version"] == 1
    bad = {"event_id": "00000000-0000-4000-8000-000000000000", "type": "IssueProcessed", "stream": "issue-o/r#1", "version": 1,
           "schema_version": 2, "occurred_at": "2026-01-01T00:00:00Z", "correlation_id": "c",
           "causation_id": None, "actor": "worker",
           "data": {"run": 1, "verdict": "reproduced", "exit_code": 1, "duration_s": 1.0,
                    "result_uri": "s3://b/k", "summary": "fixed_somewhere"}}
    with pytest.raises(InvalidEvent, match="data/summary"):
        validate(bad)


def test_replay_shows_a_matrix_runs_answer_before_the_long_fields():
    from gip.cli.replay_query import summary

    line = summary({"command": "python snippet.py", "log_tail": "x" * 50, "verdict": "reproduced",
                    "summary": "fixed_in_latest", "fixed_in": "1.4.0", "matrix": [{"version": "1.1.0"}]})
    assert line.startswith("fixed_in=1.4.0 summary=fixed_in_latest verdict=reproduced ")
