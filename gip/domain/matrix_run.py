"""The matrix plan and its summary (issue 17). PURE over an oracle that runs one cell.

:func:`run_matrix` runs the configured cells (``reported``, ``latest`` or literal versions), in
order, within ``max_runs``; then, with ``bisect: true``, searches between the reported version
and the latest one when they disagree (:func:`gip.domain.matrix.bisect`), with what is left of
the cap. The summary reads the reported and latest cells:

============================  ===========  ==============
summary                       reported     latest
============================  ===========  ==============
``still_reproduces``          reproduced   reproduced
``fixed_in_latest``           reproduced   not reproduced (bisect: ``fixed_in``)
``not_reproduced_on_reported``  not        not
``regressed``                 not          reproduced (bisect: ``introduced_in``)
``inconclusive``              anything else (broken cell, unknown reported version, …)
============================  ===========  ==============
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gip.domain.matrix import (
    BROKEN_REPRO,
    FIXED_IN_LATEST,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_REPRODUCED_ON_REPORTED,
    REGRESSED,
    REPRODUCED,
    STILL_REPRODUCES,
    MatrixConfig,
    Oracle,
    bisect,
    find_version,
    reported_version,
)


@dataclass(frozen=True)
class MatrixResult:
    """Cells in the order they ran (``version -> verdict``), the summary, the boundary found."""

    cells: dict[str, str]
    summary: str
    reported: str | None
    latest: str | None
    fixed_in: str | None = None
    introduced_in: str | None = None
    note: str = ""
    skipped: tuple[str, ...] = field(default=())

    @property
    def runs(self) -> int:
        return len(self.cells)


def plan(config: MatrixConfig, body: str) -> tuple[list[str], str | None, str]:
    """The matrix cells to run, the reported version (as listed), and a note when it is unknown."""
    versions = config.versions
    wanted = reported_version(body, config.reported)
    index = find_version(versions, wanted) if wanted else None
    reported = versions[index] if index is not None else None
    note = ""
    if wanted is None:
        note = "no reported version found in the issue"
    elif reported is None:
        note = f"reported version {wanted} is not among the published versions"
    cells: list[str] = []
    for entry in config.matrix:
        if entry == "reported":
            version = reported
        elif entry == "latest":
            version = versions[-1] if versions else None
        else:
            found = find_version(versions, entry)
            version = versions[found] if found is not None else None
        if version is not None and version not in cells:
            cells.append(version)
    return cells[: config.max_runs], reported, note


def summarize(reported_verdict: str | None, latest_verdict: str | None) -> str:
    if reported_verdict == REPRODUCED and latest_verdict == REPRODUCED:
        return STILL_REPRODUCES
    if reported_verdict == REPRODUCED and latest_verdict == NOT_REPRODUCED:
        return FIXED_IN_LATEST
    if reported_verdict == NOT_REPRODUCED and latest_verdict == NOT_REPRODUCED:
        return NOT_REPRODUCED_ON_REPORTED
    if reported_verdict == NOT_REPRODUCED and latest_verdict == REPRODUCED:
        return REGRESSED
    return INCONCLUSIVE


def run_matrix(config: MatrixConfig, body: str, oracle: Oracle) -> MatrixResult:
    """Run the cells, then bisect if configured; never more than ``config.max_runs`` oracle calls."""
    versions = list(config.versions)
    cells, reported, note = plan(config, body)
    seen: dict[str, str] = {}
    for version in cells:
        seen[version] = oracle(version)
    latest = versions[-1] if versions else None
    summary = summarize(seen.get(reported) if reported else None, seen.get(latest) if latest else None)
    if reported is not None and reported == latest and seen.get(latest) == NOT_REPRODUCED:
        summary = NOT_REPRODUCED_ON_REPORTED
    fixed_in = introduced_in = None
    skipped: tuple[str, ...] = ()
    if config.bisect and summary in (FIXED_IN_LATEST, REGRESSED) and reported and latest:
        found = bisect(versions, versions.index(reported), len(versions) - 1, oracle,
                       max_runs=config.max_runs - len(seen), observed=seen)
        for version, verdict in found.observed.items():
            seen.setdefault(version, verdict)
        skipped = found.skipped
        if found.inconclusive:
            note = _join(note, f"bisect inconclusive: {found.reason}")
        elif summary == FIXED_IN_LATEST:
            fixed_in = found.boundary
        else:
            introduced_in = found.boundary
        if skipped:
            note = _join(note, "skipped broken cells: " + ", ".join(skipped))
    elif BROKEN_REPRO in (seen.get(reported or ""), seen.get(latest or "")):
        note = _join(note, "a matrix cell could not run (broken_repro)")
    return MatrixResult(seen, summary, reported, latest, fixed_in, introduced_in, note, skipped)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


_WORDS = {REPRODUCED: "reproduces", NOT_REPRODUCED: "passes", BROKEN_REPRO: "could not run"}


def sentence(result: MatrixResult) -> str:
    """One sentence for the comment: "Reproduces on 1.1.0 (reported); fixed in 1.4.0; latest 1.6.0 passes."."""
    cells, reported, latest = result.cells, result.reported, result.latest
    parts: list[str] = []
    if reported and reported in cells:
        parts.append({REPRODUCED: f"Reproduces on {reported} (reported)",
                      NOT_REPRODUCED: f"Does not reproduce on {reported} (reported)"}.get(
            cells[reported], f"{reported} (reported) could not run"))
    else:
        parts.append("The reported version is unknown")
    if result.fixed_in:
        parts.append(f"fixed in {result.fixed_in}")
    if result.introduced_in:
        parts.append(f"introduced in {result.introduced_in}")
    if latest and latest in cells and latest != reported:
        parts.append(f"latest {latest} {_WORDS.get(cells[latest], cells[latest])}")
    return "; ".join(parts) + "."


def from_event(data: Mapping[str, object]) -> MatrixResult | None:
    """The matrix part of an ``IssueProcessed``'s data, or None when the run had no matrix."""
    rows = data.get("matrix")
    if not isinstance(rows, list) or not rows:
        return None
    cells = {str(r.get("version", "")): str(r.get("verdict", "")) for r in rows if isinstance(r, Mapping)}
    return MatrixResult(cells, str(data.get("summary") or INCONCLUSIVE), _opt(data.get("reported_version")),
                        _opt(data.get("latest_version")), _opt(data.get("fixed_in")),
                        _opt(data.get("introduced_in")), str(data.get("matrix_note") or ""))


def _opt(value: object) -> str | None:
    return str(value) if value else None
