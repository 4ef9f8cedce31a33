"""Shared fixtures: fake AWS credentials, moto in-process, moto server over HTTP, core tables.

- ``aws_env``      fake credentials + region for every test (autouse); no real AWS is reachable;
                   moto without its public AMIs (see ``amazon_amis``).
- ``moto_server``  a ThreadedMotoServer on a free 127.0.0.1 port (module scope); yields its URL.
- ``core``         moto in-process + the three tables: a namespace with settings, tables,
                   store, pool and issues (function scope).
- ``memory_core``  the same services on the in-memory store (no moto): store, pool, issues.
                   Service tests use it; moto stays for what is DynamoDB's own behaviour.
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import freezegun
import pytest

from gip import observability
from gip.container import once
from gip.local import moto_transactions, shared_loader

# freeze_time scans every loaded module's attributes; Powertools' parser package loads its
# pydantic models lazily on attribute access, which under a frozen clock cannot build its
# datetime schemas. Powertools reads no clock we freeze, so freezegun leaves it alone.
freezegun.configure(extend_ignore_list=["aws_lambda_powertools"])

pytest_plugins = ["tests.fakes.fixtures"]  # the fake GitHub server fixture, for every test

# moto without its public AMIs outside the tests as well (``aws_env`` sets it per test): a
# module-scoped mock_aws that ends after the last test's monkeypatch is undone resets every EC2
# backend, and loading ~1,300 AMIs into each cost ~6 s per module.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

# The cyclic garbage collector less often (Python's default: a young collection every 700
# allocations more than frees, a full one every 100 young ones or so). A worker's heap holds
# moto's backends, the collected tests and GitHub's OpenAPI description (~500,000 objects), and
# every full collection walks all of it: ~15% of a worker's CPU. At 50,000 a young collection,
# a full one is rare (tests/test_notifier.py ... test_replay.py in one process: 27.2-27.5 CPU-s,
# 4.0 of them collecting, to 24.2-26.1, 1.5 collecting). Memory is not the limit here; a cycle
# lives a little longer.
gc.set_threshold(50_000, 20, 20)

# One botocore data loader for every session: pynamodb builds a botocore session per connection
# and moto one per backend, and each new session's loader parsed the service models and
# endpoints JSON again (~40% of a moto-backed test's set-up). The loader caches what it read.
shared_loader.install()

# moto in-process as local mode runs it: a transaction backs up what it touches, not a deep copy
# of every table it names (gip.local.moto_transactions, tested in tests/test_moto_transactions.py;
# a cancelled transaction restores the same). The stream records outlive emptied tables, so the
# deep copies grew over a module (~20% of tests/test_worker_loop.py's CPU).
moto_transactions.install()

# The files that take longest (wall seconds on 2 cores, measured 2026-11-30, session 6), longest first.
# The Makefile runs xdist with ``--dist loadfile --no-loadscope-reorder``: files are handed out
# in collection order, which this puts first. xdist's own reorder sends the files with the most
# tests first, so these, which have few tests, started last and ran alone at the end (~75 s of
# one idle core). tests/test_layout.py checks that each name is a test file.
LONGEST_FIRST = (
    "test_local_e2e.py",  # 55 s: a local stack and its workers
    "test_github_burst.py",  # 55 s: mostly the real write spacing, asleep
    "test_pool_race.py",  # 43 s: all CPU, in moto's server
    "test_local_restart.py",  # 35 s: two local stack starts
    "test_sandbox.py",  # 26 s: snippets that sleep
    "test_app_e2e.py",  # 26 s: a local stack
    "test_cleanup_e2e.py",  # 23 s: a claim's back-off
    "test_worker_loop.py",  # 19 s
    "test_deploy.py",  # 11 s
    "test_replay.py",  # 11 s
    "test_cleaner.py",  # 8 s
    "test_worker_e2e.py",  # 7 s: worker processes (it ran alone at the end: 7 s of one core idle)
    "test_redelivery.py",  # 7 s
    "test_sqs_pollers.py",  # 7 s
    "test_webhook_hostile.py",  # 7 s
    "test_notifier.py",  # 6.5 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files above first, longest first; every other file after, in its usual order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order


FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def new_container(monkeypatch: pytest.MonkeyPatch, handler_module: ModuleType) -> None:
    """A cold start for one test: the handler's ``_service`` builds afresh; the old one is back after."""
    monkeypatch.setattr(handler_module, "_service", once(handler_module._service.__wrapped__))


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "GITHUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    # moto's ~1,300 public AMIs and their snapshots make every DescribeSnapshots of the cleaner
    # cost ~0.5 s; tests/test_cleaner.py turns them back on (it runs instances from them, and
    # checks that the cleaner leaves snapshots it does not own alone).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    if "AWS_ENDPOINT_URL" in os.environ and not os.environ.get("GIP_KEEP_ENDPOINT"):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
    yield
    observability.reset()  # a handler invoked by this test set up JSON logs on stdout: not for the next


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A real moto server over HTTP; each module gets its own, on a free port.

    It is the same embedded endpoint ``--local`` runs (gip.local.embedded_aws): requests are
    serialised because moto's backends are not thread-safe."""
    from gip.local.embedded_aws import EmbeddedAws

    for key, value in FAKE_ENV.items():
        os.environ.setdefault(key, value)
    server = EmbeddedAws(port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


def make_core(endpoint_url: str | None = None, prefix: str = "test", *, stream: bool = True) -> SimpleNamespace:
    from gip.config import Settings
    from gip.services.issues import Issues
    from gip.services.pool import Pool
    from gip.store.dynamodb import DynamoEventStore
    from gip.store.models import Tables, create_tables

    settings = Settings.for_prefix(prefix, endpoint_url=endpoint_url)
    tables = Tables.from_settings(settings, stream=stream)
    create_tables(tables)
    store = DynamoEventStore(tables)
    return SimpleNamespace(settings=settings, tables=tables, store=store,
                           pool=Pool(store=store), issues=Issues(store=store))


@pytest.fixture(scope="module")
def shared_core() -> Iterator[SimpleNamespace]:
    """One moto + tables per module (building the tables costs ~1 s on a busy machine);
    pair it with :func:`empty_tables` in a function-scoped ``core`` fixture."""
    from moto import mock_aws

    for key, value in FAKE_ENV.items():
        os.environ.setdefault(key, value)
    with mock_aws():
        yield make_core(prefix="test")


def empty_tables(core: SimpleNamespace, *, pool: bool = False) -> SimpleNamespace:
    """Delete every item of the events and issues tables (and with ``pool``, the pool table),
    so each test starts clean."""
    import boto3

    ddb = boto3.client("dynamodb")
    tables = [(core.settings.events_table, "pk, sk"), (core.settings.issues_table, "pk")]
    for table, keys in tables + ([(core.settings.pool_table, "pk")] if pool else []):
        for item in ddb.scan(TableName=table, ProjectionExpression=keys)["Items"]:
            ddb.delete_item(TableName=table, Key=item)
    getattr(core.store, "_days_noted", set()).clear()  # the day index went with the items
    return core


@pytest.fixture
def core() -> Iterator[SimpleNamespace]:
    from moto import mock_aws

    with mock_aws():
        yield make_core()


def make_memory_core(**kw: object) -> SimpleNamespace:
    """store, pool and issues on one :class:`~gip.store.memory.InMemoryEventStore`; ``kw`` go
    to both services (e.g. ``clock``)."""
    from gip.services.issues import Issues
    from gip.services.pool import Pool
    from gip.store.memory import InMemoryEventStore

    store = InMemoryEventStore()
    return SimpleNamespace(store=store, pool=Pool(store=store, **kw), issues=Issues(store=store, **kw))  # type: ignore[arg-type]


@pytest.fixture
def memory_core() -> SimpleNamespace:
    return make_memory_core()
