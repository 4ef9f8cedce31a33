"""replay: pure query/render parts, then the CLI over a moto server with a multi-day log; the
repair's refusals (rows and counts that moved since read) on the in-memory store."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.adapters import bus as bus_adapter
from gip.cli import replay, replay_query
from gip.cli.main import main
from gip.cli.render import jsonl, table
from gip.config import Settings
from gip.domain import schemas
from gip.domain.envelope import Cause, Envelope, dumps, iso, new_event
from gip.errors import UsageError
from gip.services.issues import Issues
from gip.services.pool import Pool
from gip.store.dynamodb import DynamoEventStore
from gip.store.models import Tables, create_tables
from tests.conftest import make_memory_core

NOW = datetime(2026, 1, 20, tzinfo=UTC)
TYPES = {"AccountReserved", "AccountReleased", "IssueReceived"}


# ---------------------------------------------------------------- pure


def test_query_accepts_bare_account_issue_key_and_stream_ids() -> None:
    q = replay_query.build_query(streams=["123456789012", "octo/demo#7", "account-000000000001"],
                           now=NOW, known_types=TYPES)
    assert q.streams == ("account-123456789012", "issue-octo/demo#7", "account-000000000001")


def test_query_resolves_relative_times_and_refuses_bad_filters() -> None:
    q = replay_query.build_query(since="2h", until="30m", types=["AccountReserved,AccountReleased"],
                           now=NOW, known_types=TYPES)
    assert q.since == NOW - timedelta(hours=2) and q.until == NOW - timedelta(minutes=30)
    assert q.types == {"AccountReserved", "AccountReleased"}
    with pytest.raises(UsageError, match="unknown --type AccountExploded"):
        replay_query.build_query(types=["AccountExploded"], now=NOW, known_types=TYPES)
    with pytest.raises(UsageError, match="--stream"):
        replay_query.build_query(streams=["not a stream"], now=NOW, known_types=TYPES)
    with pytest.raises(UsageError, match="after --until"):
        replay_query.build_query(since="1h", until="2h", now=NOW, known_types=TYPES)


def _event(type_: str = "AccountReserved", at: str = "2026-01-10T10:00:00.000Z", **kw: Any) -> Envelope:
    base = {"event_id": str(uuid.uuid4()), "type": type_, "schema_version": 1, "stream": "account-000000000001",
            "version": 1, "occurred_at": at, "correlation_id": "c1", "causation_id": None, "actor": "t", "data": {}}
    return {**base, **kw}  # type: ignore[return-value]


def test_query_matches_on_type_stream_time_and_correlation() -> None:
    q = replay_query.Query(types=frozenset({"AccountReserved"}), since=datetime(2026, 1, 10, 9, tzinfo=UTC),
                     until=datetime(2026, 1, 10, 11, tzinfo=UTC))
    assert q.matches(_event())
    assert not q.matches(_event("AccountReleased"))
    assert not q.matches(_event(at="2026-01-10T11:00:00.001Z"))
    assert replay_query.Query(correlation_id="c1").matches(_event())
    assert not replay_query.Query(streams=("account-000000000002",)).matches(_event())


def test_bus_entries_mark_the_replay_and_keep_the_envelope() -> None:
    event = _event()
    (entry,) = replay_query.bus_entries([event], prefix="gip", bus="gip-bus")
    detail = json.loads(entry["Detail"])
    assert detail == {**event, "replay": True}
    assert entry["Source"] == "gip" and entry["DetailType"] == "AccountReserved"
    assert entry["Time"] == datetime(2026, 1, 10, 10, tzinfo=UTC)


class FlakyBus:
    """PutEvents that fails the first entry ``failures`` times (throttling), then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, []

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(len(Entries))
        results: list[dict[str, Any]] = [{"EventId": "x"} for _ in Entries]
        if self.failures:
            self.failures -= 1
            results[0] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
        return {"FailedEntryCount": int(results[0].get("ErrorCode") is not None), "Entries": results}


def test_put_batch_resends_only_failed_entries_then_gives_up() -> None:
    batch = [_event(at=f"2026-01-10T10:00:0{i}.000Z") for i in range(10)]
    sleeps: list[float] = []
    bus = FlakyBus(failures=2)
    assert replay.republish(bus, batch, prefix="p", bus_name="p-bus", sleep=sleeps.append) == 10
    assert bus.calls == [10, 1, 1] and sleeps == [0.2, 0.4]
    from gip.errors import GipError

    with pytest.raises(GipError, match="1 event"):
        replay.republish(FlakyBus(failures=99), batch, prefix="p", bus_name="p-bus", sleep=sleeps.append)


class RecordingBus:
    """PutEvents that accepts everything and keeps each request's entries."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in Entries]}


def test_a_selection_over_256_kb_is_split_into_several_requests() -> None:
    # GIVEN six events of about 100 KB each: together well over one request's 256 KB
    events = [_event(at=f"2026-01-10T10:00:0{i}.000Z", data={"blob": "x" * 100_000}) for i in range(6)]
    bus = RecordingBus()
    # WHEN they are re-published
    assert replay.republish(bus, iter(events), prefix="p", bus_name="p-bus", sleep=lambda _: None) == 6
    # THEN no request reaches 256 KB, and every event goes once, in order
    assert [len(r) for r in bus.requests] == [2, 2, 2]
    for request in bus.requests:
        assert sum(bus_adapter.entry_size(e) for e in request) < 256 * 1024
    sent = [json.loads(e["Detail"])["event_id"] for r in bus.requests for e in r]
    assert sent == [e["event_id"] for e in events]


def test_table_is_aligned_and_jsonl_is_canonical() -> None:
    rows = [{"a": "x", "b": 1}, {"a": "longer", "b": None}]
    lines = table(rows, [("A", "a"), ("B", "b")])
    assert lines == ["A       B", "------  -", "x       1", "longer  -"]
    assert list(jsonl([{"b": 1, "a": "é"}])) == ['{"a":"é","b":1}']


def test_summary_is_compact_and_clipped() -> None:
    assert replay_query.summary({"b": 2, "a": "x", "c": [1]}) == "a=x b=2 c=[1]"
    assert len(replay_query.summary({"k": "v" * 200}, width=20)) == 20


# ---------------------------------------------------------------- moto server fixtures

BASE = datetime(2026, 1, 10, 6, 0, tzinfo=UTC)
ACCOUNTS = [f"{100000000000 + i}" for i in range(12)]
CYCLES = 56  # 12 accounts x (1 + 56 x 3) + 3 = 2031 events over 3 days
SPAN = timedelta(days=3)


def make_core(endpoint: str, prefix: str, clock: Any = None) -> SimpleNamespace:
    settings = Settings.for_prefix(prefix, endpoint_url=endpoint, region="us-east-1")
    tables = Tables.from_settings(settings)
    create_tables(tables)
    store = DynamoEventStore(tables)
    kw = {"clock": clock} if clock else {}
    return SimpleNamespace(settings=settings, tables=tables, store=store,
                           pool=Pool(store=store, **kw), issues=Issues(store=store, **kw))


def account_log(account_id: str, index: int) -> list[Envelope]:
    """One account's history: registered, then reserve/release/clean cycles over three days."""
    step = SPAN / (CYCLES * 3 + 1)
    at = BASE + timedelta(seconds=index)
    cause = Cause(correlation_id=f"reg-{account_id}", actor="test")
    out = [new_event("AccountRegistered", stream=f"account-{account_id}", cause=cause, occurred_at=at,
                     data={"account_id": account_id, "role_arn": f"arn:aws:iam::{account_id}:role/p", "source": "manual"})]
    for k in range(CYCLES):
        lease = f"lease-{account_id}-{k}"
        corr = "corr-issue" if (index, k) == (0, 0) else f"corr-{account_id}-{k}"
        cause = Cause(correlation_id=corr, actor="worker")
        for type_, data in (
            ("AccountReserved", {"lease_id": lease, "issue": "issue-octo/demo#7", "worker": "w1",
                                 "expires_at": iso(at + step * 2)}),
            ("AccountReleased", {"lease_id": lease, "issue": "issue-octo/demo#7"}),
            ("AccountCleaned", {"lease_id": lease, "removed": []}),
        ):
            at += step
            out.append(new_event(type_, stream=f"account-{account_id}", cause=cause, occurred_at=at, data=data))
    return out


def issue_log() -> list[Envelope]:
    cause = Cause(correlation_id="corr-issue", actor="webhook")
    at = BASE + timedelta(minutes=1)
    stream = "issue-octo/demo#7"
    received = {"repo": "octo/demo", "number": 7, "title": "t", "labels": ["needs-reproduction"],
                "trigger": "labeled", "sender": "m", "html_url": "https://github.com/octo/demo/issues/7", "run": 1}
    return [
        new_event("IssueReceived", stream=stream, cause=cause, occurred_at=at, data=received),
        new_event("IssueQueued", stream=stream, cause=cause, occurred_at=at + timedelta(seconds=1),
                  data={"run": 1, "sender": "m", "permission": "write"}),
    ]


@pytest.fixture(scope="module")
def big(moto_server: str) -> SimpleNamespace:
    """A log of 2,000+ events over three UTC days (three index partitions), plus one old event."""
    core = make_core(moto_server, "rp")
    streams = [(f"account-{a}", account_log(a, i)) for i, a in enumerate(ACCOUNTS)]
    streams.append(("issue-octo/demo#7", issue_log()))
    total: list[Envelope] = []
    for stream, events in streams:
        for version, event in enumerate(events, start=1):
            numbered = {**event, "stream": stream, "version": version}
            schemas.validate(numbered)
            total.append(numbered)  # type: ignore[arg-type]
    # An IssueProcessingFailed written at schema_version 1 (no ``attempt``), as an old writer did.
    total.append({**new_event("IssueProcessingFailed", stream="issue-octo/demo#7", cause=Cause("corr-issue", "worker"),
                              occurred_at=BASE + timedelta(minutes=2), data={"run": 1, "error": "boom"}),
                  "schema_version": 1, "version": 3})  # type: ignore[arg-type]
    # The store's own item layout, written 25 at a time (BatchWriteItem): moto copies the whole
    # table on every TransactWriteItems, which makes seeding thousands of events that way slow.
    with core.tables.events.batch_write() as batch:
        for event in total:
            batch.save(core.store.item_for(event))
    core.total = total
    return core


def run_cli(endpoint: str, prefix: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["replay", *argv, "--prefix", prefix, "--endpoint-url", endpoint, "--region", "us-east-1"])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def meters(monkeypatch: pytest.MonkeyPatch) -> list[replay.ReadMeter]:
    made: list[replay.ReadMeter] = []

    class Recording(replay.ReadMeter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(replay, "ReadMeter", Recording)
    return made


WINDOW = ["--since", "2026-01-10", "--until", "2026-01-13T23:59:59Z"]


# ---------------------------------------------------------------- replay over moto server


@pytest.mark.server
def test_jsonl_reads_every_event_in_time_order_through_the_day_index(
        big: SimpleNamespace, moto_server: str, meters: list[replay.ReadMeter]) -> None:
    code, out, _ = run_cli(moto_server, "rp", *WINDOW, "--format", "jsonl", "--raw")
    assert code == 0
    lines = out.splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == len(big.total) > 2000
    assert [(e["occurred_at"], e["event_id"]) for e in events] == sorted((e["occurred_at"], e["event_id"]) for e in big.total)
    assert len({e["occurred_at"][:10] for e in events}) >= 3
    bodies = {e["event_id"]: dumps(e) for e in big.total}
    assert all(line == bodies[json.loads(line)["event_id"]] for line in lines)  # exactly as stored
    (meter,) = meters
    assert meter.calls["Scan"] == 0 and meter.index_pages >= 4  # one query per day in the window


@pytest.mark.server
def test_type_and_bare_account_filter(big: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = run_cli(moto_server, "rp", "--stream", ACCOUNTS[3], "--type", "AccountReserved", "--format", "jsonl")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(events) == CYCLES
    assert {(e["stream"], e["type"]) for e in events} == {(f"account-{ACCOUNTS[3]}", "AccountReserved")}
    assert [e["version"] for e in events] == sorted(e["version"] for e in events)


@pytest.mark.server
def test_time_window_and_type_through_the_index(big: SimpleNamespace, moto_server: str) -> None:
    since, until = "2026-01-11T00:00:00Z", "2026-01-11T23:59:59.999Z"
    code, out, _ = run_cli(moto_server, "rp", "--since", since, "--until", until, "--type", "AccountCleaned",
                           "--format", "jsonl")
    got = [json.loads(line)["event_id"] for line in out.splitlines()]
    want = [e["event_id"] for e in sorted(big.total, key=lambda e: (e["occurred_at"], e["event_id"]))
            if e["type"] == "AccountCleaned" and e["occurred_at"].startswith("2026-01-11")]
    assert code == 0 and got == want and len(want) > 100


@pytest.mark.server
def test_correlation_id_follows_one_delivery_across_streams(big: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = run_cli(moto_server, "rp", "--correlation-id", "corr-issue", "--format", "jsonl")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert {e["stream"] for e in events} == {"issue-octo/demo#7", f"account-{ACCOUNTS[0]}"}
    assert len(events) == 6  # 3 issue events + one reserve/release/clean cycle


@pytest.mark.server
def test_old_versions_are_upcast_unless_raw(big: SimpleNamespace, moto_server: str) -> None:
    args = ("--stream", "octo/demo#7", "--type", "IssueProcessingFailed", "--format", "jsonl")
    _, upcast, _ = run_cli(moto_server, "rp", *args)
    _, raw, _ = run_cli(moto_server, "rp", *args, "--raw")
    (new,), (old,) = map(json.loads, upcast.splitlines()), map(json.loads, raw.splitlines())
    assert new["schema_version"] == 2 and new["data"]["attempt"] == 1 and new["data"]["retryable"] is False
    assert old["schema_version"] == 1 and "attempt" not in old["data"]


@pytest.mark.server
def test_table_format_is_aligned(big: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = run_cli(moto_server, "rp", "--stream", "octo/demo#7", "--format", "table")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "(3 events)"
    header, rule, *rows = lines[:-1]
    col = header.index("TYPE")
    assert rule.startswith("-") and len(rows) == 3
    assert [r[col:].split()[0] for r in rows] == ["IssueReceived", "IssueQueued", "IssueProcessingFailed"]
    assert "attempt=1" in rows[2]  # shown upcast


@pytest.mark.server
def test_meter_shows_progress_on_stderr_for_long_reads(big: SimpleNamespace) -> None:
    ticks = iter(range(1000))
    err = io.StringIO()
    meter = replay.ReadMeter(out=err, clock=lambda: float(next(ticks)), every=1.0)
    meter.attach(big.tables.events)
    events = list(big.store.read_window(datetime(2026, 1, 11, tzinfo=UTC), datetime(2026, 1, 12, 23, tzinfo=UTC)))
    meter.done()
    assert meter.index_pages >= 2 and meter.items >= len(events) > 0
    assert "reading the log:" in err.getvalue() and err.getvalue().endswith("\n")


# ---------------------------------------------------------------- a leasing history

# Recent, so that --verify's read of the whole log (one index query per day since the first
# registration) stays a few queries.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
ISSUE = {"repo": "octo/demo", "number": 9, "title": "crash", "labels": ["needs-reproduction"],
         "trigger": "labeled", "sender": "maint", "html_url": "https://github.com/octo/demo/issues/9"}


def leasing_history(endpoint: str | None = None, prefix: str = "") -> SimpleNamespace:
    """Two accounts; one issue leases one, finishes, releases it and it is cleaned. On the moto
    server at ``endpoint``, else on the in-memory store."""
    now = [T0]
    clock = lambda: now[0]  # noqa: E731
    core = make_core(endpoint, prefix, clock=clock) if endpoint else make_memory_core(clock=clock)

    def at(minutes: float) -> None:
        now[0] = T0 + timedelta(minutes=minutes)

    cause = Cause(correlation_id="delivery-9", actor="test")
    for account_id in ("111111111111", "222222222222"):
        core.pool.register(account_id, role_arn=f"arn:aws:iam::{account_id}:role/p", source="manual", cause=cause)
    at(5)
    core.issues.receive(delivery_id="delivery-9", repo="octo/demo", number=9, data=ISSUE, cause=cause)
    core.issues.record("octo/demo", 9, "IssueQueued", {"run": 1, "sender": "maint", "permission": "write"}, cause=cause)
    at(10)
    lease = core.pool.reserve(issue="issue-octo/demo#9", worker="w1", cause=cause)
    assert lease is not None
    core.issues.record("octo/demo", 9, "IssueProcessingStarted", {"run": 1, "account_id": lease.account_id,
                       "lease_id": lease.lease_id, "worker": "w1"}, cause=cause)
    at(20)
    core.issues.record("octo/demo", 9, "IssueProcessed", {"run": 1, "verdict": "reproduced", "exit_code": 1,
                       "duration_s": 3.5, "result_uri": "s3://r/1"}, cause=cause)
    core.pool.release(lease.account_id, lease_id=lease.lease_id, cause=cause)
    at(25)
    core.pool.mark_cleaned(lease.account_id, lease_id=lease.lease_id, removed=[], cause=cause)
    core.lease = lease
    return core


@pytest.fixture(scope="module")
def history(moto_server: str) -> SimpleNamespace:
    return leasing_history(moto_server, "hist")


def _states(out: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in out.splitlines()]
    return {r["account_id"] if r["kind"] == "account" else r["stream"]: r for r in rows}


@pytest.mark.server
def test_as_of_three_points_in_a_leasing_history(history: SimpleNamespace, moto_server: str) -> None:
    leased, other = history.lease.account_id, ({"111111111111", "222222222222"} - {history.lease.account_id}).pop()
    # before the issue: both accounts free, no issue yet
    code, out, _ = run_cli(moto_server, "hist", "--as-of", iso(T0 + timedelta(minutes=2)), "--format", "jsonl")
    states = _states(out)
    assert code == 0 and set(states) == {leased, other}
    assert states[leased]["status"] == states[other]["status"] == "AVAILABLE"
    # during the run: the leased account is RESERVED for the issue, which is RUNNING
    _, out, _ = run_cli(moto_server, "hist", "--as-of", iso(T0 + timedelta(minutes=12)), "--format", "jsonl")
    states = _states(out)
    assert states[leased]["status"] == "RESERVED" and states[leased]["lease_id"] == history.lease.lease_id
    assert states[leased]["issue"] == "issue-octo/demo#9" and states[other]["status"] == "AVAILABLE"
    assert states["issue-octo/demo#9"]["status"] == "RUNNING"
    # after release, before cleanup: CLEANING; the issue PROCESSED with its verdict
    _, out, _ = run_cli(moto_server, "hist", "--as-of", iso(T0 + timedelta(minutes=22)), "--format", "jsonl")
    states = _states(out)
    assert states[leased]["status"] == "CLEANING" and states[leased]["lease_id"] is None
    assert states["issue-octo/demo#9"]["status"] == "PROCESSED" and states["issue-octo/demo#9"]["verdict"] == "reproduced"
    # the table form names the counts and aligns the pool
    _, out, _ = run_cli(moto_server, "hist", "--as-of", iso(T0 + timedelta(minutes=12)), "--format", "table")
    assert out.startswith(f"as of {iso(T0 + timedelta(minutes=12))}") and "2 usable" in out
    assert any(line.startswith(leased) and "RESERVED" in line for line in out.splitlines())


@pytest.mark.server
def test_as_of_one_stream_reads_only_that_stream(history: SimpleNamespace, moto_server: str) -> None:
    code, out, _ = run_cli(moto_server, "hist", "--as-of", iso(T0 + timedelta(minutes=12)), "--stream",
                           history.lease.account_id, "--format", "jsonl")
    assert code == 0 and list(_states(out)) == [history.lease.account_id]


@pytest.mark.server
def test_verify_clean_then_corrupted_then_repaired(moto_server: str) -> None:
    core = leasing_history(moto_server, "drift")
    code, out, _ = run_cli(moto_server, "drift", "--verify")
    assert (code, out.split(":")[0]) == (0, "no drift")
    # GIVEN a row deliberately corrupted behind the log's back
    row = core.tables.pool.get("account-222222222222" if core.lease.account_id == "111111111111"
                               else "account-111111111111")
    row.status = "QUARANTINED"
    row.save()
    counts = core.tables.pool.get("counts")
    counts.usable = 7
    counts.save()
    # WHEN verifying THEN exit 1 with a readable diff naming row, field, stored and log values
    code, out, _ = run_cli(moto_server, "drift", "--verify")
    assert code == 1
    assert out.startswith("drift: 2 field(s) differ in 2 row(s)")
    drift_line = next(line for line in out.splitlines() if line.startswith("account "))
    assert drift_line.split() == ["account", row.pk.removeprefix("account-"), "status", "QUARANTINED", "AVAILABLE"]
    assert any(line.split()[:5] == ["counts", "counts", "usable", "7", "2"] for line in out.splitlines())
    # --repair rewrites the rows from the log; then verify is clean
    code, out, _ = run_cli(moto_server, "drift", "--verify", "--repair")
    assert code == 0 and "repaired: 2 row(s)" in out and "no drift left" in out
    assert core.tables.pool.get(row.pk).status == "AVAILABLE"
    assert run_cli(moto_server, "drift", "--verify")[0] == 0


# ---------------------------------------------------------------- repair's conditions (in-memory store)


def corrupt(core: SimpleNamespace, account_id: str, **changes: Any) -> None:
    """Change an account row behind the log's back (its version unchanged)."""
    row = core.store.account_rows[account_id]
    core.store.account_rows[account_id] = replace(row, account=replace(row.account, **changes))


def corrupt_counts(core: SimpleNamespace, **changes: int) -> None:
    stored = core.store.counts
    core.store.counts = replace(stored, counts=replace(stored.counts, **changes))


def race(monkeypatch: pytest.MonkeyPatch, core: SimpleNamespace, stream: str, live: Any) -> None:
    """Let a live command commit right after the store's read of ``stream``: the window between
    repair's read of the log and its write."""
    original, pending = core.store.read, [live]

    def read(name: str, *, after: int = 0, raw: bool = False) -> list[Envelope]:
        events = original(name, after=after, raw=raw)
        if name == stream and pending:
            pending.pop()()
        return events

    monkeypatch.setattr(core.store, "read", read)


def test_repair_refuses_a_row_that_moved_since_it_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    core = leasing_history()
    other = ({"111111111111", "222222222222"} - {core.lease.account_id}).pop()
    # GIVEN a drifted row (corrupted behind the log's back, version unchanged)
    corrupt(core, other, status="QUARANTINED")
    version = core.pool.get(other).version
    # AND a live command that moves that row while the repair is between its read and its write
    race(monkeypatch, core, f"account-{other}",
         lambda: core.pool.deregister(other, reason="manual", cause=Cause("live", "operator")))
    out = io.StringIO()
    # WHEN repairing
    code = replay.verify(replay.Core(None, core.store, core.pool, replay.ReadMeter()),
                         repair=True, out=out, now=datetime.now(UTC))
    # THEN the live write stands (not rolled back to the log as read), and the refusal is one line
    after = core.pool.get(other)
    assert (after.status, after.version) == ("DEREGISTERED", version + 1)
    last = out.getvalue().splitlines()[-1]
    assert code == 1
    assert last == (f"repaired: 0 row(s) rewritten from the log; refused 1 row(s) changed since they "
                    f"were read, left as they are: account {other} (run --verify again)")
    # and a second run no longer finds that row drifted (the live write followed the log)
    again = io.StringIO()
    assert replay.verify(replay.Core(None, core.store, core.pool, replay.ReadMeter()),
                         repair=False, out=again, now=datetime.now(UTC)) == 1
    assert again.getvalue().startswith("drift: ")  # the counts the live command moved from a corrupt row
    assert not any(line.split()[:2] == ["account", other] for line in again.getvalue().splitlines())


def test_repair_refuses_counts_that_moved_since_they_were_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from gip.services.projection import Projections

    core = leasing_history()
    corrupt_counts(core, usable=7)  # GIVEN drifted counts
    # AND a registration that commits while the repair folds the account streams
    race(monkeypatch, core, "account-111111111111",
         lambda: core.pool.register("333333333333", role_arn="arn:aws:iam::333333333333:role/p",
                                    source="manual", cause=Cause("live", "reconcile")))
    done = Projections(core.store).repair()
    assert (done.written, done.refused) == (0, ["counts"])
    assert core.pool.counts().usable == 8  # the live add stands, not overwritten


def test_repair_writes_rows_conditioned_on_the_version_read() -> None:
    from gip.services.projection import Projections

    core = leasing_history()
    corrupt(core, core.lease.account_id, worker="ghost")
    stale_issue = core.store.issue_rows.pop("issue-octo/demo#9")  # a row missing from the projection
    done = Projections(core.store).repair()
    assert (done.written, done.refused) == (2, [])
    assert core.pool.get(core.lease.account_id).worker is None
    assert core.store.issue_rows["issue-octo/demo#9"] == stale_issue
    assert Projections(core.store).verify() == []


@pytest.mark.server
def test_repair_without_verify_is_bad_usage(moto_server: str) -> None:
    code, _, err = run_cli(moto_server, "hist", "--repair")
    assert code == 2 and err.startswith("error: --repair only goes with --verify")


@pytest.mark.server
def test_to_bus_reaches_a_subscriber_queue_marked_as_replay(history: SimpleNamespace, moto_server: str) -> None:
    events, sqs = (boto3.client(name, endpoint_url=moto_server) for name in ("events", "sqs"))
    events.create_event_bus(Name="hist-bus")
    url = sqs.create_queue(QueueName="late-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert main(["subscribe", "late", "--pattern", '{"detail-type": ["AccountReserved", "AccountReleased"]}',
                 "--target", arn, "--prefix", "hist", "--endpoint-url", moto_server]) == 0
    # WHEN the account's history is re-published
    code, out, _ = run_cli(moto_server, "hist", "--stream", history.lease.account_id, "--to-bus")
    assert code == 0 and out.startswith("re-published 4 event(s) to hist-bus")
    # THEN the subscriber gets the two matching events, marked as a replay
    got = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        got += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(b["detail-type"] for b in got) == ["AccountReleased", "AccountReserved"]
    assert all(b["detail"]["replay"] is True and b["source"] == "hist" for b in got)
    reserved = next(b["detail"] for b in got if b["detail-type"] == "AccountReserved")
    assert reserved["data"]["lease_id"] == history.lease.lease_id


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.server
def test_default_format_is_table_on_a_terminal_and_jsonl_in_a_pipe(big: SimpleNamespace, moto_server: str) -> None:
    from gip.cli.main import build_parser

    argv = ["replay", "--stream", "octo/demo#7", "--prefix", "rp", "--endpoint-url", moto_server, "--region", "us-east-1"]
    tty = _Tty()
    assert replay.run(build_parser().parse_args(argv), out=tty) == 0
    assert tty.getvalue().startswith("OCCURRED_AT")
    _, piped, _ = run_cli(moto_server, "rp", "--stream", "octo/demo#7")
    assert [json.loads(line)["type"] for line in piped.splitlines()] == [
        "IssueReceived", "IssueQueued", "IssueProcessingFailed"]


def test_read_all_reads_the_start_of_a_stream_the_window_holds_only_the_end_of() -> None:
    from gip.services.projection import Projections

    now = [T0]
    core = make_memory_core(clock=lambda: now[0])
    core.issues.receive(delivery_id="d-1", repo="octo/demo", number=9, data=ISSUE, cause=Cause("d-1", "webhook"))
    now[0] = T0 + timedelta(hours=1)
    core.issues.record("octo/demo", 9, "IssueQueued", {"run": 1, "sender": "maint", "permission": "write"},
                       cause=Cause("d-1", "gatekeeper"))
    # WHEN the window (no registration yet, or a late --since) starts after the stream's first event
    events = Projections(core.store).read_all(since=T0 + timedelta(minutes=30), until=now[0])
    # THEN the stream's earlier events are read by key, once each, and the fold matches the row
    assert sorted(e["version"] for e in events) == [1, 2]
    assert Projections(core.store).verify(events) == []


# ---------------------------------------------------------------- issue 14: formats and truncation


@pytest.mark.server
def test_json_is_one_document_and_jsonl_one_object_per_line(big: SimpleNamespace, moto_server: str) -> None:
    _, doc, _ = run_cli(moto_server, "rp", "--stream", "octo/demo#7", "--format", "json")
    _, lines, _ = run_cli(moto_server, "rp", "--stream", "octo/demo#7", "--format", "jsonl")
    parsed = json.loads(doc)
    assert isinstance(parsed, list) and len(lines.splitlines()) == 3
    assert parsed == [json.loads(line) for line in lines.splitlines()]


def test_the_table_shows_the_whole_correlation_id_and_marks_every_cut() -> None:
    long_id = "delivery-" + "0123456789abcdef" * 4  # 73 characters, longer than any column limit
    event = {**_event(), "correlation_id": long_id, "data": {"error": "e" * 300}}
    (row,) = replay_query.event_rows([event])  # type: ignore[list-item]
    assert row["correlation_id"] == long_id
    line = table([row], replay_query.EVENT_COLUMNS)[2]
    assert long_id in line and line.endswith("…")
    assert replay_query.summary({"k": "v" * 200}, width=20).endswith("…")


def test_console_log_lines_use_iso_utc_with_milliseconds() -> None:
    import logging

    from gip.local.console import UtcFormatter

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 5, 4, 4, 41, 2, 118000, tzinfo=UTC).timestamp()
    assert UtcFormatter("%(asctime)s %(message)s").format(record) == "2026-05-04T04:41:02.118Z hello"


@pytest.mark.server
def test_a_far_future_as_of_is_clamped_to_the_newest_event_and_reads_only_days_with_events(
        history: SimpleNamespace, moto_server: str, meters: list[replay.ReadMeter]) -> None:
    newest = iso(T0 + timedelta(minutes=25))
    code, out, err = run_cli(moto_server, "hist", "--as-of", "2099-01-01", "--format", "table")
    assert code == 0 and out.startswith(f"as of {newest} ")
    assert f"notice: --as-of 2099-01-01T00:00:00.000Z is after the newest event; showing the state as of {newest}" in err
    (meter,) = meters
    assert meter.index_pages <= 3  # the newest day, then the fold's window: not one query per day to 2099


@pytest.mark.server
def test_since_after_the_newest_event_says_so(history: SimpleNamespace, moto_server: str) -> None:
    newest = iso(T0 + timedelta(minutes=25))
    for since in ("2099-01-01", iso(T0 + timedelta(hours=1))):
        code, out, err = run_cli(moto_server, "hist", "--since", since, "--format", "jsonl")
        assert code == 0 and out == ""
        assert err.startswith(f"no events after {newest} (the newest event; --since is ")
    code, out, _ = run_cli(moto_server, "hist", "--since", iso(T0 + timedelta(minutes=21)), "--format", "jsonl")
    assert code == 0 and [json.loads(line)["type"] for line in out.splitlines()] == ["AccountCleaned"]
