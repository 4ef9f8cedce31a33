"""Pytest fixtures for the fakes. Use them with, in a test module or conftest::

    from tests.fakes.fixtures import github_server  # noqa: F401  (fixture)

or ``pytest_plugins = ["tests.fakes.fixtures"]`` in the top ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.github_server import FakeGitHub


@pytest.fixture
def github_server() -> Iterator[FakeGitHub]:
    """A started :class:`FakeGitHub` (token ``test-token``, our login ``gip-bot``).

    Teardown fails the test if a request broke GitHub's OpenAPI description
    (``server.violations``), unless the test set ``server.allow_violations = True``.
    """
    server = FakeGitHub(token="test-token", login="gip-bot").start()
    try:
        yield server
    finally:
        server.stop()  # raises OpenAPIViolations
