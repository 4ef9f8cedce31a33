"""Find the reproduction in an issue body. PURE: text in, data out, no I/O.

Order of preference:

1. A fenced block whose info string says ``repro`` (```` ```bash repro ```` or ```` ```repro ````).
2. The section under a "Reproduction Steps"-style heading (GitHub issue forms render every
   field as ``### Label``): the fenced blocks in it, by language ``sh``/``bash``/``console``,
   then ``python``, then ``typescript``/``javascript``. Blocks of the chosen language are joined
   in document order (an "install" block followed by a "run" block).

Markdown is read line by line with a fence tracker, so a ``###`` inside a fence never starts a
section. ``_No response_`` (what issue forms write for an empty field) means empty.

The expected error text is what the issue quotes as the error it gets: blockquote lines and
inline code spans that look like an error line, fences tagged ``error``/``expected``, and the
last error-looking line of the fenced output under an "Actual behaviour"/"Error"/"Logs" heading.
Comments are never read: the worker sees only the body the maintainer-triggered event carries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

SHELL, PYTHON, JAVASCRIPT, TYPESCRIPT = "shell", "python", "javascript", "typescript"

_LANGUAGES = {
    "sh": SHELL, "bash": SHELL, "shell": SHELL, "console": SHELL, "zsh": SHELL,
    "shell-session": SHELL, "shellsession": SHELL,
    "python": PYTHON, "py": PYTHON, "python3": PYTHON, "pycon": PYTHON,
    "javascript": JAVASCRIPT, "js": JAVASCRIPT, "node": JAVASCRIPT, "mjs": JAVASCRIPT,
    "typescript": TYPESCRIPT, "ts": TYPESCRIPT,
}  # fmt: skip
_PREFERENCE = (SHELL, PYTHON, TYPESCRIPT, JAVASCRIPT)
_REPRO_HEADING = re.compile(
    r"(?i)\b(reproduc\w*|repro|steps to reproduce|how to reproduce|minimal example|"
    r"code (sample|example|snippet)|example code)\b"
)
_NOT_REPRO_HEADING = re.compile(r"(?i)\b(expected|actual)\b")
_ERROR_HEADING = re.compile(r"(?i)\b(actual|error|errors|traceback|logs?|output|what happened)\b")
_EXPECTED_HEADING = re.compile(r"(?i)\bexpected\b")
_ERROR_LINE = re.compile(
    r"(?i)(\b[\w.]*(error|exception)\b|\btraceback\b|\bfatal\b|\bpanic\b|\bfailed\b|"
    r"\bsegmentation fault\b|\bnot found\b|\bdenied\b)"
)
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_NO_RESPONSE = "_No response_"
_MIN_ERROR_LEN = 6


@dataclass(frozen=True)
class Fence:
    """One fenced code block."""

    info: str
    code: str
    section: str  # text of the nearest heading above it ("" at the top)

    @property
    def words(self) -> list[str]:
        return [w.strip("{}.,").lower() for w in re.split(r"[\s,{}]+", self.info) if w.strip("{}.,")]

    @property
    def language(self) -> str | None:
        for word in self.words:
            if word in _LANGUAGES:
                return _LANGUAGES[word]
        return None


@dataclass(frozen=True)
class Snippet:
    """A runnable snippet: its language, code and where it came from."""

    language: str
    code: str
    source: str  # "repro-fence" | "section"
    info: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()


@dataclass(frozen=True)
class Repro:
    """What :func:`find_repro` found. ``snippet`` is None with ``reason`` saying why."""

    snippet: Snippet | None
    expected_errors: tuple[str, ...] = ()
    reason: str = ""
    sections: tuple[str, ...] = field(default=(), repr=False)


@dataclass
class _Doc:
    fences: list[Fence]
    sections: list[tuple[str, int, list[str]]]  # heading, level, lines outside fences
    section_fences: dict[int, list[Fence]]


def parse(body: str) -> _Doc:
    """Split markdown into fences and heading sections; headings inside fences are text."""
    doc = _Doc(fences=[], sections=[("", 0, [])], section_fences={0: []})
    fence: tuple[str, int, str] | None = None  # (char, length, info)
    code: list[str] = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if fence is not None:
            char, length, info = fence
            stripped = line.strip()
            if stripped and set(stripped) == {char} and len(stripped) >= length and len(line) - len(line.lstrip(" ")) <= 3:
                made = Fence(info=info, code="\n".join(code), section=doc.sections[-1][0])
                doc.fences.append(made)
                doc.section_fences[len(doc.sections) - 1].append(made)
                fence, code = None, []
            else:
                code.append(line)
            continue
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(2)[0] == "`" and "`" in opened.group(3)):
            fence = (opened.group(2)[0], len(opened.group(2)), opened.group(3).strip())
            continue
        heading = _HEADING.match(line)
        if heading:
            doc.sections.append((heading.group(2).strip(), len(heading.group(1)), []))
            doc.section_fences[len(doc.sections) - 1] = []
            continue
        doc.sections[-1][2].append(line)
    if fence is not None:  # an unclosed fence runs to the end of the document (CommonMark)
        made = Fence(info=fence[2], code="\n".join(code), section=doc.sections[-1][0])
        doc.fences.append(made)
        doc.section_fences[len(doc.sections) - 1].append(made)
    return doc


def find_repro(body: str | None) -> Repro:
    """Return the snippet to run and the error text the issue expects, or why there is none."""
    doc = parse(body or "")
    expected = tuple(expected_errors(doc))
    headings = tuple(h for h, _, _ in doc.sections if h)
    for fence in doc.fences:
        if "repro" in fence.words and _clean(fence.code):
            language = fence.language or guess_language(fence.code)
            return Repro(Snippet(language, _runnable(fence, language), "repro-fence", fence.info), expected, "", headings)
    for index, (heading, _, lines) in enumerate(doc.sections):
        if not _REPRO_HEADING.search(heading) or _NOT_REPRO_HEADING.search(heading):
            continue
        snippet = _from_section(doc.section_fences[index], lines)
        if snippet is not None:
            return Repro(snippet, expected, "", headings)
        return Repro(None, expected, f"the '{heading}' section has no runnable sh/bash/console, python, typescript or javascript block", headings)
    if not body or not body.strip():
        return Repro(None, expected, "the issue body is empty", headings)
    return Repro(None, expected, "no ```repro block and no 'Reproduction Steps' section with a runnable block", headings)


def _from_section(fences: list[Fence], lines: list[str]) -> Snippet | None:
    runnable = [f for f in fences if f.language and _clean(f.code)]
    if not runnable:
        # Issue forms with `render:` wrap the whole field in one fence; an untagged fence in
        # a repro section is still the author's code: guess by shebang and keywords.
        untagged = [f for f in fences if not f.info and _clean(f.code)]
        if untagged:
            code = "\n".join(f.code for f in untagged)
            return Snippet(guess_language(code), code, "section", "")
        return None
    for language in _PREFERENCE:
        chosen = [f for f in runnable if f.language == language]
        if chosen:
            code = "\n".join(_runnable(f, language) for f in chosen)
            return Snippet(language, code, "section", chosen[0].info)
    return None  # pragma: no cover - every language is in _PREFERENCE


def _clean(code: str) -> str:
    return "" if code.strip() == _NO_RESPONSE else code.strip()


def _runnable(fence: Fence, language: str) -> str:
    """Console and pycon blocks mix prompts with output: keep only the commands."""
    lines = fence.code.split("\n")
    words = fence.words
    if language == SHELL and ("console" in words or any(line.startswith("$ ") for line in lines)):
        commands = [line[2:] for line in lines if line.startswith("$ ")]
        return "\n".join(commands) if commands else fence.code
    if language == PYTHON and ("pycon" in words or any(line.startswith(">>> ") for line in lines)):
        kept = [line[4:] for line in lines if line.startswith((">>> ", "... "))]
        return "\n".join(kept) if kept else fence.code
    return fence.code


def guess_language(code: str) -> str:
    """Guess an untagged snippet's language: shebang first, then tell-tale keywords."""
    first = code.lstrip().split("\n", 1)[0]
    if first.startswith("#!"):
        for name, language in (("python", PYTHON), ("node", JAVASCRIPT), ("ts-node", TYPESCRIPT), ("tsx", TYPESCRIPT)):
            if name in first:
                return language
        return SHELL
    if re.search(r"^(import \w|from [\w.]+ import |def \w+\(|print\()", code, re.M):
        return PYTHON
    if re.search(r"^(const |let |require\(|console\.log\()", code, re.M):
        return JAVASCRIPT
    return SHELL


def expected_errors(doc: _Doc) -> list[str]:
    """The error text the issue quotes: blockquotes, inline code, error fences, log tails."""
    found: list[str] = []

    def add(text: str) -> None:
        text = " ".join(text.split())
        if len(text) >= _MIN_ERROR_LEN and _ERROR_LINE.search(text) and text not in found:
            found.append(text)

    for heading, _, lines in doc.sections:
        if _EXPECTED_HEADING.search(heading):
            continue  # "should not raise `X`" is what the author wants, not what they get
        for line in lines:
            stripped = line.strip()
            if stripped.startswith(">"):
                add(stripped.lstrip("> ").strip())
            for span in _INLINE_CODE.findall(line):
                add(span)
    for fence in doc.fences:
        if "repro" in fence.words:
            continue
        if {"error", "expected-error", "expected"} & set(fence.words):
            for line in fence.code.split("\n"):
                add(line)
        elif _ERROR_HEADING.search(fence.section) and not _REPRO_HEADING.search(fence.section):
            error_lines = [line for line in fence.code.split("\n") if _ERROR_LINE.search(line)]
            if error_lines:
                add(error_lines[-1])
    return found


def output_matches(output: str, expected: tuple[str, ...] | list[str]) -> str | None:
    """Return the first expected error text found in ``output`` (whitespace-insensitive)."""
    flat = " ".join(output.split())
    for text in expected:
        if text and text in flat:
            return text
    return None
