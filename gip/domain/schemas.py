"""JSON-Schema validation of events on append, and upcasting of old versions on read.

``schemas/envelope.json`` describes the envelope; ``schemas/<Type>.json`` describes one event
type (its ``data`` and stream kind) and names its current ``schema_version`` in
``x-current-version``. Validators are built lazily and cached: jsonschema is imported only on the
first append, which keeps handler cold starts light.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

from gip.domain.envelope import Envelope, JSONObject
from gip.errors import InvalidEvent

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "schemas"

Upcaster = Callable[[Envelope], Envelope]


class _ValidationError(Protocol):
    """What :func:`validate` reads of a ``jsonschema.ValidationError`` (jsonschema ships no types)."""

    message: str
    validator: str
    validator_value: object
    instance: object
    absolute_path: Sequence[str | int]


class _Validator(Protocol):
    def iter_errors(self, instance: object) -> Iterator[_ValidationError]: ...


@cache
def _load(name: str) -> JSONObject:
    path = SCHEMA_DIR / f"{name}.json"
    try:
        schema: JSONObject = json.loads(path.read_text())
        return schema
    except FileNotFoundError:
        raise InvalidEvent(name, "type", "unknown event type (no schema in schemas/)") from None


@cache
def event_types() -> tuple[str, ...]:
    """Every event type that has a schema in ``schemas/``."""
    return tuple(sorted(p.stem for p in SCHEMA_DIR.glob("*.json") if p.stem != "envelope"))


def current_version(type_: str) -> int:
    """The schema_version new events of this type are written with."""
    version = _load(type_).get("x-current-version", 1)
    if not isinstance(version, int):  # our own files: tests/test_schemas.py reads every one
        raise InvalidEvent(type_, "x-current-version", "not an integer in schemas/")
    return version


@cache
def _validator(name: str) -> _Validator:
    from jsonschema import Draft202012Validator  # lazy: heavy import

    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    validator: _Validator = Draft202012Validator(schema)
    return validator


def validate(event: Mapping[str, object]) -> None:
    """Raise :class:`InvalidEvent` naming the type and the failing field, or return."""
    type_ = event.get("type") if isinstance(event, dict) else None
    if not isinstance(type_, str) or type_ not in event_types():
        raise InvalidEvent(str(type_), "type", "unknown event type (no schema in schemas/)")
    for name in ("envelope", type_):
        errors = sorted(_validator(name).iter_errors(event), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            field = "/".join(str(p) for p in err.absolute_path) or "(event)"
            required = err.validator_value if err.validator == "required" else None
            if isinstance(required, list) and isinstance(err.instance, dict):
                missing = [f for f in required if f not in err.instance]
                if missing:
                    field = "/".join([*(str(p) for p in err.absolute_path), missing[0]])
            raise InvalidEvent(type_, field, err.message)


# --- upcasting -----------------------------------------------------------------------------
# (type, from_version) -> pure function returning the event at from_version + 1.


def _processing_failed_v1_to_v2(event: Envelope) -> Envelope:
    """v1 had no ``attempt`` and an optional ``retryable``; v2 requires both."""
    data = dict(event["data"])
    data.setdefault("attempt", 1)
    data.setdefault("retryable", False)
    return {**event, "schema_version": 2, "data": data}


def _no_matrix_v1_to_v2(event: Envelope) -> Envelope:
    """IssueQueued / IssueProcessed v2 (issue 17) add optional matrix fields; a v1 event is a
    single run without them, unchanged otherwise."""
    return {**event, "schema_version": 2}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("IssueProcessingFailed", 1): _processing_failed_v1_to_v2,
    ("IssueQueued", 1): _no_matrix_v1_to_v2,
    ("IssueProcessed", 1): _no_matrix_v1_to_v2,
}


def upcast(event: Envelope) -> Envelope:
    """Bring a stored event up to its type's current schema_version. Pure; input untouched."""
    type_ = event.get("type", "")
    version = int(event.get("schema_version", 1))
    if type_ not in event_types():
        return event
    target = current_version(type_)
    out = event
    while version < target:
        step = UPCASTERS.get((type_, version))
        if step is None:
            raise InvalidEvent(type_, "schema_version", f"no upcaster from version {version}")
        out = step(copy.deepcopy(out) if out is event else out)
        version = int(out["schema_version"])
    return out
