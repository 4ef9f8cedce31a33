"""PURE verdict → label rules. The notifier owns these four labels on an issue.

``no_repro_found`` (the issue has no runnable reproduction) gets ``repro-broken``: like a
crashing reproduction, it needs the reporter to fix the reproduction, not a code fix.
"""

from __future__ import annotations

from collections.abc import Iterable

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not-reproduced"
BROKEN = "repro-broken"
INFRA_ERROR = "repro-infra-error"
ALL = (REPRODUCED, NOT_REPRODUCED, BROKEN, INFRA_ERROR)

# Created up front in each repository (``POST /repos/{o}/{r}/labels``), so GitHub does not
# make grey ones implicitly: name -> (colour, description).
SPECS: dict[str, tuple[str, str]] = {
    REPRODUCED: ("d73a4a", "The reported bug was reproduced"),
    NOT_REPRODUCED: ("0e8a16", "The reproduction ran and the bug did not show"),
    BROKEN: ("fbca04", "The reproduction is missing or could not run"),
    INFRA_ERROR: ("6a737d", "The reproduction could not run: infrastructure error"),
}


# Issue 17: beside the verdict label, a matrix run's summary (``reproduce.yml``).
FIXED_IN_LATEST = "fixed-in-latest"
STILL_REPRODUCES = "still-reproduces"
MATRIX_LABELS = {"fixed_in_latest": FIXED_IN_LATEST, "still_reproduces": STILL_REPRODUCES}
SPECS[FIXED_IN_LATEST] = ("0e8a16", "Reproduces on the reported version, not on the latest release")
SPECS[STILL_REPRODUCES] = ("b60205", "Reproduces on the reported version and on the latest release")


def matrix_label_for(summary: object, names: dict[str, str] | None = None) -> str | None:
    """The summary label of a matrix run (``names`` overrides the defaults), or None."""
    return (names or MATRIX_LABELS).get(str(summary or ""))


def matrix_changes(wanted: str, current: Iterable[str], names: dict[str, str] | None = None
                   ) -> tuple[list[str], list[str]]:
    """``(to_add, to_remove)`` so that ``wanted`` is the only matrix summary label left."""
    have = list(current)
    folded = {label.casefold() for label in have}
    others = {n.casefold() for n in (names or MATRIX_LABELS).values()} - {wanted.casefold()}
    return ([] if wanted.casefold() in folded else [wanted]), [x for x in have if x.casefold() in others]


def specs(names: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """:data:`SPECS` with the matrix summary labels under their configured ``names``
    (MATRIX_FIXED_LABEL / MATRIX_STILL_LABEL; summary -> label name)."""
    renamed = {MATRIX_LABELS[key]: name for key, name in (names or {}).items() if key in MATRIX_LABELS}
    return {renamed.get(name, name): spec for name, spec in SPECS.items()}


def missing(existing: Iterable[str], names: dict[str, str] | None = None) -> list[str]:
    """The verdict labels (and the matrix summary labels, issue 17, under ``names``) absent
    from a repository's label names (compared without case)."""
    have = {name.casefold() for name in existing}
    return [name for name in specs(names) if name.casefold() not in have]

_BY_VERDICT = {
    "reproduced": REPRODUCED,
    "not_reproduced": NOT_REPRODUCED,
    "broken_repro": BROKEN,
    "no_repro_found": BROKEN,
}


def label_for(verdict: str) -> str:
    """The label for a verdict; an unknown verdict is an infrastructure error."""
    return _BY_VERDICT.get(verdict, INFRA_ERROR)


def changes(wanted: str, current: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(to_add, to_remove)`` so that ``wanted`` is the only verdict label left.

    Only labels present in ``current`` are removed, so nothing is sent for labels that are
    not there; ``wanted`` is added only when missing. GitHub label names compare without case,
    so a pre-existing ``Reproduced`` counts as ``reproduced``: it is removed under its own
    spelling, and it satisfies ``wanted`` if that is the one.
    """
    have = list(current)
    folded = {label.casefold() for label in have}
    add = [] if wanted.casefold() in folded else [wanted]
    remove = [label for verdict in ALL if verdict != wanted
              for label in have if label.casefold() == verdict.casefold()]
    return add, remove


def changes_since_trigger(wanted: str, trigger_labels: Iterable[str],
                          applied: str | None = None) -> tuple[list[str], list[str]]:
    """:func:`changes` without asking GitHub for the issue's labels.

    ``trigger_labels`` are the issue's labels when the run was triggered (``IssueReceived``):
    they include a verdict label left by an earlier run. ``applied`` is the verdict label we
    already set during this run, if we know it: after that, it is the only verdict label left.
    Trade-off: a verdict label a human adds or removes by hand *during* a run is not seen (it
    may stay next to ours; removing one that is already gone is a harmless 404).
    """
    current = list(dict.fromkeys(trigger_labels))
    if applied is not None:
        verdicts = {label.casefold() for label in ALL}
        current = [label for label in current if label.casefold() not in verdicts] + [applied]
    return changes(wanted, current)
