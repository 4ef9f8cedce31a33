"""Test doubles shared by several test files: ``github_server.FakeGitHub`` (a local GitHub
REST API that records requests) and its pytest fixture in ``fixtures``."""

from tests.fakes.github_server import FakeGitHub, Recorded

__all__ = ["FakeGitHub", "Recorded"]
