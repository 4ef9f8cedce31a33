"""Member-account credentials: assume the processing role with ExternalId, tagged with the lease.

The session name carries the lease id (CloudTrail in the member account then says which run
did what). The session is short; :meth:`MemberCredentials.get` re-assumes the role when less
than ``refresh_margin_s`` remains, so a long run and the cleanup after it never use expired
keys. A subprocess gets a copy at start, so the duration asked for covers the run's timeout
(bounded by the role's one-hour default maximum); a run allowed to outlive one session gets a
loopback credentials endpoint instead (:mod:`worker.credserver`), which refreshes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gip.errors import AwsError

MIN_SESSION_S = 900  # AssumeRole's floor
MAX_SESSION_S = 3600  # a role's default MaxSessionDuration


def session_name(lease_id: str, worker: str = "") -> str:
    """``gip-<lease id>[-<worker>]``: at most 64 characters of ``[\\w+=,.@-]``."""
    raw = f"gip-{lease_id}" + (f"-{worker}" if worker else "")
    return re.sub(r"[^\w+=,.@-]", "-", raw)[:64]


def session_seconds(run_timeout_s: float, margin_s: float = 300) -> int:
    """A session long enough for one run plus cleanup, within AssumeRole's bounds."""
    return int(min(MAX_SESSION_S, max(MIN_SESSION_S, run_timeout_s + margin_s)))


class MemberCredentials:
    """Assume ``role_arn`` (the account row's, as registered) lazily and refresh it before it
    expires. Thread-safe."""

    def __init__(self, sts: Any, *, role_arn: str, external_id: str,
                 lease_id: str, worker: str = "", duration_s: int = MIN_SESSION_S,
                 refresh_margin_s: float = 300, clock: Callable[[], datetime] | None = None) -> None:
        self._sts = sts
        self.role_arn = role_arn
        self.external_id = external_id
        self.session_name = session_name(lease_id, worker)
        self.duration_s = duration_s
        self.refresh_margin = timedelta(seconds=refresh_margin_s)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._current: dict[str, str] | None = None
        self._expires: datetime | None = None

    def get(self) -> dict[str, str]:
        """Fresh ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (and
        ``AWS_CREDENTIAL_EXPIRATION``, ISO-8601 UTC)."""
        with self._lock:
            if self._current is None or self._expires is None or self._clock() >= self._expires - self.refresh_margin:
                self._assume()
            assert self._current is not None
            return dict(self._current)

    def boto3_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client(...)`` acting in the member account."""
        creds = self.get()
        return {"aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": creds["AWS_SESSION_TOKEN"]}

    def _assume(self) -> None:
        kwargs: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name,
                                  "DurationSeconds": self.duration_s}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        try:
            answer = self._sts.assume_role(**kwargs)["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(f"cannot assume {self.role_arn}: {exc}") from exc
        expires = answer["Expiration"]
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        self._expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        self._current = {"AWS_ACCESS_KEY_ID": answer["AccessKeyId"],
                         "AWS_SECRET_ACCESS_KEY": answer["SecretAccessKey"],
                         "AWS_SESSION_TOKEN": answer["SessionToken"],
                         "AWS_CREDENTIAL_EXPIRATION": self._expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
