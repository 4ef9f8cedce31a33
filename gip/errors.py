"""One error hierarchy for the whole project. Translate at boundaries, always ``from exc``."""

from __future__ import annotations


class GipError(Exception):
    """Base class: a known failure, shown to a user as one line."""


class UsageError(GipError):
    """The command line or a request was malformed (CLI exit code 2)."""


class ConfigError(GipError):
    """A required setting or secret is missing or invalid."""


class InvalidEvent(GipError):
    """An event failed schema validation; nothing was written."""

    def __init__(self, event_type: str, field: str, message: str) -> None:
        self.event_type = event_type
        self.field = field
        self.message = message
        super().__init__(f"invalid {event_type} event: field '{field}': {message}")


class ConcurrencyConflict(GipError):
    """The stream was not at the expected version (optimistic concurrency)."""

    def __init__(self, stream: str, expected_version: int, detail: str = "") -> None:
        self.stream = stream
        self.expected_version = expected_version
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"concurrency conflict on stream {stream}: expected version {expected_version}{extra}"
        )


class IllegalTransition(GipError):
    """The event is not allowed from the stream's current state; nothing was written."""

    def __init__(self, stream: str, state: str, event_type: str, reason: str = "") -> None:
        self.stream = stream
        self.state = state
        self.event_type = event_type
        self.reason = reason
        extra = f": {reason}" if reason else ""
        super().__init__(f"{event_type} is not allowed on {stream} in state {state}{extra}")


class NotFound(GipError):
    """The named stream, account or resource does not exist."""


class AwsError(GipError):
    """An AWS call failed in a way the caller cannot fix by retrying at once."""


class StoreUnavailable(AwsError):
    """A DynamoDB call failed for a reason other than a condition: throttling, validation,
    an internal error. Nothing can be concluded about the stream; the caller may retry."""

    def __init__(self, action: str, code: str, message: str = "") -> None:
        self.action = action
        self.code = code
        extra = f": {message}" if message else ""
        super().__init__(f"storage unavailable: {action} failed with {code}{extra}")
