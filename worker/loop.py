"""The worker's message loop: one message at a time, cleanup messages first (one that frees
nothing, e.g. an account another cleaner holds, is followed by an issue message in the same turn).

For an issue message: re-check the issue's stream → reserve an account (none free: back off
with jitter, never fail the issue until the pool wait is over) → ``IssueProcessingStarted``
→ assume the processing role → run the processor → store the results → ``IssueProcessed`` or
``IssueProcessingFailed`` → release (conditioned on the lease id) and clean → delete the message.

While a run is in progress a heartbeat thread extends the message's visibility and renews the
lease. :meth:`Worker.request_stop` (SIGTERM) stops taking messages and kills the child; the run
is recorded as failed (retryable, ``interrupted``), the account is released and cleaned, and
the message is made visible again at once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from gip import observability
from gip.domain.envelope import (
    Cause,
    Envelope,
    envelope_from_sqs_body,
    iso,
    parse_iso,
    split_issue_stream,
    utcnow,
)
from gip.domain.issue import FAILED, RUNNING, Issue
from gip.domain.metrics import Point, lease_seconds, queue_wait
from gip.domain.redaction import Redactor, secrets_from_env
from gip.errors import AwsError, ConcurrencyConflict, GipError, IllegalTransition
from gip.services.issues import Issues
from gip.services.pool import CONTENDED, Lease, Pool
from worker import matrix_cells, results
from worker.cleanup import Cleanup, CleanupBusy, CleanupFailed
from worker.config import WorkerConfig
from worker.credentials import MemberCredentials, session_seconds
from worker.decisions import Decisions
from worker.heartbeat import Heartbeat
from worker.messages import DROP, WAIT, backoff_seconds, message_action
from worker.processor import Job, Outcome, Processor
from worker.queue_io import QueueMessages

log = logging.getLogger(__name__)
HANDED_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
NOTHING_DONE = ("cleanup_busy", "cleanup_not_needed", "cleanup_malformed")  # a cleanup message that freed nothing


class Worker(QueueMessages):
    """Everything injected: clients, pool, issues, processor, cleanup, clock, rng, and the
    environment whose secret-looking values are redacted from every run's record."""

    def __init__(self, cfg: WorkerConfig, *, sqs: Any, s3: Any, sts: Any, pool: Pool, issues: Issues,
                 processor: Processor, cleanup: Cleanup, clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None, environ: Mapping[str, str] | None = None,
                 metrics: Callable[[list[Point]], None] = lambda points: None) -> None:
        self.cfg, self.sqs, self.s3, self.sts = cfg, sqs, s3, sts
        self.pool, self.issues, self.processor, self.cleanup = pool, issues, processor, cleanup
        self.clock, self.rng, self.metrics = clock, rng or random.Random(), metrics
        self.stop = threading.Event()
        self._cancel: threading.Event | None = None
        self.actor = f"worker:{cfg.name}"
        self.held = Redactor(secrets_from_env(os.environ if environ is None else environ))

    # --- the loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """SIGTERM: take no more messages and interrupt the run in progress."""
        self.stop.set()
        if self._cancel is not None:
            self._cancel.set()

    def run(self) -> int:
        log.info("worker %s started", self.cfg.name)
        while not self.stop.is_set():
            try:
                self.poll_once()
            except GipError as exc:  # a known failure on one message: log, keep serving
                log.error("message failed: %s", exc)
                self.stop.wait(1)
            except Exception:  # an unknown one: same, with the traceback; the sweeper covers any lease
                log.exception("message failed unexpectedly")
                self.stop.wait(1)
        log.info("worker %s stopped", self.cfg.name)
        return 0

    def poll_once(self) -> str:
        """Take one cleanup message if any, else one issue message. Returns what happened."""
        with observability.log_keys():  # what a message binds ends with it
            return self._poll()

    def _poll(self) -> str:
        s, cleanup = self.cfg.settings, ""
        if s.cleanup_queue_url:
            msgs = self._receive(s.cleanup_queue_url, wait=0)
            if msgs:
                with observability.log_keys():  # its keys end with it: an issue may follow
                    cleanup = self.handle_cleanup(msgs[0])
                if cleanup not in NOTHING_DONE:
                    return cleanup
                # Nothing to do (another cleaner holds the account, or it is clean): that must
                # not cost an issue its turn, or a burst of releases keeps idle workers from
                # waiting issues (issue 18). Look at the issue queue now, without a long poll.
        isolation = self.cfg.limits.isolation
        if isolation is not None and not isolation.clean():
            # A run's leftover is still alive: no new run on this worker until it is gone.
            log.error("processes of an ended run survive on this worker; taking no issue until they are gone")
            self.stop.wait(self.cfg.poll_wait_s or 1)
            return "unclean"
        msgs = self._receive(s.issue_queue_url, wait=0 if cleanup else self.cfg.poll_wait_s)
        if not msgs:
            return cleanup or "idle"
        if self.stop.is_set():
            self._visibility(s.issue_queue_url, msgs[0], 0)
            return "returned"
        return self.handle_issue(msgs[0])

    # --- cleanup messages ----------------------------------------------------------------------
    def handle_cleanup(self, msg: dict[str, Any]) -> str:
        url = self.cfg.settings.cleanup_queue_url
        receives = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        try:
            event = envelope_from_sqs_body(msg["Body"])
            observability.bind(**observability.event_keys(event))
            outcome = self.cleanup.from_event(event, actor=self.actor)
        except CleanupFailed:
            self._visibility(url, msg, backoff_seconds(receives, base=30, cap=900, rng=self.rng))
            return "cleanup_retry"
        except CleanupBusy as exc:  # another cleaner owns it: look again once its claim is over
            log.info("%s", exc)
            self._requeue_cleanup(msg, exc.retry_after_s)
            return "cleanup_busy"
        except (ValueError, KeyError) as exc:
            log.error("dropping malformed cleanup message: %s", exc)
            outcome = "malformed"
        self._delete(url, msg)
        return f"cleanup_{outcome}"

    # --- issue messages -------------------------------------------------------------------------
    def handle_issue(self, msg: dict[str, Any]) -> str:
        url = self.cfg.settings.issue_queue_url
        try:
            event = envelope_from_sqs_body(msg["Body"])
            observability.bind(**observability.event_keys(event))
            repo, number = split_issue_stream(event["stream"])
            run = int(event["data"]["run"])
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping malformed issue message: %s", exc)
            self._delete(url, msg)
            return "malformed"
        cause, said = Cause.from_event(event, actor=self.actor), Decisions(msg, self.clock())
        issue = self.issues.get(repo, number)
        action = message_action(issue, run, max_attempts=self.cfg.max_attempts)
        if action.kind == DROP:
            self._delete(url, msg)
            return said.decided("dropped", f"run {run}: {action.reason}")
        if action.kind == WAIT:
            return said.decided("busy", action.reason, requeue_s=self._requeue(msg))
        assert issue is not None
        lease = self.pool.reserve(issue=event["stream"], worker=self.cfg.name, cause=cause)
        if lease is None and self.pool.last_miss == CONTENDED:  # free accounts, races lost: soon again
            return said.decided("contended", self.pool.last_trace.describe(), requeue_s=self._requeue(msg, soon=True))
        if lease is None:
            return self._no_account(msg, event, issue, cause, said)
        said.decided("reserved", f"account {lease.account_id}: {self.pool.last_trace.describe()}")
        observability.bind(account_id=lease.account_id, lease_id=lease.lease_id)
        self._visibility(url, msg, self.cfg.visibility_s)
        attempt = issue.attempt + 1
        try:
            started = self.issues.record(repo, number, "IssueProcessingStarted", {
                "run": run, "account_id": lease.account_id, "lease_id": lease.lease_id,
                "worker": self.cfg.name, "attempt": attempt}, cause=cause, expected=issue)
        except (ConcurrencyConflict, IllegalTransition) as exc:
            log.info("%s changed before the start (%s): giving the account back", event["stream"], exc)
            self._give_back(lease, cause, lambda: self._visibility(url, msg, 0))
            return "conflict"
        self.metrics(queue_wait(waiting_since=issue.updated_at, started_at=started["occurred_at"]))
        return self._process(msg, lease, repo, number, run, attempt, Cause.from_event(started, actor=self.actor))

    def _no_account(self, msg: dict[str, Any], event: Envelope, issue: Issue, cause: Cause,
                    said: Decisions) -> str:
        waiting_since = parse_iso(issue.updated_at if issue.status == FAILED and issue.updated_at else event["occurred_at"])
        waited = (self.clock() - waiting_since).total_seconds()
        if waited < self.cfg.pool_wait_s:
            why = f"{self.pool.last_trace.describe()}; waiting {int(waited)} s of {int(self.cfg.pool_wait_s)} s"
            return said.decided("empty", why, requeue_s=self._requeue(msg), returns="backoff")
        repo, number = split_issue_stream(event["stream"])
        error = f"no_account_available: the account pool stayed empty for {int(waited)}s"
        self._record(repo, number, "IssueProcessingFailed", {"run": issue.run, "error": error,
                     "retryable": True, "attempt": max(1, issue.attempt)}, cause)
        self._delete(self.cfg.settings.issue_queue_url, msg)
        return said.decided("pool_timeout", error)

    def _process(self, msg: dict[str, Any], lease: Lease, repo: str, number: int, run: int,
                 attempt: int, cause: Cause) -> str:
        url = self.cfg.settings.issue_queue_url
        self._cancel = cancel = threading.Event()
        if self.stop.is_set():
            cancel.set()
        renew_cause = Cause(cause.correlation_id, self.actor, cause.causation_id)

        renewed = [self.clock()]
        renew_every = timedelta(seconds=self.pool.lease_seconds / 3)

        def beat() -> bool:
            self._visibility(url, msg, self.cfg.visibility_s, quiet=True)
            if self.clock() - renewed[0] < renew_every:
                return True  # visibility every beat; the lease (an event each time) only at 1/3 of its length
            try:
                self.pool.renew(lease.account_id, lease_id=lease.lease_id, cause=renew_cause)
                renewed[0] = self.clock()
            except IllegalTransition:
                log.error("lease %s on %s was taken away (swept): stopping the run", lease.lease_id, lease.account_id)
                cancel.set()
                return False
            except Exception as exc:
                log.warning("lease renewal failed, will retry: %s", exc)
            return True

        heartbeat = Heartbeat(every=self.cfg.heartbeat_s, beat=beat)
        heartbeat.start()
        handed: set[str] = set()  # every credential value the run was given, refreshes included
        try:
            outcome, error = self._run_processor(lease, repo, number, run, cancel, handed)
        finally:
            heartbeat.stop()
            self._cancel = None
        # redact before anything is written: the event, result.json, the S3 log (and so the comment)
        redact = self.held.with_values(handed | (outcome.secrets if outcome else frozenset()))
        outcome = outcome.redacted(redact) if outcome else None
        error = (redact(error[0]), error[1]) if error else None
        if heartbeat.lost.is_set():
            self._fail_if_still_ours(repo, number, lease, attempt, cause)
            self._visibility(url, msg, 0)  # the run is retried from the queue
            return "lost_lease"
        try:
            return self._finish(msg, lease, repo, number, run, attempt, cause, outcome, error)
        except GipError:
            # never keep an account because the log was unreachable
            self._give_back(lease, cause, lambda: self._visibility(url, msg, 0))
            raise

    def _finish(self, msg: dict[str, Any], lease: Lease, repo: str, number: int, run: int, attempt: int,
                cause: Cause, outcome: Outcome | None, error: tuple[str, bool] | None) -> str:
        url = self.cfg.settings.issue_queue_url
        base = {"run": run, "account_id": lease.account_id, "lease_id": lease.lease_id}
        if outcome is not None and outcome.interrupted:  # a run that finished before SIGTERM keeps its verdict
            self._record(repo, number, "IssueProcessingFailed",
                         {**base, "error": "interrupted", "retryable": True, "attempt": attempt}, cause)
            self._give_back(lease, cause, lambda: self._visibility(url, msg, 0))
            return "interrupted"
        if outcome is not None:
            try:
                uri = self._store(repo, number, run, lease, outcome, attempt)
                recorded = self._record(repo, number, "IssueProcessed", {
                    **base, "verdict": outcome.verdict, "exit_code": outcome.exit_code,
                    "duration_s": outcome.duration_s, "result_uri": uri, "message": outcome.message[:1000],
                    # the outcome is redacted whole (see _process), so these cuts split no secret
                    "command": outcome.command[:1000], "log_tail": results.log_tail(outcome.log),
                    **matrix_cells.event_fields(outcome)}, cause)
                if not recorded:  # the sweeper ended this run first: its retry comes from this message
                    self._give_back(lease, cause, lambda: self._visibility(url, msg, 0))
                    return "lost_lease"
                self._give_back(lease, cause, lambda: self._delete(url, msg))
                return outcome.verdict
            except AwsError as exc:
                error = (f"results_unavailable: {exc}", True)
        assert error is not None
        text, retryable = error
        if retryable and attempt >= self.cfg.max_attempts:
            text, retryable = f"{text} (gave up after {attempt} attempts)", False  # honest: no more retries
        recorded = self._record(repo, number, "IssueProcessingFailed",
                                {**base, "error": text[:1000], "retryable": retryable, "attempt": attempt}, cause)
        if not recorded:
            self._give_back(lease, cause, lambda: self._visibility(url, msg, 0))
            return "lost_lease"
        if retryable and attempt < self.cfg.max_attempts:
            self._give_back(lease, cause, lambda: self._backoff(msg, attempt))
        else:
            self._give_back(lease, cause, lambda: self._delete(url, msg))
        return "failed"

    def _run_processor(self, lease: Lease, repo: str, number: int, run: int, cancel: threading.Event,
                       handed: set[str]) -> tuple[Outcome | None, tuple[str, bool] | None]:
        """Assume the role and run the processor; infrastructure failures are errors, not verdicts.
        Every credential value handed to the processor is added to ``handed``."""
        s = self.cfg.settings
        try:
            received = self._received(repo, number, run)
            creds = self._member(lease)

            def credentials() -> dict[str, str]:
                fresh = creds.get()  # a refresh re-assumes the role: new values, remembered too
                handed.update(fresh[key] for key in HANDED_KEYS if fresh.get(key))
                return fresh

            credentials()
            job = Job(repo=repo, number=number, run=run, title=received.get("title", ""),
                      body=received.get("body", ""), html_url=received.get("html_url", ""),
                      account_id=lease.account_id, lease_id=lease.lease_id, region=s.region,
                      credentials=credentials, cancel=cancel, limits=self.cfg.limits,
                      endpoint_url=s.endpoint_url)
            matrix = matrix_cells.queued_config(self.issues.store.read(f"issue-{repo}#{number}"), run)
            return matrix_cells.run(job, self.processor, matrix, lambda: self.cleanup.between(
                lease.account_id, lease.role_arn, lease.lease_id, parse_iso(lease.reserved_at))), None
        except AwsError as exc:
            return None, (f"infrastructure: {exc}", True)
        except Exception as exc:  # a processor bug must not kill the worker
            log.exception("processor crashed")
            return None, (f"processor_error: {type(exc).__name__}: {exc}", False)

    def _received(self, repo: str, number: int, run: int) -> dict[str, Any]:
        """The run's IssueReceived data: the body (the reproduction) lives there."""
        for event in reversed(self.issues.store.read(f"issue-{repo}#{number}")):
            if event["type"] == "IssueReceived" and event["data"].get("run") == run:
                return dict(event["data"])
        return {}

    def _member(self, lease: Lease) -> MemberCredentials:
        s = self.cfg.settings
        return MemberCredentials(self.sts, role_arn=lease.role_arn,
                                 external_id=s.external_id, lease_id=lease.lease_id, worker=self.cfg.name,
                                 duration_s=session_seconds(self.cfg.limits.timeout_s))

    def _store(self, repo: str, number: int, run: int, lease: Lease, outcome: Outcome, attempt: int) -> str:
        result = {"repo": repo, "number": number, "run": run, "attempt": attempt,
                  "verdict": outcome.verdict, "message": outcome.message, "exit_code": outcome.exit_code,
                  "duration_s": outcome.duration_s, "command": outcome.command,
                  "account_id": lease.account_id, "lease_id": lease.lease_id, "worker": self.cfg.name,
                  "finished_at": iso(self.clock()), **outcome.details}
        return results.store(self.s3, self.cfg.settings.results_bucket, repo=repo, number=number, run=run,
                             result=result, log=outcome.log, cell_logs=outcome.cell_logs)

    def _give_back(self, lease: Lease, cause: Cause, settle: Callable[[], object]) -> None:
        """Release (conditioned on the lease id), ``settle`` the message, then clean directly
        through the one cleanup path (the message is settled first so that a long cleanup never
        lets it come back to another worker).

        After SIGTERM the direct cleanup gets only ``stop_budget_s`` (the ECS stop timeout); what
        it cannot finish stays CLEANING and the cleanup queue finishes it."""
        try:
            released = self.pool.release(lease.account_id, lease_id=lease.lease_id, cause=cause)
        except (IllegalTransition, ConcurrencyConflict) as exc:
            log.warning("release of %s refused (%s): the sweeper owns it now", lease.account_id, exc)
            settle()
            return
        self.metrics(lease_seconds(reserved_at=lease.reserved_at, released_at=released["occurred_at"]))
        settle()
        try:
            self.cleanup.attempt(lease.account_id, lease_id=lease.lease_id, since=parse_iso(lease.reserved_at),
                                 cause=cause, wait_s=self.cfg.stop_budget_s if self.stop.is_set() else None)
        except CleanupFailed as exc:
            log.warning("%s; the cleanup queue retries it", exc)
        except CleanupBusy as exc:
            log.info("%s; leaving it to that cleaner", exc)

    def _fail_if_still_ours(self, repo: str, number: int, lease: Lease, attempt: int, cause: Cause) -> None:
        """The lease was taken away. The sweeper (or deregistration) normally failed the run
        already; if the issue still shows it running on our lease, fail it here (retryable)."""
        issue = self.issues.get(repo, number)
        if issue is None or issue.status != RUNNING or issue.lease_id != lease.lease_id:
            return
        self._record(repo, number, "IssueProcessingFailed", {
            "run": issue.run, "error": "lease_lost", "retryable": attempt < self.cfg.max_attempts,
            "attempt": attempt, "account_id": lease.account_id, "lease_id": lease.lease_id}, cause)

    # --- small helpers ----------------------------------------------------------------------
    def _record(self, repo: str, number: int, type_: str, data: dict[str, Any], cause: Cause) -> bool:
        """Append to the issue; False when the run has moved on (e.g. the sweeper failed it)."""
        try:
            self.issues.record(repo, number, type_, data, cause=cause)
        except (IllegalTransition, ConcurrencyConflict) as exc:
            log.warning("%s not recorded on %s#%d: %s", type_, repo, number, exc)
            return False
        return True
