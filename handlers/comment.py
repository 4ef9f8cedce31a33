"""PURE rendering of the status comment and the untrusted-sender note.

The notifier keeps one status comment per issue and edits it in place; it finds the comment
again by :data:`STATUS_MARKER`, a hidden HTML comment, among comments by our own login.

Output shown on a public issue is sanitised first (:func:`sanitize`): AWS keys, GitHub
tokens, bearer tokens, private keys, credentials in URLs and secret-looking assignments are
redacted. Bodies stay under GitHub's 65,536-character limit: the log tail gives way first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

STATUS_MARKER = "<!-- github-issue-processor:status -->"
UNTRUSTED_MARKER = "<!-- github-issue-processor:untrusted -->"
GITHUB_LIMIT = 65_536
# Margin below the hard limit: GitHub may count some characters twice (UTF-16 surrogates).
MAX_BODY_CHARS = 65_000
TAIL_LINES = 40
MAX_FIELD_CHARS = 2_000
REDACTED = "[REDACTED]"

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


# ---------------------------------------------------------------- sanitising

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SECRET_WORD = (r"(?:secret|token|passw(?:or)?d|passwd|pwd|api[_-]?key|apikey|access[_-]?key"
                r"|private[_-]?key|credentials?|authorization|auth[_-]?token)")
_RULES: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, also when the tail cut off the BEGIN line
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
                re.S), "[REDACTED PRIVATE KEY]"),
    (re.compile(r"\A(?:(?!-----BEGIN).)*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S),
     "[REDACTED PRIVATE KEY]"),
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained (github_pat_)
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), "[REDACTED GITHUB TOKEN]"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"), "[REDACTED GITHUB TOKEN]"),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"),
     "[REDACTED AWS KEY ID]"),
    # Authorization headers and bearer tokens
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{12,}"), r"\1 " + REDACTED),
    # credentials inside URLs
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,15}://)[^/\s:@]{1,200}:[^/\s@]{1,200}@"),
     r"\1" + REDACTED + "@"),
    # key = value / "key": "value" where the key looks secret
    (re.compile(r"(?i)(?<![A-Za-z0-9_.-])([\"']?[A-Za-z0-9_.-]{0,40}" + _SECRET_WORD
                + r"[A-Za-z0-9_.-]{0,40}[\"']?\s{0,5}[=:]\s{0,5})"
                r"(?!\[REDACTED)(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;]+)"), r"\1" + REDACTED),
    # Slack tokens
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "[REDACTED SLACK TOKEN]"),
]
# A bare 40-character AWS secret access key: mixed case and digits (not a git SHA, all hex).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _looks_like_aws_secret(m: re.Match[str]) -> str:
    s = m.group(0)
    if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
        return "[REDACTED AWS SECRET]"
    return s


def sanitize(text: str) -> str:
    """Strip terminal escapes and control characters, then redact secret-looking strings."""
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return _AWS_SECRET.sub(_looks_like_aws_secret, text)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (without a trailing empty line)."""
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fence(content: str) -> str:
    """A code fence longer than any backtick run inside ``content``, so it cannot break out."""
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    return "`" * max(3, longest + 1)


def _inline_code(text: str) -> str:
    """``text`` as inline code that its own backticks cannot end early."""
    text = text.replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


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


def result_link(view: StatusView) -> str | None:
    """A markdown link to the full result: ``result_url`` if known, else the S3 console."""
    if view.result_url:
        return f"[full result]({view.result_url})"
    if view.result_uri and view.result_uri.startswith("s3://"):
        bucket, _, key = view.result_uri[5:].partition("/")
        url = f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"
        return f"[full result]({url}) (`{view.result_uri}`)"
    if view.result_uri:
        return f"`{_clip(sanitize(view.result_uri[:1000]), 500)}`"
    return None


def _rows(view: StatusView) -> Iterable[tuple[str, str]]:
    yield "State", STATE_TEXT.get(view.state, view.state)
    yield "Run", f"#{view.run}"
    if view.verdict:
        yield "Verdict", VERDICT_TEXT.get(view.verdict, view.verdict)
    if view.command:
        yield "Command", _inline_code(_clip(sanitize(view.command[:1000]), 300))
    if view.exit_code is not None:
        yield "Exit code", f"`{view.exit_code}`"
    if view.duration_s is not None:
        yield "Duration", format_duration(view.duration_s)
    if view.reason:
        yield "Reason", SKIP_TEXT.get(view.reason, view.reason)
    if view.attempt is not None and view.state in ("failed", "retrying"):
        yield "Attempt", str(view.attempt)
    link = result_link(view)
    if link:
        yield "Result", link


def _head(view: StatusView) -> str:
    rows = "\n".join(f"| {k} | {v.replace('|', '&#124;')} |" for k, v in _rows(view))
    parts = [STATUS_MARKER]
    if view.version is not None:
        parts.append(f"<!-- github-issue-processor:version={int(view.version)} run={int(view.run)} -->")
    parts += ["### Reproduction status", "", "| | |", "|---|---|", rows]
    if view.message:
        parts += ["", _clip(sanitize(view.message[:1000]).replace("\n", " "), 500)]
    if view.error:
        err = _clip(sanitize(view.error[: 2 * MAX_FIELD_CHARS]))
        fence = _fence(err)
        parts += ["", "**Error**", "", f"{fence}text", err, fence]
    return "\n".join(parts)


def render_status(view: StatusView, *, limit: int = MAX_BODY_CHARS) -> str:
    """The status comment body; always under ``limit`` characters (the log tail gives way)."""
    head = _head(view)
    footer = "\n\n<sub>Posted by github-issue-processor; this comment is edited as the run goes.</sub>"
    if not view.log_tail:
        return (head + footer)[:limit]
    # Pre-cut so sanitising stays cheap; a secret split at this cut is dropped further down,
    # because the kept tail is far shorter than what is sanitised.
    log = sanitize(tail(view.log_tail[-3 * limit:]))
    fence = _fence(log)
    title = f"Last {TAIL_LINES} lines of output"

    def with_log(text: str) -> str:
        return (f"{head}\n\n<details><summary>{title}</summary>\n\n{fence}text\n{text}\n{fence}\n"
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
    label = ", ".join(f"`{name}`" for name in labels) or "the reproduction label"
    return "\n".join([
        UNTRUSTED_MARKER,
        f"Hi @{sender}, thanks for helping with this issue!",
        "",
        f"Automatic reproductions only start when someone with {who} access to this repository "
        f"asks for one, and your access here is `{permission}`, so nothing will run for now.",
        f"A maintainer can start a run: with {label} on the issue, a comment `/reproduce` does it.",
    ])


def has_marker(body: str | None, marker: str) -> bool:
    return bool(body) and marker in (body or "")


_SHOWN = re.compile(r"<!-- github-issue-processor:version=(\d+) run=(\d+) -->")


def rendered_version(body: str | None) -> tuple[int, int] | None:
    """``(version, run)`` of the issue state a status comment shows, if it says.

    Only the first match counts: the tag sits above the log tail, which could contain a copy.
    """
    m = _SHOWN.search(body or "")
    return (int(m.group(1)), int(m.group(2))) if m else None
