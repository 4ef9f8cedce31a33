"""PURE: untrusted text made inert in GitHub markdown. Standard library only.

Text from an issue or from a run may end up in the bot's comment. There it must not mention
anyone, link, embed an image, carry HTML, or forge our hidden markers. Two shapes:

- :func:`code_span` / :func:`fence`: verbatim, in code that its own backticks cannot close
  (GitHub renders no mention, link or HTML inside code);
- :func:`inert`: prose with quotes in it (the verdict's message): code spans in it are kept
  (rebuilt by :func:`code_span`), everything else is escaped text.

GitHub's rules this follows: mentions are ``@login`` / ``@org/team`` after a non-word
character (https://docs.github.com/en/get-started/writing-on-github/getting-started-with-writing-and-formatting-on-github/basic-writing-and-formatting-syntax#mentioning-people-and-teams),
links are autolinked from ``http(s)://`` and ``www.`` (GFM "autolinks (extension)"), and
``#123`` / ``GH-123`` become cross-references that notify the referenced issue.
"""

from __future__ import annotations

import re

ZWJ = "\u200d"  # zero-width joiner: invisible, and it breaks the tokens GitHub looks for
_LINE_BREAK = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BACKTICKS = re.compile(r"`+")
# what can start inline markup on one line: emphasis, code, links/images, HTML and entities,
# table cells, strikethrough, math (block markup is stopped by a leading ZWJ, see inert)
_PUNCT = re.compile(r"([\\`*_\[\]<>!|~&$])")
# tokens GitHub turns into notifications or links even when escaped: break them with a ZWJ
_TOKENS = re.compile(r"(?i)(@)(?=[a-z0-9_])|(#)(?=[0-9])|(gh)(?=-[0-9])|(://)|(www)(?=\.)")
_HIDDEN = "<!--"  # our markers are HTML comments; untrusted text never carries a live one


def _untoken(m: re.Match[str]) -> str:
    token = next(g for g in m.groups() if g)
    return token[0] + ZWJ + token[1:] if len(token) > 1 else token + ZWJ


def defuse_markers(text: str) -> str:
    """``text`` with every ``<!--`` broken, so it cannot forge a hidden marker."""
    return text.replace(_HIDDEN, "<" + ZWJ + "!--")


def escape_text(text: str) -> str:
    """``text`` as literal markdown text on one line: inline markup characters
    backslash-escaped (no emphasis, link, image, HTML or table cell), mentions, issue
    references and autolinks broken by a ZWJ."""
    text = _CONTROL.sub("", _LINE_BREAK.sub(" ", text))
    return _PUNCT.sub(r"\\\1", _TOKENS.sub(_untoken, text))


def code_span(text: str) -> str:
    """``text`` as inline code that its own backticks cannot end early (one line)."""
    text = defuse_markers(_CONTROL.sub("", _LINE_BREAK.sub(" ", text)))
    ticks = "`" * (max((len(r) for r in _BACKTICKS.findall(text)), default=0) + 1)
    if not text:
        return "` `"
    # CommonMark strips one space from each side when both are there: pad when it would matter
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(text: str, info: str = "text") -> str:
    """``text`` as a fenced code block longer than any backtick run inside it."""
    text = defuse_markers(text)
    ticks = "`" * max(3, max((len(r) for r in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{ticks}{info}\n{text}\n{ticks}"


def split_code_spans(text: str) -> list[tuple[bool, str]]:
    """``text`` as ``(is_code, content)`` parts: a backtick run opens a span that the next
    run of the same length closes (CommonMark); an unclosed run is plain text."""
    parts: list[tuple[bool, str]] = []
    pos = plain = 0
    while (m := _BACKTICKS.search(text, pos)) is not None:
        closer = re.compile(r"(?<!`)" + m.group(0) + r"(?!`)")
        end = closer.search(text, m.end())
        if end is None:
            pos = m.end()
            continue
        if m.start() > plain:
            parts.append((False, text[plain:m.start()]))
        content = text[m.end():end.start()]
        if len(content) >= 2 and content[0] == " " == content[-1] and content.strip(" "):
            content = content[1:-1]
        parts.append((True, content))
        pos = plain = end.end()
    if plain < len(text):
        parts.append((False, text[plain:]))
    return parts


def inert(text: str) -> str:
    """Untrusted prose as one inert markdown line: its code spans stay code, the rest is
    escaped text (:func:`escape_text`). The leading ZWJ means no heading, list, quote or
    indented code can start it."""
    return ZWJ + "".join(code_span(c) if is_code else escape_text(c) for is_code, c in split_code_spans(text))
