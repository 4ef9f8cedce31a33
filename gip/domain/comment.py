"""PURE rendering of the status comment and the untrusted-sender note.

The notifier keeps one status comment per issue and edits it in place; it finds the comment
again by :data:`STATUS_MARKER`, a hidden HTML comment, among comments by our own login.

Text from the issue or the run is untrusted: it is redacted (:mod:`gip.domain.redaction`, on
the whole field before any cut) and made inert (:mod:`gip.domain.markdown`: code spans and
fences, escaped prose, no mention, link, image, HTML or marker). Bodies stay under GitHub's
65,536-character limit: the log tail gives way first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from gip.domain.markdown import code_span, defuse_markers, escape_text, fence, inert
from gip.domain.redaction import redact

STATUS_MARKER = "<!-- github-issue-processor:status -->"
UNTRUSTED_MARKER = "<!-- github-issue-processor:untrusted -->"
GITHUB_LIMIT = 65_536
# Margin below the hard limit: GitHub may count some characters twice (UTF-16 surrogates).
MAX_BODY_CHARS = 65_000
TAIL_LINES = 40
MAX_FIELD_CHARS = 2_000

VERDICT_TEXT = {
    "reproduced": "✅ Reproduced",
    "not_reproduced": "❌ Not reproduced",
    "broken_repro": "⚠️ The reproduction itself is broken",
    "no_repro_found": "❔ No reproduction found in the issue",
}
STATE_TEXT = {
    "queued": "⏳ Queued",
    "running": "🏃 Running",
    "processed": "🏁 Finished",
    "failed": "💥 Infrastructure error",
    "retrying": "🔁 Infrastructure error, retrying",
    "skipped": "⏭️ Skipped",
}
SKIP_TEXT = {
    "closed": "the issue was closed",
    "label_removed": "the label was removed",
    "untrusted_sender": "the request did not come from someone with write access",
    "duplicate": "a run is already queued or running",
    "bad_config": "the repository's `.github/reproduce.yml` is not valid",
}


@dataclass(frozen=True)
class StatusView:
    """What the status comment shows: one issue, its latest run."""

    state: str  # a key of STATE_TEXT
    run: int
    verdict: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    result_uri: str | None = None
    result_url: str | None = None
    log_tail: str | None = None
    error: str | None = None
    attempt: int | None = None
    reason: str | None = None
    version: int | None = None  # the issue stream version shown; a lower one never overwrites
    message: str | None = None  # the worker's one-line explanation of the verdict
    command: str | None = None  # the reproduction command that ran
    matrix: tuple[tuple[str, str, float | None], ...] = ()  # issue 17: (version, verdict, seconds)


# ---------------------------------------------------------------- sanitising

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sanitize(text: str) -> str:
    """Strip terminal escapes and control characters, then redact (:mod:`gip.domain.redaction`)."""
    return redact(_CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n"))))


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (without a trailing empty line)."""
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- rendering


def format_duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


_RESULT_URL = re.compile(r"https://[^\s()<>\[\]`]{1,2000}")
_ENUM = re.compile(r"[^A-Za-z0-9_ -]")


def _known(table: dict[str, str], key: str) -> str:
    """Our text for ``key``; an unknown key (a newer event) shown as plain word characters."""
    return table.get(key) or escape_text(_ENUM.sub("", key)[:60]) or "?"


def result_link(view: StatusView) -> str | None:
    """A markdown link to the full result: ``result_url`` if known, else the S3 console."""
    if view.result_url and _RESULT_URL.fullmatch(view.result_url):
        return f"[full result]({view.result_url})"
    if view.result_uri and view.result_uri.startswith("s3://"):
        bucket, _, key = view.result_uri[5:].partition("/")
        url = f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"
        return f"[full result]({url}) ({code_span(_clip(sanitize(view.result_uri[:1000]), 500))})"
    if view.result_uri:
        return code_span(_clip(sanitize(view.result_uri[:1000]), 500))
    return None


def _rows(view: StatusView) -> Iterable[tuple[str, str]]:
    """Table rows. No untrusted text goes in a cell: GitHub splits cells at ``|`` even in code."""
    yield "State", _known(STATE_TEXT, view.state)
    yield "Run", str(int(view.run))  # not "#2": GitHub would link issue 2 and notify it
    if view.verdict:
        yield "Verdict", _known(VERDICT_TEXT, view.verdict)
    if view.exit_code is not None:
        yield "Exit code", f"`{int(view.exit_code)}`"
    if view.duration_s is not None:
        yield "Duration", format_duration(view.duration_s)
    if view.reason:
        yield "Reason", _known(SKIP_TEXT, view.reason)
    if view.attempt is not None and view.state in ("failed", "retrying"):
        yield "Attempt", str(int(view.attempt))
    link = result_link(view)
    if link:
        yield "Result", link.replace("|", "%7C")


_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")


def matrix_rows(data: Mapping[str, object] | None) -> tuple[tuple[str, str, float | None], ...]:
    """The matrix of an ``IssueProcessed``'s data (issue 17) as rows for :class:`StatusView`."""
    rows = (data or {}).get("matrix")
    if not isinstance(rows, list):
        return ()
    out = []
    for row in rows[:40]:
        if isinstance(row, Mapping):
            seconds = row.get("duration_s")
            out.append((str(row.get("version", "")), str(row.get("verdict", "")),
                        float(seconds) if isinstance(seconds, (int, float)) else None))
    return tuple(out)


def _version_cell(version: str) -> str:
    """A version in a table cell: registry versions are PEP 440 / semver text; anything else is ``?``."""
    return code_span(version) if _VERSION.fullmatch(version) else "?"


def _head(view: StatusView) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in _rows(view))
    parts = [STATUS_MARKER]
    if view.version is not None:
        parts.append(f"<!-- github-issue-processor:version={int(view.version)} run={int(view.run)} -->")
    parts += ["### Reproduction status", "", "| | |", "|---|---|", rows]
    if view.command:
        # redact the whole field, then cut (a secret split by the cut cannot survive)
        parts += ["", "**Command:** " + code_span(_clip(sanitize(view.command), 300))]
    if view.matrix:
        parts += ["", "| Version | Verdict | Time |", "|---|---|---|",
                  *(f"| {_version_cell(v)} | {_known(VERDICT_TEXT, verdict)} | "
                    f"{format_duration(t) if t is not None else ''} |" for v, verdict, t in view.matrix)]
    if view.message:
        parts += ["", inert(_clip(sanitize(view.message), 500))]
    if view.error:
        parts += ["", "**Error**", "", fence(_clip(sanitize(view.error)))]
    return "\n".join(parts)


def render_status(view: StatusView, *, limit: int = MAX_BODY_CHARS) -> str:
    """The status comment body; always under ``limit`` characters (the log tail gives way)."""
    head = _head(view)
    footer = "\n\n<sub>Posted by github-issue-processor; this comment is edited as the run goes.</sub>"
    if not view.log_tail:
        return (head + footer)[:limit]
    # Redact the whole text first, then cut: a secret across a cut is already gone.
    log = defuse_markers(tail(sanitize(view.log_tail)))
    ticks = "`" * max(3, max((len(run) for run in re.findall(r"`+", log)), default=0) + 1)
    title = f"Last {TAIL_LINES} lines of output"

    def with_log(text: str) -> str:
        return (f"{head}\n\n<details><summary>{title}</summary>\n\n{ticks}text\n{text}\n{ticks}\n"
                f"</details>{footer}")

    body = with_log(log)
    if len(body) <= limit:
        return body
    room = limit - len(with_log("")) - 60
    if room <= 0:
        return (head + footer)[:limit]
    kept = log[-room:]
    cut = kept.find("\n")
    if 0 <= cut < len(kept) - 1:
        kept = kept[cut + 1:]  # start at a line boundary when there is one
    note = f"… ({len(log) - len(kept)} characters truncated)\n"
    return with_log(note + kept)[:limit]


def render_untrusted(*, sender: str, permission: str, trusted: Iterable[str], labels: Iterable[str]) -> str:
    """The one polite note to someone whose request cannot start a run."""
    who = " or ".join(", ".join(sorted(trusted)).rsplit(", ", 1))
    label = ", ".join(code_span(name) for name in labels) or "the reproduction label"
    # the sender is meant to be mentioned; anything that is not a login is shown as text
    hello = f"@{sender}" if _LOGIN.fullmatch(sender) else escape_text(sender)
    return "\n".join([
        UNTRUSTED_MARKER,
        f"Hi {hello}, thanks for helping with this issue!",
        "",
        f"Automatic reproductions only start when someone with {who} access to this repository "
        f"asks for one, and your access here is {code_span(permission)}, so nothing will run for now.",
        f"A maintainer can start a run: with {label} on the issue, a comment `/reproduce` does it.",
    ])


_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


def has_marker(body: str | None, marker: str) -> bool:
    """Is ``body`` one of ours of that kind? Only its start counts: untrusted text inside it
    comes later (and has its ``<!--`` broken, :func:`gip.domain.markdown.defuse_markers`)."""
    return (body or "").startswith(marker)


_SHOWN = re.compile(r"<!-- github-issue-processor:version=(\d+) run=(\d+) -->")


def rendered_version(body: str | None) -> tuple[int, int] | None:
    """``(version, run)`` of the issue state a status comment shows, if it says.

    Only the tag on the line right after the marker counts; untrusted text comes later.
    """
    lines = (body or "").split("\n", 2)
    m = _SHOWN.fullmatch(lines[1]) if len(lines) > 1 and lines[0] == STATUS_MARKER else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_ours(comment: Mapping[str, object], *, login: str, user_id: int | None = None,
            app_id: int | None = None) -> bool:
    """Was ``comment`` written by us? By the App's id (``performed_via_github_app.id``) or the
    author's numeric id when we know them; else by login, without case and ``[bot]``."""
    via = comment.get("performed_via_github_app")
    if app_id is not None and isinstance(via, dict) and via.get("id") == app_id:
        return True
    user = comment.get("user")
    user = user if isinstance(user, dict) else {}
    if user_id is not None and user.get("id") is not None:
        return bool(user.get("id") == user_id)
    author = user.get("login")
    return isinstance(author, str) and bool(login) and _bare(author) == _bare(login)


def _bare(login: str) -> str:
    return login.strip().casefold().removesuffix("[bot]")
