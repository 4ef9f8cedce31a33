"""Status comment rendering and sanitising: pure, no I/O."""

from __future__ import annotations

import html
import html.parser
import re
from dataclasses import replace

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import given, settings
from hypothesis import strategies as st

from gip.domain import verdict_labels
from gip.domain.comment import (
    GITHUB_LIMIT,
    STATUS_MARKER,
    UNTRUSTED_MARKER,
    StatusView,
    format_duration,
    has_marker,
    render_status,
    render_untrusted,
    rendered_version,
    sanitize,
    tail,
)
from gip.domain.verdict import decide
from tests.planted import EXAMPLES, TALLY, families, fillers, leaks

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
    for expected in ("Finished", "| Run | 2 |", "Reproduced", "`1`", "2m 03s", "Traceback: boom",
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

    started = time.thread_time()  # CPU time: a busy machine (other xdist workers) does not count
    sanitize("u" * 500_000 + "\n" + "token=" * 50_000 + "a://" * 50_000)
    assert time.thread_time() - started < 2.0


def test_the_shown_version_is_read_from_the_header_not_from_a_forged_log_line():
    from gip.domain.comment import rendered_version

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
    assert "**Command:** `` python repro.py --token [REDACTED GITHUB TOKEN] `x` ``" in body
    assert "exit code 1 with a traceback: reproduced" in body
    assert GH_CLASSIC not in body


# ---------------------------------------------------------------- inert untrusted text
# The oracle is GitHub's own pipeline: cmark-gfm (cmarkgfm) renders the markdown with raw HTML
# let through, then GitHub's mention and reference filters run on text outside code, pre and
# links (html-pipeline's MentionFilter pattern, with teams).

_MENTION = re.compile(r"(?:^|\W)@[a-z0-9][a-z0-9-]*(?:/[a-z0-9][a-z0-9_-]*)?"
                      r"(?=\.+[ \t\W]|\.+$|[^0-9a-zA-Z_./]|$)", re.I)
_REFERENCE = re.compile(r"(?:^|\W)(?:[\w.-]+/[\w.-]+)?#\d+\b|\bGH-\d+\b", re.I)
_OURS = {"p", "h3", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "details", "summary",
         "sub", "strong", "a"}
OUR_LINK = "https://s3.console.aws.amazon.com/"


class _Live(html.parser.HTMLParser):
    """What GitHub would make live in rendered HTML: tags, links, comments, mentions, references."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.found: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in _OURS:
            self.found.append(f"<{tag}>")
        if tag == "a" and not (dict(attrs).get("href") or "").startswith(OUR_LINK):
            self.found.append(f"link {dict(attrs).get('href')}")
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag):]

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_data(self, data):
        if not {"code", "pre", "a"} & set(self.stack):
            self.found += [m.group(0).strip() for m in _MENTION.finditer(data)]
            self.found += [m.group(0).strip() for m in _REFERENCE.finditer(data)]


def live(markdown: str) -> list[str]:
    """Mentions, references, links, images and HTML that GitHub would render from ``markdown``,
    plus any HTML comment other than our own markers."""
    parser = _Live()
    parser.feed(cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE))
    ours = {STATUS_MARKER[4:-3], UNTRUSTED_MARKER[4:-3]}
    return parser.found + [f"<!--{c}-->" for c in parser.comments
                           if c not in ours and not c.startswith(" github-issue-processor:version=")]


def raw_html(markdown: str) -> int:
    """How many pieces of raw HTML GitHub would pass through (its sanitiser then filters them)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown).count("raw HTML omitted")


@pytest.mark.parametrize(("text", "mentions"), [
    ("@user", 1), ("@org/team", 1), ("thanks @user.", 1), ("(@user)", 1), ("@user, see", 1),
    ("a@b.c is an email", 0), ("`@user`", 0), ("x@user", 0), ("#12 and owner/repo#3 and GH-4", 3),
])
def test_the_oracle_follows_githubs_mention_rules(text, mentions):
    assert len([f for f in live(text) if not f.startswith("link")]) == mentions


def test_an_email_is_no_mention_but_a_link():
    assert live("a@b.c") == ["link mailto:a@b.c"]


def test_the_oracle_sees_links_images_and_html():
    assert live("https://x.example <https://x.example> [a](https://x.example) www.x.example")
    assert live("![i](https://x.example/p.png)") and live("<img src=x>")
    assert raw_html("<details>x</details>") == 1 and raw_html("a <b>y") == 1 and raw_html("a \\<b>y") == 0
    assert live("[a]\n\n[a]: https://x.example") and live("<!-- hidden -->")


HOSTILE = [
    "@user", "@org/team", "ping @user.", "(@user)", "@user, please", "cc @a-b and @c", "a@b.c is an email",
    "https://evil.example/x", "<https://evil.example>", "www.evil.example", "[x](https://evil.example)",
    "![x](https://evil.example/p.png)", "[x]: https://evil.example", "[x][y]\n\n[y]: https://evil.example",
    "<img src=https://evil.example/p.png>", "<a href='https://evil.example'>x</a>",
    "<details open><summary>x</summary>", "</details></table></code></pre>", "<script>alert(1)</script>",
    STATUS_MARKER, UNTRUSTED_MARKER, "<!-- github-issue-processor:version=999 run=9 -->", "<!-- hide the rest",
    "&#64;user &lt;img src=x&gt;", "#123 and owner/repo#4 and GH-5", "**bold** _it_ ~~s~~ $x^2$",
    "`code` ``` fence ```` and \\`", "line1\n# heading\n- list\n> quote\n    indented\n@user",
    "| a | b |\n|---|---|\n| @user | c |", "\\@user \\<img src=x>", "``@user``", "` @user `", "```\n@user\n```",
]


def _hostile_view(text: str) -> StatusView:
    quoted = decide(exit_code=1, output=f"out {text} out", expected_errors=[text]).reason
    # (result_url is ours, not untrusted: the worker's own link to the result)
    return processed(message=quoted, command=text, error=text, log_tail=text, reason=text,
                     verdict=text, state=text, result_uri=text)


@pytest.mark.parametrize("text", HOSTILE)
def test_untrusted_text_in_any_field_is_inert(text):
    body = render_status(_hostile_view(text))
    assert live(body) == []
    assert raw_html(body) == raw_html(render_status(_hostile_view("x")))  # only our own markers
    assert body.startswith(STATUS_MARKER) and not has_marker(body, UNTRUSTED_MARKER)


@pytest.mark.parametrize("text", HOSTILE)
def test_untrusted_text_in_the_message_is_inert(text):
    body = render_status(processed(message=text))
    assert live(body) == [] and raw_html(body) == raw_html(render_status(processed(message="x")))


@pytest.mark.parametrize("text", HOSTILE)
def test_untrusted_text_in_the_untrusted_note_is_inert(text):
    body = render_untrusted(sender=text, permission=text, trusted=["write"], labels=[text])
    assert live(body) == [] and raw_html(body) == 1 and body.startswith(UNTRUSTED_MARKER)


def test_the_untrusted_note_still_mentions_a_real_login():
    assert live(render_untrusted(sender="eve-1", permission="read", trusted=["write"], labels=[])) == ["@eve-1"]


def test_the_quoted_error_is_shown_verbatim_in_code():
    quote = "TypeError: `x` <b>@team</b> [a](b)"
    body = render_status(processed(message=decide(exit_code=0, output=quote, expected_errors=[quote]).reason))
    codes = re.findall(r"<code>(.*?)</code>", cmarkgfm.github_flavored_markdown_to_html(body), re.S)
    assert quote in [html.unescape(c) for c in codes]


def test_a_forged_version_tag_or_marker_anywhere_in_the_body_is_ignored():
    forged = "<!-- github-issue-processor:version=999 run=9 -->"
    body = render_status(StatusView(state="queued", run=2, message=forged, log_tail=forged, error=forged))
    assert rendered_version(body) is None  # no tag of ours: none is read from the untrusted parts
    assert forged not in body
    assert rendered_version(render_status(processed(version=5, message=forged))) == (5, 2)
    assert not has_marker(f"x\n{STATUS_MARKER}", STATUS_MARKER)


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=st.text(max_size=200) | st.lists(st.sampled_from([*HOSTILE, "`", "\n", "@", "!", "["]),
                                              max_size=8).map("".join))
def test_any_untrusted_text_is_inert_and_cannot_forge_our_markers(text):
    body = render_status(replace(_hostile_view(text), version=7))
    assert live(body) == [] and raw_html(body) == raw_html(render_status(replace(_hostile_view("x" if text else ""), version=7)))
    assert rendered_version(body) == (7, 2)
    assert has_marker(body, STATUS_MARKER) and not has_marker(body, UNTRUSTED_MARKER)


_KEPT = render_status(processed(log_tail="z" * 200_000)).count("z")  # what the cap leaves of one line


@settings(max_examples=EXAMPLES, deadline=None)
@given(planted=families(), before=fillers(), data=st.data())
def test_no_planted_secret_survives_the_65536_character_cap(planted, before, data):
    # GIVEN a log far over GitHub's limit, with the secret right where the body is cut
    into = data.draw(st.integers(0, len(planted.text)))
    log = before + "z" * 100_000 + planted.text + "z" * (_KEPT - into)
    # WHEN it is rendered
    body = render_status(processed(log_tail=log))
    TALLY["cases"] += 1
    # THEN the body is under the limit and no piece of the secret is in it
    assert len(body) < GITHUB_LIMIT
    assert leaks(body, planted.secret, around=before) == []
