"""PURE: may a repository's own regex run on a hostile issue body? (the ``reported`` pattern of
``.github/reproduce.yml``, :func:`gip.domain.matrix.reported_version`).

Python's ``re`` has no timeout, so the bound is structural, on both sides:

- the text: at most :data:`MAX_SCAN_CHARS` characters of the body are searched;
- the pattern (:func:`pattern_problem`, read from ``re``'s own parse tree): refused when a
  repeat holds another repeat, an alternation or a backreference (``(a+)+``, ``(a|ab)*``: the
  exponential cases), unless each repetition opens with a literal that nothing repeated inside
  it can match (``(?:\\.\\d+)*``: every way through is the same way); refused too when three
  unbounded single-character repeats can all match one same character (``\\s*\\s*\\s*x``: the
  cubic case). What is left is at worst quadratic in :data:`MAX_SCAN_CHARS`.
"""

from __future__ import annotations

import re
from re import _constants as sre  # type: ignore[attr-defined]  # the parse tree (no stubs)
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_SCAN_CHARS = 10_000  # an issue form's version field sits near the top of the body
_PROBES = "".join(map(chr, range(128))) + "\u00a0\u00e9\u2003\u20ac\u0661"
_CATEGORY = {name: re.compile(regex) for name, regex in {
    "CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_LINEBREAK": r"\n", "CATEGORY_NOT_LINEBREAK": r"[^\n]"}.items()}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not run on an issue body, or None when it may."""
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a regular expression: {exc}"
    if tree.state.groups < 2:  # the state counts the whole match as group 0
        return "has no group: group 1 is the version"
    nested = _nested(list(tree))
    if nested:
        return f"may backtrack without end on a hostile issue body: {nested}"
    if _overlapping_unbounded(list(tree)) >= 3:
        return ("may backtrack without end on a hostile issue body: three unbounded repeats "
                "can match the same character")
    return None


def bounded(text: str) -> str:
    """The part of an issue body a repository's regex is run on."""
    return text[:MAX_SCAN_CHARS]


def _name(op: Any) -> str:
    return str(op)


def _children(op: Any, av: Any) -> list[list[tuple[Any, Any]]]:
    """The sub-sequences below one node of the parse tree."""
    name = _name(op)
    if name in _REPEATS:
        return [list(av[2])]
    if name == "SUBPATTERN":
        return [list(av[3])]
    if name in ("ATOMIC_GROUP",):
        return [list(av)]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(av[1])]
    if name == "BRANCH":
        return [list(b) for b in av[1]]
    if name == "GROUPREF_EXISTS":
        return [list(b) for b in av[1:] if b is not None]
    return []


def _nested(items: list[tuple[Any, Any]], inside: bool = False) -> str:
    """The first dangerous construct below a repeat ("" if none)."""
    for op, av in items:
        name = _name(op)
        if inside and name in ("BRANCH", "GROUPREF", "GROUPREF_EXISTS"):
            return "a repeat holds an alternation or a backreference"
        if name in _REPEATS and av[1] > 1:
            body = list(av[2])
            if inside:
                return "a repeat holds another repeat"
            if not _separated(body):
                found = _nested(body, inside=True)
                if found:
                    return found
            continue
        for child in _children(op, av):
            found = _nested(child, inside)
            if found:
                return found
    return ""


def _separated(body: list[tuple[Any, Any]]) -> bool:
    """``(?:<literal><single-character items and repeats of them>)``, the literal matched by
    none of them: each repetition starts at a character only it can take."""
    if not body or _name(body[0][0]) != "LITERAL":
        return False
    sep = chr(body[0][1])
    for op, av in body[1:]:
        chars = _chars(op, av)
        if chars is None and _name(op) in _REPEATS:
            inner = list(av[2])
            chars = _chars(*inner[0]) if len(inner) == 1 else None
        if chars is None or sep in chars:
            return False
    return True


def _overlapping_unbounded(items: list[tuple[Any, Any]]) -> int:
    """The most unbounded single-character repeats, one after another with nothing mandatory
    between them that none of them can match, that all match one probe character (a repeat of
    anything else, or a node not read here, counts as matching every character)."""
    most, run = 0, []  # run: the character sets of the repeats that can share a stretch of text
    for op, av in _flat(items):
        name = _name(op)
        if name in _REPEATS and av[1] == sre.MAXREPEAT:
            inner = list(av[2])
            chars = (frozenset({chr(inner[0][1])}) if _separated(inner)  # only its separator
                     else _chars(*inner[0]) if len(inner) == 1 else None)  # starts a repetition
            run.append(chars if chars is not None else frozenset(_PROBES))
            most = max(most, max(sum(c in s for s in run) for c in _PROBES))
        elif name in _REPEATS and av[0] == 0:
            continue  # optional: it separates nothing
        elif name not in _REPEATS and _children(op, av):  # an alternation, a lookaround …
            most = max([most, *(_overlapping_unbounded(child) for child in _children(op, av))])
            run.append(frozenset(_PROBES))  # … may hold a repeat: it may take any character
        else:
            chars = _chars(op, av) if name not in _REPEATS else _chars(*next(iter(av[2])))
            if chars is not None and not chars & frozenset().union(*run):
                run = []  # a character none of them takes: the stretch ends here
    return most


def _flat(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The sequence with groups opened; other compound nodes stay as they are."""
    out: list[tuple[Any, Any]] = []
    for op, av in items:
        if _name(op) in ("SUBPATTERN", "ATOMIC_GROUP"):
            out += _flat(_children(op, av)[0])
        else:
            out.append((op, av))
    return out


def _chars(op: Any, av: Any) -> frozenset[str] | None:
    """The probe characters one single-character item matches (None: not one character)."""
    name = _name(op)
    if name == "LITERAL":
        return frozenset({chr(av)})
    if name == "NOT_LITERAL":
        return frozenset(c for c in _PROBES if ord(c) != av)
    if name == "ANY":
        return frozenset(_PROBES) - {"\n"}
    if name == "IN":
        return frozenset(c for c in _PROBES if _in_set(av, c))
    return None


def _in_set(members: list[tuple[Any, Any]], c: str) -> bool:
    negate, hit = False, False
    for op, av in members:
        name = _name(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit = hit or ord(c) == av
        elif name == "RANGE":
            hit = hit or av[0] <= ord(c) <= av[1]
        elif name == "CATEGORY":
            regex = _CATEGORY.get(_name(av).replace("UNI_", "").replace("LOC_", ""))
            hit = hit or regex is None or regex.fullmatch(c) is not None
        else:  # an opcode not known here: assume it matches (the careful answer)
            hit = True
    return hit != negate
