"""The projection side of the DynamoDB store: storage-neutral row writes and reads
(:mod:`gip.store.protocols`) ↔ pynamodb items of the pool and issues tables.

:class:`DynamoProjections` is mixed into :class:`~gip.store.dynamodb.DynamoEventStore`;
:func:`transact_item` turns one :data:`RowWrite` into the pynamodb put or update that the
append's TransactWriteItems carries.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pynamodb.attributes import NumberAttribute
from pynamodb.exceptions import (
    DeleteError,
    DoesNotExist,
    PutError,
    PynamoDBException,
    UpdateError,
)
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from gip.domain.envelope import account_stream
from gip.domain.issue import Issue
from gip.domain.pool import Account, Counts
from gip.errors import AwsError, StoreUnavailable
from gip.store.models import AccountRow, IssueRow, Tables
from gip.store.protocols import (
    AccountPut,
    CountsAdd,
    CountsRow,
    DeliveryMarker,
    IssuePut,
    RowWrite,
)

COUNTS_PK = "counts"
STRIKES_PK = "reconcile#strikes"
_CONDITION_FAILED = "ConditionalCheckFailedException"
_M = TypeVar("_M", bound=Model)


@dataclass
class TransactItem:
    """One pynamodb item of a TransactWriteItems, with the tag that names its failure:
    "row" → ConcurrencyConflict, "delivery" → DuplicateDelivery, "counts" → StoreUnavailable."""

    item: Model
    tag: str
    kind: Literal["put", "update"] = "put"
    condition: Condition | None = None
    actions: list[Action] = field(default_factory=list)
    delivery_id: str = ""


def account_item(tables: Tables, account: Account, *, rand: float) -> AccountRow:
    """Account → a full projection row (a put replaces every attribute, so nothing lingers)."""
    leased = "L" if account.lease_id else None
    return tables.pool(
        account_stream(account.account_id), version=account.version, status=account.status,
        rand=rand, leased=leased, expires_at=account.expires_at, reserved_at=account.reserved_at,
        lease_id=account.lease_id, cleaning_lease=account.cleaning_lease, issue=account.issue,
        worker=account.worker, role_arn=account.role_arn, source=account.source,
        reason=account.reason, registered_at=account.registered_at, updated_at=account.updated_at,
        cleanup_failures=account.cleanup_failures or None,
    )


def account_from_item(row: AccountRow) -> Account:
    """Projection row → Account (the same shape the reducer produces)."""
    return Account(
        account_id=row.pk.removeprefix("account-"), status=row.status or "",
        version=int(row.version or 0), role_arn=row.role_arn or "", source=row.source or "",
        registered_at=row.registered_at or "", updated_at=row.updated_at or "",
        lease_id=row.lease_id, issue=row.issue, worker=row.worker, reserved_at=row.reserved_at,
        expires_at=row.expires_at, cleaning_lease=row.cleaning_lease, reason=row.reason,
        cleanup_failures=int(row.cleanup_failures or 0),
    )


def issue_item(tables: Tables, issue: Issue) -> IssueRow:
    return tables.issues(issue.stream, version=issue.version, status=issue.status, run=issue.run,
                         state=json.dumps(issue.as_dict(), sort_keys=True))


def issue_from_item(row: IssueRow) -> Issue:
    return Issue.from_dict(json.loads(row.state))


def _version_condition(model: type[Model], expected_version: int | None) -> Condition:
    if expected_version is None:
        return model.pk.does_not_exist()  # type: ignore[attr-defined,no-any-return]
    return model.version == expected_version  # type: ignore[attr-defined,no-any-return]


def _put(tables: Tables, write: AccountPut | IssuePut) -> TransactItem:
    if isinstance(write, AccountPut):
        model = tables.pool
        condition = _version_condition(model, write.expected_version)
        if write.owner is not None:
            condition = condition & (model.cleaning_by == write.owner)
        return TransactItem(account_item(tables, write.account, rand=write.rand), "row",
                            condition=condition)
    return TransactItem(issue_item(tables, write.issue), "row",
                        condition=_version_condition(tables.issues, write.expected_version))


def transact_item(tables: Tables, write: RowWrite) -> TransactItem:
    """The pynamodb put or update for one storage-neutral row write."""
    if isinstance(write, DeliveryMarker):
        marker = tables.events(f"delivery-{write.delivery_id}", 0, kind="marker",
                               occurred_at=write.occurred_at)
        return TransactItem(marker, "delivery", condition=tables.events.pk.does_not_exist(),
                            delivery_id=write.delivery_id)
    if isinstance(write, CountsAdd):
        m = tables.pool
        counts = _count_attributes(m)
        actions: list[Action] = [counts[name].add(value) for name, value in write.delta.as_dict().items()]
        actions.append(m.first_day.set(m.first_day | write.day))
        return TransactItem(m(COUNTS_PK), "counts", kind="update", actions=actions)
    return _put(tables, write)


def _count_attributes(m: type[AccountRow]) -> dict[str, NumberAttribute]:
    return {"usable": m.usable, "registered": m.registered, "quarantined": m.quarantined,
            "deregistered": m.deregistered}


class DynamoProjections:
    """The :class:`~gip.store.protocols.ProjectionStore` half of the DynamoDB store."""

    tables: Tables

    # --- accounts ---------------------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        row = _get(self.tables.pool, account_stream(account_id), action=f"read account {account_id}")
        return None if row is None else account_from_item(row)

    def accounts(self) -> list[Account]:
        m = self.tables.pool
        return _accounts(m.scan(m.pk.startswith("account-")), "scan the pool")

    def sample_accounts(self, status: str, *, pivot: float, limit: int) -> list[Account]:
        index, rand = self.tables.pool.by_status, self.tables.pool.rand
        rows = _accounts(index.query(status, rand >= pivot, limit=limit), f"read {status} accounts")
        if len(rows) < limit:
            rows += _accounts(index.query(status, rand < pivot, limit=limit - len(rows)),
                              f"read {status} accounts")
        return rows

    def leases_expiring_before(self, at: str) -> list[Account]:
        m = self.tables.pool
        return _accounts(m.by_expiry.query("L", m.expires_at < at), "read the expiry index")

    def leases_reserved_before(self, at: str) -> list[Account]:
        m = self.tables.pool
        return _accounts(m.by_reserved.query("L", m.reserved_at < at), "read the reserved index")

    def counts_row(self) -> CountsRow | None:
        row = _get(self.tables.pool, COUNTS_PK, action="read the counts row")
        if row is None:
            return None
        counts = Counts(usable=int(row.usable or 0), registered=int(row.registered or 0),
                        quarantined=int(row.quarantined or 0), deregistered=int(row.deregistered or 0))
        return CountsRow(counts, row.first_day)

    # --- the cleaning claim -------------------------------------------------------------------
    def take_claim(self, account_id: str, *, version: int, status: str, owner: str, now: str,
                   expires_at: str) -> bool:
        m = self.tables.pool
        condition = ((m.version == version) & (m.status == status)
                     & (m.cleaning_by.does_not_exist() | (m.claim_expires_at < now)))
        return _claim_update(m(account_stream(account_id)),
                             [m.cleaning_by.set(owner), m.claim_expires_at.set(expires_at)],
                             condition, f"cleaning claim on {account_id}")

    def extend_claim(self, account_id: str, *, version: int, owner: str, expires_at: str) -> bool:
        m = self.tables.pool
        condition = (m.cleaning_by == owner) & (m.version == version)
        return _claim_update(m(account_stream(account_id)), [m.claim_expires_at.set(expires_at)],
                             condition, f"renewing the cleaning claim on {account_id}")

    def claim_holder(self, account_id: str) -> tuple[str | None, str | None]:
        row = _get(self.tables.pool, account_stream(account_id), action=f"read account {account_id}")
        return (None, None) if row is None else (row.cleaning_by, row.claim_expires_at)

    # --- issues and delivery markers ----------------------------------------------------------
    def issue(self, stream: str) -> Issue | None:
        row = _get(self.tables.issues, stream, action=f"read {stream}")
        return None if row is None else issue_from_item(row)

    def issues(self) -> list[Issue]:
        with storage_errors("scan the issues"):
            return [issue_from_item(r) for r in self.tables.issues.scan()]

    def issue_and_delivery(self, stream: str, delivery_id: str) -> tuple[Issue | None, bool]:
        from pynamodb.transactions import TransactGet

        events, issues = self.tables.events, self.tables.issues
        with storage_errors(f"read {stream} and delivery {delivery_id}"), \
                TransactGet(connection=self.tables.connection) as tx:
            row = tx.get(issues, stream)
            marker = tx.get(events, f"delivery-{delivery_id}", 0)
        try:
            state: Issue | None = issue_from_item(row.get())
        except issues.DoesNotExist:
            state = None
        try:
            marker.get()
            return state, True
        except events.DoesNotExist:
            return state, False

    # --- repair --------------------------------------------------------------------------------
    def put_row(self, write: AccountPut | IssuePut) -> bool:
        put = _put(self.tables, write)
        return _conditional(lambda: put.item.save(condition=put.condition), "repair a row")

    def delete_row(self, kind: Literal["account", "issue"], key: str, *, expected_version: int) -> bool:
        model: type[Model] = self.tables.pool if kind == "account" else self.tables.issues
        pk = account_stream(key) if kind == "account" else key
        condition = _version_condition(model, expected_version)
        return _conditional(lambda: model(pk).delete(condition=condition), f"delete {pk}")

    def put_counts(self, row: CountsRow, *, expected: CountsRow | None) -> bool:
        m = self.tables.pool
        counts = _count_attributes(m)
        condition: Condition = m.pk.does_not_exist()
        if expected is not None:
            condition = m.pk.exists()
            for name, value in expected.counts.as_dict().items():
                # a count never added is absent: the same as 0
                same = counts[name] == value
                condition &= (counts[name].does_not_exist() | same) if value == 0 else same
        c = row.counts
        item = m(COUNTS_PK, first_day=row.first_day, usable=c.usable, registered=c.registered,
                 quarantined=c.quarantined, deregistered=c.deregistered)
        return _conditional(lambda: item.save(condition=condition), "repair the counts row")


    # --- reconcile's strikes ---------------------------------------------------------------------
    def strikes(self) -> tuple[dict[str, int], int]:
        row = _get(self.tables.pool, STRIKES_PK, action="read the reconcile strikes")
        if row is None or row.strikes is None:
            return {}, 0
        return {str(k): int(v) for k, v in json.loads(row.strikes).items()}, int(row.version or 0)

    def save_strikes(self, strikes: Mapping[str, int], *, expected_version: int, at: str) -> bool:
        m = self.tables.pool
        item = m(STRIKES_PK, kind="reconcile-strikes", strikes=json.dumps(dict(strikes), sort_keys=True),
                 version=expected_version + 1, updated_at=at)
        condition = m.pk.does_not_exist() | (m.version == expected_version)
        return _conditional(lambda: item.save(condition=condition), "store the reconcile strikes")


def _get(model: type[_M], key: str, *, action: str) -> _M | None:
    try:
        with storage_errors(action):
            return model.get(key, consistent_read=True)
    except DoesNotExist:
        return None


def _accounts(rows: Iterable[AccountRow], action: str) -> list[Account]:
    with storage_errors(action):
        return [account_from_item(r) for r in rows]


def _claim_update(item: AccountRow, actions: list[Action], condition: Condition, what: str) -> bool:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code == _CONDITION_FAILED:
            return False
        raise AwsError(f"{what} failed: {exc.cause_response_message}") from exc
    return True


def _conditional(write: Callable[[], object], action: str) -> bool:
    """True if the write went through, False if its condition failed; StoreUnavailable else."""
    try:
        write()
    except (PutError, DeleteError, UpdateError) as exc:
        if exc.cause_response_code == _CONDITION_FAILED:
            return False
        raise StoreUnavailable(action, code(exc), exc.cause_response_message or "") from exc
    return True


def code(exc: PynamoDBException) -> str:
    return exc.cause_response_code or type(exc.cause or exc).__name__


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """A failed DynamoDB read → StoreUnavailable (one line, the AWS code), ``from`` the cause."""
    try:
        yield
    except DoesNotExist:
        raise  # an answer, not a failure
    except PynamoDBException as exc:
        raise StoreUnavailable(action, code(exc), exc.cause_response_message or "") from exc
