"""Matrix cells (issue 17): one run, several versions, in the lease the worker already holds.

When the run's ``IssueQueued`` carries ``matrix_config`` (the gatekeeper read the repository's
``.github/reproduce.yml``), :func:`run` calls the processor once per cell with
``Job.repro_version`` set (the default processor hands it to the snippet as ``REPRO_VERSION``),
as :func:`gip.domain.matrix_run.run_matrix` asks: the configured cells, then a bisect within
``max_runs``. Each cell is an ordinary run: its own sandbox (:mod:`worker.sandbox`: a fresh box,
everything killed and verified at its end). With ``clean_between``, the account is cleaned between
cells (``between``). The cells fold into one :class:`Outcome`: the verdict of the reported
version (else the first cell), the matrix in ``details``, each cell's log in ``cell_logs``
(stored under the run's prefix, :mod:`worker.results`).

Without ``matrix_config`` nothing changes: one call of the processor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gip.domain.matrix import BROKEN_REPRO, MatrixConfig
from gip.domain.matrix_run import run_matrix, sentence
from gip.domain.verdict import NO_REPRO_FOUND
from worker.processor import Job, Outcome, Processor

log = logging.getLogger(__name__)

EVENT_KEYS = ("matrix", "summary", "fixed_in", "introduced_in", "reported_version",
              "latest_version", "matrix_note")


class _Stop(Exception):
    """A cell that ends the whole run: nothing runnable, or the worker is stopping."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.verdict)
        self.outcome = outcome


def queued_config(events: Iterable[Mapping[str, Any]], run: int) -> MatrixConfig | None:
    """The ``matrix_config`` the gatekeeper put in this run's ``IssueQueued``, if any."""
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "IssueQueued" and data.get("run") == run and data.get("matrix_config"):
            return MatrixConfig.from_mapping(data["matrix_config"])
    return None


def run(job: Job, processor: Processor, config: MatrixConfig | None,
        between: Callable[[], None] | None = None) -> Outcome:
    """One outcome for the run: the processor once, or once per matrix cell."""
    if config is None or not config.versions:
        return processor(job)
    outcomes: dict[str, Outcome] = {}

    def oracle(version: str) -> str:
        if outcomes and config.clean_between and between is not None:
            between()  # an AwsError here is infrastructure: the run is retried
        if job.cancel.is_set():
            raise _Stop(Outcome(BROKEN_REPRO, "stopped between matrix cells", interrupted=True))
        outcome = processor(replace(job, repro_version=version))
        outcomes[version] = outcome
        log.info("%s#%d run %d: REPRO_VERSION=%s %s", job.repo, job.number, job.run, version, outcome.verdict)
        if outcome.interrupted or outcome.verdict == NO_REPRO_FOUND:
            raise _Stop(outcome)
        return outcome.verdict

    try:
        result = run_matrix(config, job.body, oracle)
    except _Stop as stop:
        return stop.outcome if not stop.outcome.interrupted or not outcomes else replace(
            stop.outcome, cell_logs={v: o.log for v, o in outcomes.items()})
    return fold(result, outcomes)


def fold(result: Any, outcomes: Mapping[str, Outcome]) -> Outcome:
    """The cells as one outcome (``result``: a :class:`gip.domain.matrix_run.MatrixResult`)."""
    order = list(result.cells)
    main = outcomes[result.reported] if result.reported in outcomes else outcomes[order[0]]
    cells = [{"version": v, "verdict": outcomes[v].verdict, "exit_code": outcomes[v].exit_code,
              "duration_s": outcomes[v].duration_s} for v in order]
    details: dict[str, Any] = {**main.details, "matrix": cells, "summary": result.summary,
                               "fixed_in": result.fixed_in, "introduced_in": result.introduced_in,
                               "reported_version": result.reported, "latest_version": result.latest,
                               "matrix_note": result.note}
    log_text = "\n".join(f"===== REPRO_VERSION={v}: {outcomes[v].verdict} ({outcomes[v].duration_s:g}s)"
                         f" =====\n{outcomes[v].log}" for v in order)
    secrets = frozenset().union(*(o.secrets for o in outcomes.values()))
    message = sentence(result) + (f" ({result.note})" if result.note else "")  # skipped cells, a stopped search
    return Outcome(main.verdict, message, exit_code=main.exit_code,
                   duration_s=round(sum(o.duration_s for o in outcomes.values()), 3),
                   command=main.command, log=log_text, details=details, secrets=secrets,
                   cell_logs={v: outcomes[v].log for v in order})


def event_fields(outcome: Outcome) -> dict[str, Any]:
    """The optional ``IssueProcessed`` v2 fields of a matrix run (none for a single run)."""
    details = outcome.details
    if not details.get("matrix"):
        return {}
    out = {key: details[key] for key in EVENT_KEYS if details.get(key) not in (None, "")}
    out["matrix"] = [{k: c[k] for k in ("version", "verdict", "exit_code", "duration_s")}
                     for c in details["matrix"]]
    return out
