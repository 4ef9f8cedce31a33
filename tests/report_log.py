"""Small event logs for the report tests and bench/report.py, built with the real constructors."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from gip.domain.envelope import Cause, Envelope, account_stream, iso, issue_stream, new_event

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)


class Log:
    """Appends events with per-stream versions, at minutes after ``T0``."""

    def __init__(self, t0: datetime = T0) -> None:
        self.t0 = t0
        self.events: list[Envelope] = []
        self.versions: dict[str, int] = defaultdict(int)
        self.corr = "c"  # the correlation id of what is added next

    def at(self, minutes: float) -> datetime:
        return self.t0 + timedelta(minutes=minutes)

    def add(self, type_: str, stream: str, minutes: float, data: dict[str, Any]) -> Envelope:
        self.versions[stream] += 1
        event = new_event(type_, stream=stream, data=data, cause=Cause(self.corr, "test"), occurred_at=self.at(minutes))
        event = {**event, "version": self.versions[stream]}  # type: ignore[assignment]
        self.events.append(event)
        return event

    def register(self, account: str, minutes: float = 0) -> None:
        self.add("AccountRegistered", account_stream(account), minutes,
                 {"account_id": account, "role_arn": f"arn:aws:iam::{account}:role/r", "source": "manual"})

    def issue(self, repo: str, number: int, minutes: float, *, run: int = 1, title: str = "a bug",
              queued_after: float = 0.5) -> str:
        stream = issue_stream(repo, number)
        self.add("IssueReceived", stream, minutes, {
            "repo": repo, "number": number, "title": title, "labels": ["bug"], "trigger": "opened",
            "sender": "alice", "html_url": f"https://github.com/{repo}/issues/{number}", "run": run})
        self.add("IssueQueued", stream, minutes + queued_after, {"run": run, "sender": "alice", "permission": "write"})
        return stream

    def lease(self, account: str, stream: str, lease: str, *, reserved: float, released: float, cleaned: float,
              run: int = 1, verdict: str | None = "reproduced", timed_out: bool = False,
              error: str = "boom", retryable: bool = False, result_uri: str = "https://example.com/r.json",
              processed: dict[str, Any] | None = None) -> None:
        """One lease; ``processed`` adds fields to ``IssueProcessed`` (a matrix run's, issue 17)."""
        acc = account_stream(account)
        self.add("AccountReserved", acc, reserved, {"lease_id": lease, "issue": stream, "worker": "w1",
                                                    "expires_at": iso(self.at(reserved + 30))})
        self.add("IssueProcessingStarted", stream, reserved + 0.1,
                 {"run": run, "account_id": account, "lease_id": lease, "worker": "w1", "attempt": 1})
        if verdict is not None:
            self.add("IssueProcessed", stream, released - 0.1, {
                "run": run, "verdict": verdict, "exit_code": 1, "duration_s": 5.0, "result_uri": result_uri,
                **(processed or {})})
        else:
            self.add("IssueProcessingFailed", stream, released - 0.1,
                     {"run": run, "error": error, "retryable": retryable, "attempt": 1})
        if timed_out:
            self.add("AccountTimedOut", acc, released, {"lease_id": lease, "issue": stream,
                                                        "reserved_at": iso(self.at(reserved))})
        else:
            self.add("AccountReleased", acc, released, {"lease_id": lease, "issue": stream})
        self.add("AccountCleaned", acc, cleaned, {"lease_id": lease, "removed": []})

    def quarantine(self, account: str, stream: str, lease: str, *, reserved: float, released: float,
                   quarantined: float, reason: str = "cleanup failed") -> None:
        acc = account_stream(account)
        self.add("AccountReserved", acc, reserved, {"lease_id": lease, "issue": stream, "worker": "w1",
                                                    "expires_at": iso(self.at(reserved + 30))})
        self.add("AccountReleased", acc, released, {"lease_id": lease, "issue": stream})
        self.add("AccountCleanupFailed", acc, released + 1, {"lease_id": lease, "attempt": 1, "error": reason,
                                                            "residue": []})
        self.add("AccountQuarantined", acc, quarantined, {"reason": reason, "attempts": 1, "lease_id": lease})


def synthetic(total: int, *, accounts: int = 20) -> list[Envelope]:
    """About ``total`` events: accounts leasing, issues running, some failing, over ~days."""
    log = Log()
    for a in range(accounts):
        log.register(f"{300000000000 + a}")
    free = [0.0] * accounts
    n = 0
    while len(log.events) < total:
        a = n % accounts
        start = max(free[a], n * 3.0 / accounts * 2)
        stream = log.issue(f"org{n % 7}/repo{n % 11}", n, start, title=f"issue {n}")
        verdict = (None if n % 13 == 0 else ("reproduced", "not_reproduced", "inconclusive")[n % 3])
        log.lease(f"{300000000000 + a}", stream, f"lease-{n}", reserved=start + 1 + n % 5,
                  released=start + 10 + n % 17, cleaned=start + 12 + n % 17 + n % 4,
                  verdict=verdict, timed_out=n % 29 == 0, retryable=n % 2 == 0)
        free[a] = start + 14 + n % 17 + n % 4
        n += 1
    return log.events


def demo() -> tuple[list[Envelope], int]:
    """A few hours of a six-account pool for the screenshot: leases, failures, time-outs, a
    quarantine and an account that stays idle. Returns the events and the number of accounts."""
    events = synthetic(420, accounts=5)
    log = Log()
    log.events, last = list(events), max(e["occurred_at"] for e in events)
    for e in events:
        log.versions[e["stream"]] = max(log.versions[e["stream"]], e["version"])
    end = (datetime.fromisoformat(last.replace("Z", "+00:00")) - T0).total_seconds() / 60
    stream = log.issue("octo/flaky", 99, end + 1, title="cleanup leaves a bucket behind")
    log.quarantine("300000000001", stream, "lease-q", reserved=end + 2, released=end + 9, quarantined=end + 12,
                   reason="residue: s3 bucket octo-flaky-99")
    log.register("300000000009", 5)
    return log.events, 6
