"""Version matrix and bisect (issue 17). PURE: config, version lists and an oracle in, a result out.

A repository opts in with ``.github/reproduce.yml`` (read by the gatekeeper,
:mod:`gip.services.repo_config`). Its parsed form is validated against :data:`CONFIG_SCHEMA`
and becomes a :class:`MatrixConfig`; the gatekeeper resolves the version list and copies both
into ``IssueQueued``. The worker then calls :func:`run_matrix` with an oracle that runs one cell
(the reproduction with ``REPRO_VERSION`` set) and records what comes back.

- Versions are ordered with ``packaging.version``; yanked releases and prereleases are dropped
  unless configured (:func:`order_versions`).
- The reported version comes from the issue body: the issue-form heading (``### Version``
  by default) or a regex with one group (:func:`reported_version`), one that cannot backtrack
  without end (:func:`reported_problem`; :mod:`gip.domain.regex_guard`).
- :func:`bisect` is a binary search over an ordered list for the first version on the other side
  of a boundary. It never runs more than its cap, skips ``broken_repro`` cells (and says so), and
  answers ``inconclusive`` rather than name a boundary its own observations contradict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gip.domain.regex_guard import bounded, pattern_problem

if TYPE_CHECKING:  # imported where used: a handler without a reproduce.yml never loads packaging
    from packaging.version import Version

REPRODUCED, NOT_REPRODUCED, BROKEN_REPRO = "reproduced", "not_reproduced", "broken_repro"
STILL_REPRODUCES, FIXED_IN_LATEST = "still_reproduces", "fixed_in_latest"
NOT_REPRODUCED_ON_REPORTED, REGRESSED, INCONCLUSIVE = "not_reproduced_on_reported", "regressed", "inconclusive"
SUMMARIES = (STILL_REPRODUCES, FIXED_IN_LATEST, NOT_REPRODUCED_ON_REPORTED, REGRESSED, INCONCLUSIVE)
DEFAULT_HEADING = "### Version"
DEFAULT_MAX_RUNS = 8
MAX_RUNS_LIMIT = 32

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["versions"],
    "properties": {
        "versions": {
            "type": "object",
            "additionalProperties": False,
            "required": ["source"],
            "properties": {
                "source": {"type": "string", "pattern": r"^(pypi:[A-Za-z0-9._-]+|npm:(@[a-z0-9._-]+/)?[a-z0-9._-]+|list)$"},
                "index": {"type": "string", "pattern": r"^https?://\S+$"},
                "list": {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1, "maxItems": 1000},
                "include_prereleases": {"type": "boolean"},
            },
            "if": {"properties": {"source": {"const": "list"}}},
            "then": {"required": ["list"]},
        },
        "reported": {"type": "string", "minLength": 1, "maxLength": 200},
        "matrix": {"type": "array", "minItems": 1, "maxItems": 8, "uniqueItems": True,
                   "items": {"type": "string", "minLength": 1, "maxLength": 64}},
        "bisect": {"type": "boolean"},
        "max_runs": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_LIMIT},
        "clean_between": {"type": "boolean"},
    },
}


@dataclass(frozen=True)
class MatrixConfig:
    """A validated ``reproduce.yml``, defaults filled in. ``versions`` is the resolved list
    (ascending) once the gatekeeper has asked the registry; empty before."""

    source: str
    index: str | None = None
    listed: tuple[str, ...] = ()
    include_prereleases: bool = False
    reported: str = DEFAULT_HEADING
    matrix: tuple[str, ...] = ("reported", "latest")
    bisect: bool = False
    max_runs: int = DEFAULT_MAX_RUNS
    clean_between: bool = False
    versions: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> MatrixConfig:
        """From a document that passed :data:`CONFIG_SCHEMA` (or from ``IssueQueued``)."""
        v = doc.get("versions") or {}
        if isinstance(v, list):  # the IssueQueued form: versions resolved, source kept apart
            return cls(source=str(doc.get("source", "list")), index=doc.get("index"),
                       include_prereleases=bool(doc.get("include_prereleases", False)),
                       reported=str(doc.get("reported", DEFAULT_HEADING)),
                       matrix=tuple(str(m) for m in doc.get("matrix", ("reported", "latest"))),
                       bisect=bool(doc.get("bisect", False)),
                       max_runs=int(doc.get("max_runs", DEFAULT_MAX_RUNS)),
                       clean_between=bool(doc.get("clean_between", False)),
                       versions=tuple(str(x) for x in v))
        return cls(source=str(v["source"]), index=v.get("index"),
                   listed=tuple(str(x) for x in v.get("list", ())),
                   include_prereleases=bool(v.get("include_prereleases", False)),
                   reported=str(doc.get("reported", DEFAULT_HEADING)),
                   matrix=tuple(str(m) for m in doc.get("matrix", ("reported", "latest"))),
                   bisect=bool(doc.get("bisect", False)),
                   max_runs=int(doc.get("max_runs", DEFAULT_MAX_RUNS)),
                   clean_between=bool(doc.get("clean_between", False)))

    def to_event(self) -> dict[str, Any]:
        """The concrete config as ``IssueQueued`` carries it (``versions`` resolved)."""
        out: dict[str, Any] = {"source": self.source, "versions": list(self.versions),
                               "reported": self.reported, "matrix": list(self.matrix),
                               "bisect": self.bisect, "max_runs": self.max_runs,
                               "clean_between": self.clean_between,
                               "include_prereleases": self.include_prereleases}
        if self.index:
            out["index"] = self.index
        return out


# ---------------------------------------------------------------- versions


def order_versions(candidates: Iterable[tuple[str, bool]], *, include_prereleases: bool = False) -> tuple[str, ...]:
    """``(version, yanked)`` pairs → distinct valid versions, ascending; yanked dropped, and
    prereleases (and dev releases) unless ``include_prereleases``. Unparseable ones are dropped."""
    from packaging.version import InvalidVersion, Version

    seen: dict[Version, str] = {}
    for text, yanked in candidates:
        if yanked:
            continue
        try:
            parsed = Version(text)
        except InvalidVersion:
            continue
        if parsed.is_prerelease and not include_prereleases:
            continue
        seen.setdefault(parsed, text)
    return tuple(seen[v] for v in sorted(seen))


def find_version(versions: Sequence[str], wanted: str) -> int | None:
    """Index of ``wanted`` in ``versions`` by version equality (``1.4`` is ``1.4.0``), or None."""
    from packaging.version import InvalidVersion, Version

    try:
        target = Version(wanted.strip().lstrip("vV"))
    except InvalidVersion:
        return None
    for i, text in enumerate(versions):
        if Version(text) == target:
            return i
    return None


_HEADING = re.compile(r" {0,3}#{1,6}[ \t]+")
_VERSIONISH = re.compile(r"v?(\d+(?:\.\d+)*(?:[-.]?(?:a|b|rc|alpha|beta|dev|post)\.?\d*)?)", re.I)


def reported_problem(pattern: str) -> str | None:
    """Why a ``reported`` setting is refused (None: it is not): a heading never is; a regex is
    when :func:`~gip.domain.regex_guard.pattern_problem` says so."""
    return None if pattern.lstrip().startswith("#") else pattern_problem(pattern)


def reported_version(body: str, pattern: str = DEFAULT_HEADING) -> str | None:
    """The version the author reports. ``pattern`` starting with ``#`` is an issue-form heading:
    the first version-looking token of that section; otherwise a regex whose group 1 is it,
    refused if it could backtrack without end (:func:`gip.domain.regex_guard.pattern_problem`)
    and run on the first :data:`~gip.domain.regex_guard.MAX_SCAN_CHARS` characters of the body
    only (the heading is found line by line with our own linear patterns, in the whole body)."""
    text = (body or "").replace("\r\n", "\n")
    if pattern.lstrip().startswith("#"):
        heading = pattern.strip().lstrip("#").strip().lower()
        lines = text.split("\n")
        for i, line in enumerate(lines):
            m = _HEADING.match(line)  # the title: the rest, closing #s cut without a regex (a
            if not m or line[m.end():].rstrip(" \t#").strip().lower() != heading:  # lazy group
                continue                                      # backtracked on a line of 64K "#")
            for following in lines[i + 1:]:
                if re.match(r"^ {0,3}#{1,6}[ \t]", following):
                    break
                found = _VERSIONISH.search(following)
                if found:
                    return found.group(1)
            return None
        return None
    if pattern_problem(pattern) is not None:  # refused (the gatekeeper said so: bad_config)
        return None
    m = re.search(pattern, bounded(text), re.M)  # a hostile body: a bounded search
    if not m or m.group(1) is None:
        return None
    return m.group(1).strip()


# ---------------------------------------------------------------- bisect


Oracle = Callable[[str], str]  # version -> reproduced | not_reproduced | broken_repro


@dataclass(frozen=True)
class Bisection:
    """What :func:`bisect` found. ``boundary`` is the first version on the far side (the first
    that no longer reproduces for ``fixed``, the first that does for ``introduced``), or None
    when ``inconclusive``. ``skipped`` are broken cells jumped over; ``runs`` the oracle calls."""

    boundary: str | None
    inconclusive: bool
    runs: int
    observed: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    reason: str = ""


def bisect(versions: Sequence[str], lo: int, hi: int, oracle: Oracle, *, max_runs: int,
           observed: Mapping[str, str] | None = None) -> Bisection:
    """Binary search in ``versions[lo..hi]`` for the first index whose verdict differs from
    ``versions[lo]``'s (``versions[hi]``'s verdict is the other one). ``observed`` holds cells
    already run (the matrix); they are never re-run and count as evidence. At most ``max_runs``
    oracle calls. Broken cells between the last two sides are skipped over (``skipped``): the
    boundary is then the first version past them that ran. ``inconclusive`` when the cap stops
    the search or when the observations are not monotone."""
    seen: dict[str, str] = dict(observed or {})
    low_side = seen.get(versions[lo], REPRODUCED)
    runs, skipped = 0, list[str]()
    left, right = lo, hi  # versions[left] is low_side, versions[right] is the other side
    while True:
        between = [i for i in range(left + 1, right) if seen.get(versions[i]) != BROKEN_REPRO]
        if not between:
            break
        mid = between[len(between) // 2]
        verdict = seen.get(versions[mid])
        if verdict is None:
            if runs >= max_runs:
                return Bisection(None, True, runs, seen, tuple(skipped),
                                 f"run cap reached between {versions[left]} and {versions[right]}")
            verdict = oracle(versions[mid])
            seen[versions[mid]] = verdict
            runs += 1
        if verdict == BROKEN_REPRO:
            skipped.append(versions[mid])
        elif verdict == low_side:
            left = mid
        else:
            right = mid
    if not monotone(versions, seen, low_side):
        return Bisection(None, True, runs, seen, tuple(skipped), "the cells do not change at one boundary")
    return Bisection(versions[right], False, runs, seen, tuple(skipped))


def monotone(versions: Sequence[str], seen: Mapping[str, str], low_side: str) -> bool:
    """True when every observed ``low_side`` cell lies below every observed other (non-broken) cell."""
    sides = [seen[v] for v in versions if v in seen and seen[v] != BROKEN_REPRO]
    first_other = next((i for i, s in enumerate(sides) if s != low_side), len(sides))
    return all(s != low_side for s in sides[first_other:])
