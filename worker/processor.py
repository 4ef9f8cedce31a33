"""The processor: what the worker runs in the leased account. Pluggable.

Interface (see docs/processor.md)::

    def process(job: Job) -> Outcome

``job`` carries the issue (repo, number, run, title, body), the leased account, a
``credentials()`` callable returning fresh member-account credentials (the processing role,
never the worker's own), the region, the run limits and a ``cancel`` event that is set when
the worker is stopping. Return an :class:`Outcome` with one of the four verdicts. Raise
:class:`gip.errors.AwsError` for an infrastructure failure: the worker then records
``IssueProcessingFailed`` (retryable) instead of a verdict; :class:`worker.sandbox.Leftover`
(a run's process survived the kill) is one. Any other exception is recorded as a non-retryable
``processor_error``.

``PROCESSOR=package.module:function`` swaps the default :func:`reproduce` for another one.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gip.domain.redaction import Redactor
from gip.domain.repro import find_repro
from gip.domain.verdict import NO_REPRO_FOUND, VERDICTS, decide
from worker.credserver import CredentialServer
from worker.plugins import load_plugin
from worker.runner import Interpreters, Limits, Unavailable, run_snippet


@dataclass(frozen=True)
class Job:
    """Everything a processor gets. ``credentials()`` returns AWS_* keys for the member role."""

    repo: str
    number: int
    run: int
    title: str
    body: str
    html_url: str
    account_id: str
    lease_id: str
    region: str
    credentials: Callable[[], Mapping[str, str]]
    cancel: threading.Event = field(default_factory=threading.Event)
    limits: Limits = field(default_factory=Limits)
    endpoint_url: str | None = None
    repro_version: str | None = None  # a matrix cell: REPRO_VERSION for the snippet (issue 17)


@dataclass(frozen=True)
class Outcome:
    """A processor's result. ``log`` is the full output stored in S3; ``details`` goes to result.json.
    ``secrets``: values the processor itself handed to the run, which the worker redacts too."""

    verdict: str
    message: str
    exit_code: int | None = None
    duration_s: float = 0.0
    command: str = ""
    log: str = ""
    interrupted: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    cell_logs: dict[str, str] = field(default_factory=dict)  # a matrix run: version -> its log

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")

    def redacted(self, redact: Redactor) -> Outcome:
        """This outcome with every text redacted whole (cut it afterwards), and no secrets."""
        return replace(self, message=redact(self.message), command=redact(self.command),
                       log=redact(self.log), details=redact.data(self.details), secrets=frozenset(),
                       cell_logs={v: redact(text) for v, text in self.cell_logs.items()})


Processor = Callable[[Job], Outcome]
STATIC_CREDENTIALS_MAX_S = 3000  # a session lasts 3600 s at most; beyond this, refresh


def reproduce(job: Job, *, interpreters: Interpreters | None = None) -> Outcome:
    """The default processor: find the snippet in the issue body, run it, decide the verdict."""
    repro = find_repro(job.body)
    if repro.snippet is None:
        return Outcome(NO_REPRO_FOUND, repro.reason, details={"expected_errors": list(repro.expected_errors)})
    snippet = repro.snippet
    interpreters = interpreters or Interpreters.discover()
    details: dict[str, Any] = {
        "language": snippet.language,
        "snippet_source": snippet.source,
        "snippet_sha256": snippet.sha256,
        "expected_errors": list(repro.expected_errors),
        "versions": versions(interpreters),
    }
    secrets: frozenset[str] = frozenset()
    try:
        if job.limits.timeout_s <= STATIC_CREDENTIALS_MAX_S:
            result = run_snippet(snippet.language, snippet.code, credentials=job.credentials(),
                                 region=job.region, limits=job.limits, interpreters=interpreters,
                                 cancel=job.cancel, endpoint_url=job.endpoint_url,
                                 version=job.repro_version)
        else:  # the run may outlive one session: hand the child a refreshing endpoint instead
            with CredentialServer(job.credentials) as server:
                result = run_snippet(snippet.language, snippet.code, credentials={},
                                     region=job.region, limits=job.limits, interpreters=interpreters,
                                     cancel=job.cancel, endpoint_url=job.endpoint_url,
                                     credserver=server, version=job.repro_version)
            details["credentials"] = f"refreshing endpoint, served {server.served} time(s)"
            secrets = frozenset({server.token})
    except Unavailable as exc:
        return Outcome(NO_REPRO_FOUND, str(exc), details=details)
    verdict = decide(exit_code=result.exit_code, output=result.output,
                     expected_errors=repro.expected_errors, could_not_start=result.could_not_start,
                     timed_out=result.timed_out, timeout_s=job.limits.timeout_s)
    details.update(timed_out=result.timed_out, truncated_bytes=result.truncated_bytes,
                   command_argv=list(result.command))
    log = result.output if not result.could_not_start else result.could_not_start
    return Outcome(verdict.verdict, verdict.reason, exit_code=result.exit_code,
                   duration_s=result.duration_s, command=result.command_line, log=log,
                   interrupted=result.interrupted, details=details, secrets=secrets)


def versions(interpreters: Interpreters) -> dict[str, str]:
    """Interpreter versions recorded in result.json."""
    out = {"python": platform.python_version(), "worker": _package_version()}
    if interpreters.node_version:
        out["node"] = ".".join(map(str, interpreters.node_version))
    return out


def load_processor(spec: str | None) -> Processor:
    """``None``/empty → :func:`reproduce`; ``module:function`` → that callable."""
    if not spec:
        return reproduce
    return load_plugin("PROCESSOR", spec)  # type: ignore[no-any-return]


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("github-issue-processor")
    except Exception:  # not installed as a distribution (bundle): no version
        return "unknown"
