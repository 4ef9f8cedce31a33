"""Status comment rendering and sanitising: pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers import verdict_labels
from handlers.comment import (
    GITHUB_LIMIT,
    STATUS_MARKER,
    UNTRUSTED_MARKER,
    StatusView,
    format_duration,
    render_status,
    render_untrusted,
    sanitize,
    tail,
)

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GH_CLASSIC = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GH_OAUTH = "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
GH_FINE = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


# ---------------------------------------------------------------- sanitising


@pytest.mark.parametrize("line", [
    f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
    f"aws_secret_access_key = {AWS_SECRET}",
    f"found key {AWS_SECRET} in env",
    f"GITHUB_TOKEN={GH_CLASSIC}",
    f"cloning with {GH_OAUTH}",
    f"token: {GH_FINE}",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    'password="hunter2-but-longer"',
    '{"client_secret": "s3cr3t-value"}',
    "DB_PASSWORD=correct-horse-battery",
    "https://user:pa55w0rd@example.com/repo.git",
])
def test_secrets_are_redacted(line):
    out = sanitize(line)
    assert "REDACTED" in out
    for secret in (AWS_KEY_ID, AWS_SECRET, GH_CLASSIC, GH_OAUTH, GH_FINE, "hunter2",
                   "s3cr3t-value", "correct-horse", "pa55w0rd", "c2lnbmF0dXJl"):
        assert secret not in out


def test_a_private_key_is_redacted_even_when_the_tail_cut_its_first_line():
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
    assert "MIIEp" not in sanitize("before\n" + key + "\nafter")
    assert "after" in sanitize("before\n" + key + "\nafter")
    assert "abc" not in sanitize("MIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nok")


def test_ordinary_output_is_left_alone():
    text = ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8\n"
            "AssertionError: expected 3 got 4\nauthor: alice\n  File \"x.py\", line 3")
    assert sanitize(text) == text


def test_terminal_escapes_and_control_characters_are_stripped():
    assert sanitize("\x1b[31mred\x1b[0m\x07 done\r\n") == "red done\n"


def test_tail_keeps_the_last_lines():
    assert tail("\n".join(str(i) for i in range(100)) + "\n", 3) == "97\n98\n99"


# ---------------------------------------------------------------- rendering


def processed(**kw) -> StatusView:
    base = dict(state="processed", run=2, verdict="reproduced", exit_code=1, duration_s=123.4,
                result_uri="s3://bucket/results/octo/repo/7/2/result.json",
                log_tail="line 1\nline 2\nTraceback: boom")
    base.update(kw)
    return StatusView(**base)


def test_status_comment_carries_marker_state_run_verdict_exit_code_duration_tail_and_link():
    body = render_status(processed())
    assert body.startswith(STATUS_MARKER)
    for expected in ("Finished", "#2", "Reproduced", "`1`", "2m 03s", "Traceback: boom",
                     "s3://bucket/results/octo/repo/7/2/result.json",
                     "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=results/"):
        assert expected in body


def test_queued_comment_has_no_verdict_rows():
    body = render_status(StatusView(state="queued", run=1))
    assert "Queued" in body and "Verdict" not in body and "Exit code" not in body


def test_result_url_wins_over_the_s3_uri():
    body = render_status(processed(result_url="https://example.com/r/7"))
    assert "[full result](https://example.com/r/7)" in body


def test_only_the_last_40_lines_are_shown():
    log = "\n".join(f"out {i}" for i in range(100))
    body = render_status(processed(log_tail=log))
    assert "out 59\n" not in body and "out 60\n" in body and "out 99" in body


def test_a_log_full_of_backticks_cannot_break_out_of_its_code_block():
    body = render_status(processed(log_tail="````\n@everyone <script>"))
    assert "`````text" in body


def test_secrets_in_the_log_and_the_error_never_reach_the_body():
    body = render_status(processed(log_tail=f"key {AWS_KEY_ID}", error=f"token {GH_CLASSIC}"))
    assert AWS_KEY_ID not in body and GH_CLASSIC not in body


def test_a_body_that_would_exceed_65536_characters_is_cut_in_the_log_tail():
    huge = "\n".join("x" * 5_000 + f" line {i}" for i in range(40))  # ~200k characters
    body = render_status(processed(log_tail=huge, error="boom"))
    assert len(body) < GITHUB_LIMIT
    assert body.startswith(STATUS_MARKER)
    assert "characters truncated" in body
    assert "line 39" in body  # the end of the output is what matters
    assert "**Error**" in body and "Reproduced" in body  # the rest survived intact
    assert body.rstrip().endswith("</sub>")


def test_even_a_huge_error_and_uri_stay_under_the_limit():
    body = render_status(processed(error="e" * 100_000, result_uri="u" * 100_000,
                                   log_tail="y" * 100_000))
    assert len(body) < GITHUB_LIMIT


def test_infra_error_shows_error_and_attempt():
    body = render_status(StatusView(state="failed", run=3, error="worker lost", attempt=3))
    assert "Infrastructure error" in body and "worker lost" in body and "| Attempt | 3 |" in body


@pytest.mark.parametrize(("seconds", "text"), [(4.25, "4.2s"), (42, "42s"), (123.4, "2m 03s"),
                                               (7_325, "2h 02m")])
def test_durations_read_naturally(seconds, text):
    assert format_duration(seconds) == text


def test_untrusted_note_is_polite_and_marked():
    body = render_untrusted(sender="eve", permission="read", trusted=["admin", "maintain", "write"],
                            labels=["needs-reproduction"])
    assert body.startswith(UNTRUSTED_MARKER)
    assert "@eve" in body and "`read`" in body and "admin, maintain or write" in body
    assert "`needs-reproduction`" in body


# ---------------------------------------------------------------- verdict labels


@pytest.mark.parametrize(("verdict", "label"), [
    ("reproduced", "reproduced"), ("not_reproduced", "not-reproduced"),
    ("broken_repro", "repro-broken"), ("no_repro_found", "repro-broken"),
    ("something-new", "repro-infra-error"),
])
def test_each_verdict_has_one_label(verdict, label):
    assert verdict_labels.label_for(verdict) == label


def test_label_changes_add_the_wanted_and_remove_only_present_others():
    add, remove = verdict_labels.changes("reproduced", ["bug", "repro-infra-error", "not-reproduced"])
    assert add == ["reproduced"]
    assert remove == ["not-reproduced", "repro-infra-error"]
    assert verdict_labels.changes("reproduced", ["reproduced"]) == ([], [])


def test_sanitising_a_megabyte_is_fast():
    import time

    started = time.perf_counter()
    sanitize("u" * 500_000 + "\n" + "token=" * 50_000 + "a://" * 50_000)
    assert time.perf_counter() - started < 2.0


def test_the_shown_version_is_read_from_the_header_not_from_a_forged_log_line():
    from handlers.comment import rendered_version

    forged = "<!-- github-issue-processor:version=999 run=9 -->"
    body = render_status(processed(version=5, log_tail=forged))
    assert rendered_version(body) == (5, 2)
    assert rendered_version("no tag") is None


# ---------------------------------------------------------------- properties

_TOKEN_CHARS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                       min_size=36, max_size=40)


@settings(max_examples=60, deadline=None)
@given(log=st.text(max_size=3_000), error=st.none() | st.text(max_size=300),
       filler=st.integers(min_value=0, max_value=120_000), secret=_TOKEN_CHARS,
       where=st.integers(min_value=0, max_value=3_000))
def test_any_output_renders_under_the_limit_with_the_marker_and_without_the_token(
        log, error, filler, secret, where):
    token = "ghp_" + secret
    text = log[:where] + " " + token + " " + log[where:] + "z" * filler
    body = render_status(processed(log_tail=text, error=error))
    assert len(body) < GITHUB_LIMIT
    assert body.startswith(STATUS_MARKER)
    assert token not in body


def test_command_and_message_are_shown_sanitised():
    body = render_status(processed(command=f"python repro.py --token {GH_CLASSIC} `x`",
                                   message="exit code 1 with a traceback: reproduced"))
    assert "| Command | `` python repro.py --token [REDACTED GITHUB TOKEN] `x` `` |" in body
    assert "exit code 1 with a traceback: reproduced" in body
    assert GH_CLASSIC not in body
