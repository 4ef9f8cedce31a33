"""Settings read once per container from the environment (names in docs/internals.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from gip.errors import ConfigError

DEFAULT_PREFIX = "github-issue-processor"


N = TypeVar("N", int, float)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def env_number(env: Mapping[str, str], name: str, default: N, *, minimum: float = 0) -> N:
    """``env[name]`` as a number of ``default``'s type (``default`` when unset or empty). A value
    that is not one, or below ``minimum``, is a :class:`ConfigError` naming the variable, not a
    ``ValueError`` traceback from the first function that reads it."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    kind = type(default)
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, not {text[:40]!r}") from None
    if not value >= minimum:  # also refuses nan
        raise ConfigError(f"{name} must be at least {minimum:g}, not {text[:40]!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a handler, the worker or the CLI needs to find its resources."""

    prefix: str = DEFAULT_PREFIX
    region: str = "us-east-1"
    endpoint_url: str | None = None
    events_table: str = f"{DEFAULT_PREFIX}-events"
    pool_table: str = f"{DEFAULT_PREFIX}-pool"
    issues_table: str = f"{DEFAULT_PREFIX}-issues"
    bus_name: str = f"{DEFAULT_PREFIX}-bus"
    results_bucket: str = ""
    issue_queue_url: str = ""
    cleanup_queue_url: str = ""
    github_api_url: str = "https://api.github.com"
    github_token_secret_id: str = f"{DEFAULT_PREFIX}/github-token"
    github_app_secret_id: str = f"{DEFAULT_PREFIX}/github-app"
    redeliver_hooks: tuple[str, ...] = ()  # repos/OWNER/NAME/hooks/ID, orgs/NAME/hooks/ID
    webhook_secret_id: str = f"{DEFAULT_PREFIX}/webhook-secret"
    required_labels: tuple[str, ...] = ("needs-reproduction",)
    trusted_permissions: tuple[str, ...] = ("admin", "maintain", "write")
    bot_login: str = ""
    github_app_id: str = ""  # GITHUB_APP_ID: the notifier knows its comments by the App's id
    max_body_bytes: int = 6_000_000  # Lambda's synchronous payload limit (docs/deploy.md)
    explain_untrusted: bool = False  # comment to an untrusted sender (else IssueSkipped only)
    processing_role_name: str = f"{DEFAULT_PREFIX}-processing"
    external_id: str = ""
    lease_seconds: int = 900
    lease_hard_cap_seconds: int = 10_800
    matrix_fixed_label: str = "fixed-in-latest"  # issue 17: matrix summary labels
    matrix_still_label: str = "still-reproduces"
    repo_config_ttl_s: float = 60.0  # REPO_CONFIG_TTL_S: the gatekeeper keeps reproduce.yml this long

    @property
    def matrix_labels(self) -> dict[str, str]:
        """Matrix summary -> label name (for ``verdict_labels.matrix_label_for`` and friends)."""
        return {"fixed_in_latest": self.matrix_fixed_label, "still_reproduces": self.matrix_still_label}

    @classmethod
    def for_prefix(cls, prefix: str, **overrides: object) -> Settings:
        """Default resource names derived from a deployment prefix."""
        base: dict[str, object] = dict(
            prefix=prefix,
            events_table=f"{prefix}-events",
            pool_table=f"{prefix}-pool",
            issues_table=f"{prefix}-issues",
            bus_name=f"{prefix}-bus",
            github_token_secret_id=f"{prefix}/github-token",
            github_app_secret_id=f"{prefix}/github-app",
            webhook_secret_id=f"{prefix}/webhook-secret",
            processing_role_name=f"{prefix}-processing",
        )
        return cls(**{**base, **overrides})  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``). Call once per container."""
        e = os.environ if env is None else env
        prefix = e.get("GIP_PREFIX", DEFAULT_PREFIX)
        d = cls.for_prefix(prefix)

        def get(name: str, default: str) -> str:
            value = e.get(name)
            return value if value else default

        return cls(
            prefix=prefix,
            region=get("AWS_REGION", get("AWS_DEFAULT_REGION", "us-east-1")),
            endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
            events_table=get("EVENTS_TABLE", d.events_table),
            pool_table=get("POOL_TABLE", d.pool_table),
            issues_table=get("ISSUES_TABLE", d.issues_table),
            bus_name=get("BUS_NAME", d.bus_name),
            results_bucket=get("RESULTS_BUCKET", ""),
            issue_queue_url=get("ISSUE_QUEUE_URL", ""),
            cleanup_queue_url=get("CLEANUP_QUEUE_URL", ""),
            github_api_url=get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            github_token_secret_id=get("GITHUB_TOKEN_SECRET_ID", d.github_token_secret_id),
            github_app_secret_id=get("GITHUB_APP_SECRET_ID", d.github_app_secret_id),
            redeliver_hooks=_csv(get("REDELIVER_HOOKS", "")),
            webhook_secret_id=get("WEBHOOK_SECRET_ID", d.webhook_secret_id),
            required_labels=_csv(get("REQUIRED_LABELS", "needs-reproduction")),
            trusted_permissions=_csv(get("TRUSTED_PERMISSIONS", "admin,maintain,write")),
            bot_login=get("BOT_LOGIN", ""),
            github_app_id=get("GITHUB_APP_ID", "").strip(),
            max_body_bytes=env_number(e, "MAX_BODY_BYTES", 6_000_000, minimum=1),
            explain_untrusted=get("EXPLAIN_UNTRUSTED", "false").strip().lower() in ("1", "true", "yes"),
            processing_role_name=get("PROCESSING_ROLE_NAME", d.processing_role_name),
            external_id=get("EXTERNAL_ID", ""),
            lease_seconds=env_number(e, "LEASE_SECONDS", 900, minimum=1),
            lease_hard_cap_seconds=env_number(e, "LEASE_HARD_CAP_SECONDS", 10_800, minimum=1),
            matrix_fixed_label=get("MATRIX_FIXED_LABEL", "fixed-in-latest").strip(),
            matrix_still_label=get("MATRIX_STILL_LABEL", "still-reproduces").strip(),
            repo_config_ttl_s=env_number(e, "REPO_CONFIG_TTL_S", 60.0),
        )
