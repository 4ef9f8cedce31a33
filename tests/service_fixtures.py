"""Fixtures shared by the service tests (tests/test_gatekeeper.py, tests/test_notifier.py,
tests/test_verdict_path.py). Each module takes them by name (``core = service_fixtures.core``),
as the fake GitHub's fixture is taken, so nothing here reaches other modules.

``core``: store, pool and issues on the in-memory store (:func:`tests.conftest.make_memory_core`):
these services see only the store's protocols. ``dynamo_core``: the same on moto in-process
(one moto and tables per module, emptied per test), for the tests whose handler builds its
service from the environment, and so from the DynamoDB tables.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.conftest import empty_tables, make_memory_core
from tests.fakes.clock import FakeTime


@pytest.fixture
def core() -> SimpleNamespace:
    return make_memory_core()


@pytest.fixture
def dynamo_core(shared_core: SimpleNamespace) -> SimpleNamespace:
    return empty_tables(shared_core)


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()
