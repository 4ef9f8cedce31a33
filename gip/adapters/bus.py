"""PutEvents, the one way: requests of at most 10 entries and under 256 KB, failed entries resent.

Both the publisher (stream records) and ``replay --to-bus`` send through :func:`put_events`.
Limits: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024  # a request must stay strictly below this
TIME_BYTES = 14  # what a Time field counts for in the size rule, whatever its value
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2

Entry = Mapping[str, Any]


class EventsClient(Protocol):
    """The one boto3 ``events`` method we call."""

    def put_events(self, *, Entries: list[Entry]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Failed:
    """An entry that was never accepted: its position in the entries given, and why."""

    index: int
    code: str


def entry_size(entry: Entry) -> int:
    """Bytes an entry counts for against the request limit.

    AWS's rule counts Time (14), Source, DetailType, Detail and Resources; to be conservative
    Time is always counted and EventBusName and TraceHeader are counted too.
    """
    size = TIME_BYTES
    for key in ("Source", "DetailType", "Detail", "EventBusName", "TraceHeader"):
        size += len(str(entry.get(key, "")).encode("utf-8"))
    size += sum(len(r.encode("utf-8")) for r in entry.get("Resources", ()))
    return size


def fits(size: int) -> bool:
    """Is ``size`` bytes (a request, or one entry alone) under the request limit?"""
    return size < MAX_REQUEST_BYTES


def batches(entries: Iterable[Entry]) -> Iterator[list[tuple[int, Entry]]]:
    """(position, entry) pairs, in order, in requests of at most 10 entries and under 256 KB.

    Lazy, so a long replay is never held in memory. An entry too large on its own gets a
    request of its own (which :func:`put_events` never sends).
    """
    current: list[tuple[int, Entry]] = []
    used = 0
    for index, entry in enumerate(entries):
        size = entry_size(entry)
        if current and (len(current) == MAX_ENTRIES or not fits(used + size)):
            yield current
            current, used = [], 0
        current.append((index, entry))
        used += size
    if current:
        yield current


def put_events(
    client: EventsClient,
    entries: Iterable[Entry],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
    stop_at_failure: bool = False,
) -> list[Failed]:
    """Send ``entries`` in order; return those that finally failed (empty: all accepted).

    Each request resends only its failed entries, up to ``max_attempts`` tries with exponential
    backoff. With ``stop_at_failure`` no request is sent after one that kept a failure, and the
    entries of the requests not sent are reported too (code ``NotSent``).
    """
    failed: list[Failed] = []
    for request in batches(entries):
        if failed and stop_at_failure:
            failed += [Failed(index, "NotSent") for index, _ in request]
        elif len(request) == 1 and not fits(entry_size(request[0][1])):
            failed.append(Failed(request[0][0], "EntryTooLarge"))
        else:
            failed += _send(client, request, sleep=sleep, max_attempts=max_attempts)
    return failed


def _send(client: EventsClient, request: list[tuple[int, Entry]], *,
          sleep: Callable[[float], None], max_attempts: int) -> list[Failed]:
    """PutEvents one request, resending only failed entries; what still fails at the end."""
    pending = request
    failed: list[Failed] = []
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.put_events(Entries=[entry for _, entry in pending])
        except Exception as exc:  # any transport or service error: the whole request failed
            log.warning("PutEvents failed (attempt %d): %s", attempt, exc)
            results: list[Mapping[str, Any]] = [{"ErrorCode": _code(exc)}] * len(pending)
        else:
            results = list(response.get("Entries", []))
        results += [{}] * max(0, len(pending) - len(results))
        # A result without EventId (or a missing result) is a failure: never assume success.
        kept = [(item, r) for item, r in zip(pending, results, strict=False) if not r.get("EventId")]
        failed = [Failed(index, str(r.get("ErrorCode", "NoEventId"))) for (index, _), r in kept]
        if not failed:
            return []
        pending = [item for item, _ in kept]
        log.warning("PutEvents: %d entr(ies) failed (attempt %d): %s", len(failed), attempt,
                    sorted({f.code for f in failed}))
        if attempt < max_attempts:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    return failed


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
