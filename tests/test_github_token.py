"""The GitHub token source: Secrets Manager (moto in-process), local GITHUB_TOKEN, caching."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from gip.adapters.github.token import CACHE_SECONDS, TokenSource
from gip.errors import ConfigError

SECRET_ID = "test/github-token"
LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "test-notifier"}


@pytest.fixture
def sm() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


class Counting:
    """Wraps the client factory to count GetSecretValue calls."""

    def __init__(self, client) -> None:
        self.client, self.calls = client, 0

    def __call__(self):
        self.calls += 1
        return self.client


def test_lambda_reads_the_secret_and_ignores_github_token_env(sm):
    sm.create_secret(Name=SECRET_ID, SecretString="ghs_from_secret\n")
    source = TokenSource(secret_id=SECRET_ID, env={**LAMBDA, "GITHUB_TOKEN": "ghp_env"},
                         secrets_client=lambda: sm)
    assert source.get() == "ghs_from_secret"


def test_the_token_is_cached_per_container_and_refreshed_after_the_ttl(sm):
    sm.create_secret(Name=SECRET_ID, SecretString="one")
    now = [0.0]
    factory = Counting(sm)
    source = TokenSource(secret_id=SECRET_ID, env=LAMBDA, secrets_client=factory, clock=lambda: now[0])
    assert source.get() == source.get() == "one"
    assert factory.calls == 1
    sm.put_secret_value(SecretId=SECRET_ID, SecretString="two")
    now[0] += CACHE_SECONDS + 1
    assert source.get() == "two" and factory.calls == 2
    source.invalidate()
    source.get()
    assert factory.calls == 3


@pytest.mark.parametrize("value", ["unset", "", "  "])
def test_lambda_refuses_a_missing_or_placeholder_secret(sm, value):
    if value.strip():
        sm.create_secret(Name=SECRET_ID, SecretString=value)
    source = TokenSource(secret_id=SECRET_ID, env=LAMBDA, secrets_client=lambda: sm)
    with pytest.raises(ConfigError) as info:
        source.get()
    assert SECRET_ID in str(info.value)


def test_local_mode_prefers_github_token_env(sm):
    sm.create_secret(Name=SECRET_ID, SecretString="from-secret")
    source = TokenSource(secret_id=SECRET_ID, env={"GITHUB_TOKEN": "local"}, secrets_client=lambda: sm)
    assert source.get() == "local"


def test_local_mode_without_token_or_secret_has_no_token(sm):
    assert TokenSource(secret_id=SECRET_ID, env={}, secrets_client=lambda: sm).get() is None
    sm.create_secret(Name=SECRET_ID, SecretString="unset")
    assert TokenSource(secret_id=SECRET_ID, env={}, secrets_client=lambda: sm).get() is None


def test_the_token_is_not_in_the_repr(sm):
    sm.create_secret(Name=SECRET_ID, SecretString="ghp_supersecret")
    source = TokenSource(secret_id=SECRET_ID, env=LAMBDA, secrets_client=lambda: sm)
    source.get()
    assert "supersecret" not in repr(source)


def test_token_source_meets_the_credentials_contract(sm) -> None:
    from gip.adapters.github.auth import Credentials

    source: Credentials = TokenSource(secret_id=SECRET_ID, env={"GITHUB_TOKEN": "ghp_local"},
                                      secrets_client=lambda: sm)
    assert source.token_for("octo/repo") == source.token_for(None) == "ghp_local"
    assert source.rate_key("octo/repo") == source.rate_key("other/repo") == "token"
    assert "ghp_local" not in source.rate_key(None)
