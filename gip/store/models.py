"""pynamodb models for the three tables (layout in docs/internals.md).

Table names are per deployment, so the concrete model classes are built at run time by
:func:`bind` from abstract bases. Build them once per container (``Tables.from_settings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from gip.config import Settings


class ByDay(GlobalSecondaryIndex["EventItem"]):
    """The time index: one partition per UTC day, ordered by ``occurred_at#event_id``."""

    class Meta:
        index_name = "by-day"
        projection = AllProjection()

    day = UnicodeAttribute(hash_key=True)
    ts = UnicodeAttribute(range_key=True)


class ByCorrelation(GlobalSecondaryIndex["EventItem"]):
    """Every event of one delivery, across streams."""

    class Meta:
        index_name = "by-correlation"
        projection = AllProjection()

    correlation_id = UnicodeAttribute(hash_key=True)
    ts = UnicodeAttribute(range_key=True)


class EventItem(Model):
    """One event (``body`` holds the envelope exactly as written) or a delivery marker."""

    pk = UnicodeAttribute(hash_key=True)
    sk = NumberAttribute(range_key=True)
    event_id = UnicodeAttribute(null=True)
    type_ = UnicodeAttribute(attr_name="type", null=True)
    occurred_at = UnicodeAttribute(null=True)
    day = UnicodeAttribute(null=True)
    ts = UnicodeAttribute(null=True)
    correlation_id = UnicodeAttribute(null=True)
    body = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    day_listed = UnicodeAttribute(null=True)  # the day index's items (gip.store.dynamodb.DAYS_PK)
    by_day = ByDay()
    by_correlation = ByCorrelation()


class ByStatus(GlobalSecondaryIndex["AccountRow"]):
    """Accounts by status, ordered by a random key: reserve picks at random through it."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    rand = NumberAttribute(range_key=True)


class ByExpiry(GlobalSecondaryIndex["AccountRow"]):
    """Sparse: only leased rows carry ``leased``. Sweeper: leases past ``expires_at``."""

    class Meta:
        index_name = "by-expiry"
        projection = AllProjection()

    leased = UnicodeAttribute(hash_key=True)
    expires_at = UnicodeAttribute(range_key=True)


class ByReserved(GlobalSecondaryIndex["AccountRow"]):
    """Sparse: sweeper's hard cap on lease age, whatever the heartbeats."""

    class Meta:
        index_name = "by-reserved"
        projection = AllProjection()

    leased = UnicodeAttribute(hash_key=True)
    reserved_at = UnicodeAttribute(range_key=True)


class AccountRow(Model):
    """An account's projection row, the pool ``counts`` row (pk ``counts``) or reconcile's
    strikes (pk ``reconcile#strikes``)."""

    pk = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(null=True)
    status = UnicodeAttribute(null=True)
    rand = NumberAttribute(null=True)
    leased = UnicodeAttribute(null=True)
    expires_at = UnicodeAttribute(null=True)
    reserved_at = UnicodeAttribute(null=True)
    lease_id = UnicodeAttribute(null=True)
    cleaning_lease = UnicodeAttribute(null=True)
    issue = UnicodeAttribute(null=True)
    worker = UnicodeAttribute(null=True)
    role_arn = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    registered_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    cleanup_failures = NumberAttribute(null=True)
    # The single-owner cleaning claim: operational, not folded from the log (verify ignores it;
    # every event's row put clears it, so an attempt's outcome event also ends its claim).
    cleaning_by = UnicodeAttribute(null=True)
    claim_expires_at = UnicodeAttribute(null=True)
    # counts row only
    usable = NumberAttribute(null=True)
    registered = NumberAttribute(null=True)
    quarantined = NumberAttribute(null=True)
    deregistered = NumberAttribute(null=True)
    first_day = UnicodeAttribute(null=True)
    # reconcile's strikes item only (pk ``reconcile#strikes``): JSON of mismatch key → count
    kind = UnicodeAttribute(null=True)
    strikes = UnicodeAttribute(null=True)
    by_status = ByStatus()
    by_expiry = ByExpiry()
    by_reserved = ByReserved()


class IssueRow(Model):
    """An issue's projection row: status and run for conditions, ``state`` = folded JSON."""

    pk = UnicodeAttribute(hash_key=True)
    version = NumberAttribute()
    status = UnicodeAttribute()
    run = NumberAttribute()
    state = UnicodeAttribute()


class GateItem(Model):
    """The GitHub rate gate of one rate key, a row of the pool table (``pk github-rate#<key>``;
    :class:`~gip.store.dynamo_ops.DynamoRateGate`). Epoch seconds."""

    pk = UnicodeAttribute(hash_key=True)
    blocked_until = NumberAttribute(null=True)
    strikes = NumberAttribute(null=True)
    next_write = NumberAttribute(null=True)


class MarkItem(Model):
    """The redelivery sweep's rows of the pool table: a hook's high-water mark
    (``pk redelivery-mark#<hook>``, ``mark``) or the stored hook list (``pk redelivery-hooks``,
    ``hooks``); :class:`~gip.store.dynamo_ops.DynamoRedeliveryMarks`."""

    pk = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(null=True)
    mark = NumberAttribute(null=True)
    hooks = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]


_M = TypeVar("_M", bound=Model)


def bind(base: type[_M], table_name: str, settings: Settings, **meta: str) -> type[_M]:
    """A concrete subclass of ``base`` bound to ``table_name`` on the configured endpoint."""
    return bind_to(base, table_name, region=settings.region, host=settings.endpoint_url, **meta)


def bind_to(base: type[_M], table_name: str, *, region: str | None, host: str | None,
            **meta: str) -> type[_M]:
    """:func:`bind` from the region and endpoint alone (a row kind used without the tables)."""
    attrs: dict[str, object] = {
        "table_name": table_name,
        "region": region,
        "billing_mode": "PAY_PER_REQUEST",
        **meta,
    }
    if host:
        attrs["host"] = host
    bound: type[_M] = type(base.__name__, (base,), {"Meta": type("Meta", (), attrs), "__module__": __name__})
    return bound


@dataclass(frozen=True)
class Tables:
    """The bound models plus a connection for transactions, built once per container."""

    events: type[EventItem]
    pool: type[AccountRow]
    issues: type[IssueRow]
    connection: Connection

    @classmethod
    def from_settings(cls, settings: Settings, *, stream: bool = True) -> Tables:
        """``stream=False`` only matters to :func:`create_tables` (tests that need no outbox:
        moto deep-copies a table, stream records included, on every transaction)."""
        meta = {"stream_view_type": "NEW_IMAGE"} if stream else {}
        tables = cls(
            events=bind(EventItem, settings.events_table, settings, **meta),
            pool=bind(AccountRow, settings.pool_table, settings),
            issues=bind(IssueRow, settings.issues_table, settings),
            connection=Connection(region=settings.region, host=settings.endpoint_url),
        )
        # pynamodb gives every model its own Connection, hence its own botocore session and
        # client (~0.3 s each to build). Point all three and the transactions at one.
        models: tuple[type[Model], ...] = (tables.events, tables.pool, tables.issues)
        for model in models:
            table_connection = model._get_connection()  # local only: builds the MetaTable
            tables.connection.add_meta_table(table_connection.get_meta_table())
            table_connection.connection = tables.connection
        return tables


def create_tables(tables: Tables) -> None:
    """Create the three tables (tests; in AWS and --local the templates create them)."""
    models: tuple[type[Model], ...] = (tables.events, tables.pool, tables.issues)
    for model in models:
        if not model.exists():
            model.create_table(wait=True)
