"""Local mode (and the test suite's in-process moto): make moto's ``TransactWriteItems`` cost what it touches, not the table.

moto backs up every table a transaction names with ``copy.deepcopy`` before applying it, to
restore it if the transaction is cancelled. The events table holds every event and its stream
every record, so each append costs a deep copy of the whole log: in a burst of 20 issues on a
loaded machine that was 0.4-0.8 s per gatekeeper decision, and it grows with the log (issue
18; measured with bench/e2e.py and cProfile). The embedded endpoint serializes requests, so
all of local mode waits behind it.

:func:`install` keeps moto's own transaction code and swaps only its backup: the table object
copied shallowly, its item index copied one level down (pointers, not items), its stream
shard's record list copied, and the items the transaction names deep-copied, because moto's
``update_item`` changes an item in place. A cancelled transaction restores exactly what the
deep copy restored (the items, the stream's records; a new shard object, as before), for the
cost of copying pointers. Never used against real AWS.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

_local = threading.local()
_installed: dict[str, Any] = {}


def touched_keys(table: Any, transact_items: Iterable[Mapping[str, Any]]) -> list[tuple[Any, Any]]:
    """The (hash, range) DynamoType keys of ``table``'s items the transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    keys = []
    for item in transact_items:
        _, op = next(iter(item.items()))
        if op.get("TableName") != table.name:
            continue
        attrs = op.get("Item") or op.get("Key") or {}
        if table.hash_key_attr not in attrs:
            continue
        range_attr = table.range_key_attr
        keys.append((DynamoType(attrs[table.hash_key_attr]),
                     DynamoType(attrs[range_attr]) if range_attr and range_attr in attrs else None))
    return keys


def snapshot(table: Any, keys: Iterable[tuple[Any, Any]]) -> Any:
    """A copy of ``table`` that a cancelled transaction can be restored to (see the module)."""
    snap = copy.copy(table)
    if table.has_range_key:
        snap.items = defaultdict(dict, {h: dict(rows) for h, rows in table.items.items()})
    else:
        snap.items = defaultdict(dict, table.items)
    for hash_value, range_value in keys:
        current = table.get_item(hash_value, range_value) if hash_value in table.items else None
        if current is None:
            continue
        if table.has_range_key:
            snap.items[hash_value][range_value] = copy.deepcopy(current)
        else:
            snap.items[hash_value] = copy.deepcopy(current)
    if table.stream_shard is not None:
        snap.stream_shard = copy.copy(table.stream_shard)
        snap.stream_shard.items = list(table.stream_shard.items)
        snap.stream_shard.table = snap
    return snap


class _CopyModule:
    """Stands in for the ``copy`` module inside moto's transaction: tables get :func:`snapshot`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        items = getattr(_local, "transact_items", None)
        if isinstance(value, Table) and items is not None:
            return snapshot(value, touched_keys(value, items))
        return copy.deepcopy(value, memo)


def install() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent); :func:`uninstall` undoes it."""
    from moto.dynamodb import models

    if _installed:
        return
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _local.transact_items = transact_items
        try:
            original(self, transact_items)
        finally:
            _local.transact_items = None

    _installed.update(original=original, copy=models.copy)
    models.copy = _CopyModule()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.dynamodb import models

    if not _installed:
        return
    models.DynamoDBBackend.transact_write_items = _installed["original"]  # type: ignore[method-assign]
    models.copy = _installed["copy"]
    _installed.clear()
