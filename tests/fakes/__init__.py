"""Test doubles shared by several test files: ``github_server.FakeGitHub`` (a local GitHub
REST API that records requests) and its pytest fixture in ``fixtures``; ``aws_faults.AwsFaults``
(AWS errors injected at botocore's before-call hook, in front of moto)."""

from tests.fakes.github_server import FakeGitHub, Recorded

__all__ = ["FakeGitHub", "Recorded"]
