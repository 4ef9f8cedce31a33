"""PURE secret redaction, shared by the worker (events, result.json, the S3 log) and the
status comment renderer. Standard library only: it moves into the ``gip`` library as is.

Two passes over the *whole* text, before any tail or cap is cut (see docs/internals.md,
"Redaction and inert comments"):

- exact values: credentials the worker handed to a run and secrets it holds itself, also
  URL-encoded; a start or end of one that touches a cut (the text's start or end, or ``…``,
  which every cut in this project leaves), or is 12 characters long anywhere, is redacted
  too, so an earlier cut cannot leave a recognisable piece;
- patterns: AWS key ids and session tokens, secret-looking assignments, GitHub tokens,
  private key blocks, ``Authorization`` headers and bearer tokens, credentials in URLs; and
  the partial line after a cut that dropped the middle of the text (``…[what was dropped]…``):
  it may end a secret whose recognisable start is gone.

This is against accidental disclosure (a snippet that runs ``env``), not against a snippet
that encodes what it prints: a run that wants to exfiltrate has the network anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import overload
from urllib.parse import quote

REDACTED = "[REDACTED]"
CUT = "…"  # what our cuts leave behind (runner's output cap, clipped fields)
MIN_SECRET_CHARS = 8  # shorter "secrets" (test keys such as "x") would shred ordinary text
FRAGMENT_CHARS = 6  # a piece of an exact value this long, at a cut, is redacted
# Environment variable names whose values the worker treats as secrets it holds.
SECRET_ENV_NAME = re.compile(r"SECRET|TOKEN|PASSW|PRIVATE_KEY|ACCESS_KEY|API_KEY|CREDENTIAL", re.I)

_EDGE = r"(?=\n?…|\Z)"
_AWS_ID_PREFIX = r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)"
# STS session tokens are base64 and start with a fixed header (IQoJb3JpZ2lu… today).
_SESSION_PREFIX = r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|FQoGZXIvYXdz|AQoDYXdz)"
_PEM_LABEL = r"[A-Z0-9 ]*PRIVATE KEY[A-Z ]*"
_SECRET_WORD = (r"(?:secret|token|passw(?:or)?d|passwd|pwd|api[_-]?key|apikey|access[_-]?key"
                r"|private[_-]?key|credentials?|auth[_-]?token)")
_PEM_END = re.compile(r"-----END " + _PEM_LABEL + "-----")
_PEM_BODY_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\n]*)[ \t]*\r?")

# An ordinary word (lower case or Capitalised, maybe hyphenated; or all capitals; or a mask of
# stars), shorter than a credential: what a log line says after "token:", not a secret.
_WORD = re.compile(r"(?:[A-Z]?[a-z]+(?:-[a-z]+)*|[A-Z]+|\**)[.!?)]?")
_WORD_MAX = 15  # 16 characters and more may be a password of letters: redacted whatever they are


def _assigned(m: re.Match[str]) -> str:
    """The secret-looking assignment's value redacted, unless it follows a colon and is an
    ordinary word (:data:`_WORD`): ``token: expired`` stays, ``token: 9f2kQ…`` does not; after
    ``=`` (an assignment proper, ``PASSWORD=hunter``) any value is redacted."""
    key, value = m.group(1), m.group(2)
    word = value.strip("\"'")
    if key.rstrip().endswith(":") and len(word) <= _WORD_MAX and _WORD.fullmatch(word):
        return m.group(0)
    return key + REDACTED


_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # the partial line right after a cut that dropped the middle (``…[N bytes … dropped]…``,
    # the runner's output cap): it may be the end of a secret whose key the cut took away
    (re.compile(r"(…\[[^\]\n]{0,100}\]…\n?)[^\n]+"), r"\1" + REDACTED),
    # a private key block; with its END cut off, up to the cut
    (re.compile(r"-----BEGIN " + _PEM_LABEL + r"-----.*?(?:-----END " + _PEM_LABEL + r"-----|(?=…)|\Z)",
                re.S), "[REDACTED PRIVATE KEY]"),
    # GitHub tokens (classic/OAuth/user/server/refresh, fine-grained), AWS key ids and session
    # tokens: also a start of one (8 characters past the prefix), which a cut that left no
    # mark (a plug-in processor's own clipping) may have made of it
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{8,}"), "[REDACTED GITHUB TOKEN]"),
    (re.compile(r"github_pat_[A-Za-z0-9_]+"), "[REDACTED GITHUB TOKEN]"),
    (re.compile(_AWS_ID_PREFIX + r"[A-Z0-9]{8,16}"), "[REDACTED AWS KEY ID]"),
    (re.compile(_SESSION_PREFIX + r"[A-Za-z0-9/+=]{8,}"), "[REDACTED AWS SESSION TOKEN]"),
    # Authorization headers, whatever the scheme and however short the value
    (re.compile(r"(?i)(\bauthorization[\"']?\s{0,5}[:=]\s{0,5}[\"']?(?:(?:bearer|token|basic|digest)\s+)?)"
                r"(?!\[REDACTED)[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{12,}"), r"\1 " + REDACTED),
    # credentials inside URLs
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,15}://)[^/\s:@]{1,200}:[^/\s@]{1,200}@"),
     r"\1" + REDACTED + "@"),
    # <SecretAccessKey>…</SecretAccessKey> (STS and other XML answers printed by a debug log)
    (re.compile(r"(?i)<([A-Za-z]*" + _SECRET_WORD + r"[A-Za-z]*)>[^<]*</\1>"), r"<\1>" + REDACTED + r"</\1>"),
    # ... and one whose closing tag a cut took away: the value runs to a tag, quote or space
    (re.compile(r"(?i)(<[A-Za-z]*" + _SECRET_WORD + r"[A-Za-z]*>)(?!\[REDACTED)[^<\s\"']+"), r"\1" + REDACTED),
    # key = value, "key": "value", --key value where the key looks secret (a quoted value
    # whose closing quote was cut away runs to the end of the line); after a colon, an
    # ordinary word is prose ("token: expired"), not a secret (:func:`_assigned`)
    # (the key is matched from its start: a regex free to start anywhere backtracks badly)
    (re.compile(r"(?i)(?<![A-Za-z0-9_.-])([\"']?[A-Za-z0-9_.-]*?" + _SECRET_WORD
                + r"[A-Za-z0-9_.-]{0,40}[\"']?\s{0,5}[=:]\s{0,5})"
                r"(?!\[REDACTED|[{\[])(\"[^\"\n]*\"?|'[^'\n]*'?|[^\s,;\"']+)"), _assigned),
    (re.compile(r"(?i)(--[a-z0-9-]*(?:secret|token|passw(?:or)?d)[a-z0-9-]*[ =])(?!\[REDACTED)(\S+)"),
     r"\1" + REDACTED),
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"), "[REDACTED SLACK TOKEN]"),
    # what is left of a token that an earlier cut split: its recognisable start, at the cut
    (re.compile(r"gh[pousr]_[A-Za-z0-9]*" + _EDGE), "[REDACTED GITHUB TOKEN]"),
    (re.compile(_AWS_ID_PREFIX + r"[A-Z0-9]*" + _EDGE), "[REDACTED AWS KEY ID]"),
    (re.compile(_SESSION_PREFIX + r"[A-Za-z0-9/+=]*" + _EDGE), "[REDACTED AWS SESSION TOKEN]"),
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]+" + _EDGE), r"\1 " + REDACTED),
)
# A bare AWS secret access key: 40 characters of mixed case and digits (a git SHA is all hex);
# at a cut, a shorter start of one.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])(?:[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])|[A-Za-z0-9/+]{20,39}"
                         + _EDGE + ")")


def _looks_like_aws_secret(m: re.Match[str]) -> str:
    s = m.group(0)
    if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
        return "[REDACTED AWS SECRET]"
    return s


def secrets_from_env(environ: Mapping[str, str]) -> frozenset[str]:
    """Values of variables whose names look secret (keys, tokens, passwords)."""
    return frozenset(v for k, v in environ.items() if SECRET_ENV_NAME.search(k) and len(v) >= MIN_SECRET_CHARS)


class Redactor:
    """Redact ``values`` (exact) and the secret patterns from text. Immutable; cheap to call."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        usable = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS}
        forms = usable | {quote(v, safe="") for v in usable}
        self.values = tuple(sorted(usable, key=len, reverse=True))
        # longest first, so a value that contains another is replaced whole
        self._exact = (re.compile("|".join(re.escape(v) for v in sorted(forms, key=len, reverse=True)))
                       if forms else None)

    def with_values(self, values: Iterable[str]) -> Redactor:
        """A redactor that also knows ``values``."""
        return Redactor((*self.values, *values))

    def __call__(self, text: str) -> str:
        """``text`` with every known secret replaced. Call it on the whole text, then cut."""
        # patterns first: an exact value inside a token would otherwise hide the token's shape
        # (what a pattern leaves of a value, the fragment pass below still finds)
        for pattern, repl in _RULES:
            text = pattern.sub(repl, text)
        text = _AWS_SECRET.sub(_looks_like_aws_secret, _headless_pem(text))
        if self._exact is not None:
            text = _cut_fragments(self._exact.sub(REDACTED, text), self.values)
        return text

    @overload
    def data(self, value: str) -> str: ...
    @overload
    def data(self, value: Mapping[str, object]) -> dict[str, object]: ...
    @overload
    def data(self, value: object) -> object: ...

    def data(self, value: object) -> object:
        """``value`` (JSON-like: dicts, lists, strings) with every string redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


PATTERNS_ONLY = Redactor()


def redact(text: str, values: Iterable[str] = ()) -> str:
    """Redact ``values`` and the secret patterns from ``text``."""
    return (Redactor(values) if values else PATTERNS_ONLY)(text)


def _cut_fragments(text: str, values: tuple[str, ...]) -> str:
    """Redact pieces of ``values`` that an earlier cut left: a start (or an end) of one, that
    touches a cut (the text's ends, ``…``) or is twice ``FRAGMENT_CHARS`` long anywhere (a cut
    that left no mark, such as a plug-in processor's own clipping)."""
    spans: list[tuple[int, int]] = []
    marks = [i for i, c in enumerate(text) if c == CUT] if CUT in text else []
    # a cut's marker may sit on a line of its own (the runner's does)
    ends = {len(text)} | set(marks) | {i - 1 for i in marks if i and text[i - 1] == "\n"}
    starts = {0} | {i + 1 for i in marks} | {i + 2 for i in marks if text[i + 1:i + 2] == "\n"}
    for value in values:
        head, tail = value[:FRAGMENT_CHARS], value[-FRAGMENT_CHARS:]
        i = text.find(head)
        while i >= 0:
            k = FRAGMENT_CHARS
            while k < len(value) and i + k < len(text) and text[i + k] == value[k]:
                k += 1
            if i + k in ends or k >= 2 * FRAGMENT_CHARS:
                spans.append((i, i + k))
            i = text.find(head, i + 1)
        j = text.find(tail)
        while j >= 0:
            start, k = j, FRAGMENT_CHARS
            while k < len(value) and start > 0 and text[start - 1] == value[-k - 1]:
                start, k = start - 1, k + 1
            if start in starts or k >= 2 * FRAGMENT_CHARS:
                spans.append((start, j + FRAGMENT_CHARS))
            j = text.find(tail, j + 1)
        spans += _pieces_at_markers(text, value)
    return _replace_spans(text, spans)


_MARKER = re.compile(r"\[REDACTED[^\]\n]{0,40}\]")


def _pieces_at_markers(text: str, value: str) -> list[tuple[int, int]]:
    """A piece of ``value`` (any part, not only its start or end) that touches a redaction
    marker: what is left of it when a pattern took the rest (found by the property tests)."""
    spans = []
    for m in _MARKER.finditer(text):
        before = text[max(0, m.start() - len(value)):m.start()]
        n = _longest(len(before), _ends_in(value, before))
        if n >= FRAGMENT_CHARS:
            spans.append((m.start() - n, m.start()))
        after = text[m.end():m.end() + len(value)]
        n = _longest(len(after), _starts_in(value, after))
        if n >= FRAGMENT_CHARS:
            spans.append((m.end(), m.end() + n))
    return spans


def _ends_in(value: str, text: str) -> Callable[[int], bool]:
    return lambda k: value.find(text[len(text) - k:]) >= 0


def _starts_in(value: str, text: str) -> Callable[[int], bool]:
    return lambda k: value.find(text[:k]) >= 0


def _longest(most: int, fits: Callable[[int], bool]) -> int:
    """The largest k ≤ most with fits(k), for a fits that holds up to some k and not after."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _headless_pem(text: str) -> str:
    """Redact the end of a private key whose BEGIN line a cut removed (whole blocks are gone
    by now): the END line and the key-body lines just above it. Walked in Python: a regex
    would backtrack over every line."""
    if "-----END" not in text:
        return text
    spans = []
    for m in _PEM_END.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1  # the END line may start mid-line after a cut
        while start > 0:
            above = text.rfind("\n", 0, start - 1) + 1
            if not _PEM_BODY_LINE.fullmatch(text, above, start - 1):
                break
            start = above
        spans.append((start, m.end()))
    return _replace_spans(text, spans, "[REDACTED PRIVATE KEY]")


def _replace_spans(text: str, spans: list[tuple[int, int]], repl: str = REDACTED) -> str:
    if not spans:
        return text
    out, pos = [], 0
    for start, end in sorted(spans):
        if end <= pos:
            continue
        if start >= pos:  # overlapping spans share one placeholder
            out += [text[pos:start], repl]
        pos = end
    out.append(text[pos:])
    return "".join(out)
