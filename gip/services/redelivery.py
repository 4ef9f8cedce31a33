"""The redelivery sweep: ask GitHub again for the webhook deliveries it gave up on.

Every 15 minutes (``handlers/redeliver``; locally on the compressed clock) and on demand
(``bootstrap.py redeliver``). For each hook (the GitHub App's, and the repository or
organization hooks of ``REDELIVER_HOOKS`` / ``--redeliver-hooks``):

1. list the deliveries newest first, page by page (``cursor``), down to the high-water mark
   the previous sweep left (or ``--since``; never older than GitHub's 3-day window);
2. pick the GUIDs whose latest attempt failed (:mod:`gip.domain.redelivery`), and read each
   one's ``delivery-<guid>`` stream: one with 3 redeliveries requested is left alone (logged),
   and a failed attempt whose redelivery was requested less than 60 s ago (``LISTING_GRACE``:
   by a sweep running at the same time, the CLI's and the schedule's; GitHub has not listed the
   new attempt yet) is not asked again, but kept below the mark for the next sweep;
3. for each other one, append ``WebhookRedeliveryRequested`` to that stream (the append is
   conditional on the stream's version, so two sweeps never both send it), then
   ``POST …/deliveries/{id}/attempts``;
4. move the mark up to the newest id listed (below a failure whose request could not be sent).

A sweep that finds nothing appends nothing: the marks are not events but rows of the pool table
(``redelivery-mark#<hook>``, as reconcile keeps its strikes there) behind the store's
:class:`~gip.store.protocols.RedeliveryMarks` contract. With no
failures and fewer than 100 deliveries since the last sweep, a sweep is one GitHub request.
The webhook answers a redelivered GUID it had in fact stored as a duplicate, as it always has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gip.adapters.github.errors import GitHubError
from gip.adapters.github.hooks import HookApi
from gip.domain import redelivery as rules
from gip.domain.envelope import Cause, delivery_stream, new_event, utcnow
from gip.errors import ConcurrencyConflict, ConfigError

if TYPE_CHECKING:  # the seam's types only; no import cycle at run time
    from gip.store.protocols import EventStore, RedeliveryMarks

log = logging.getLogger(__name__)
ACTOR = "redelivery"
MAX_PAGES = 30


@dataclass
class HookReport:
    """What one sweep did on one hook (the CLI prints it; figures for the closing note)."""

    hook: str
    listed: int = 0
    pages: int = 0
    calls: int = 0
    failed: int = 0
    redelivered: list[dict[str, Any]] = field(default_factory=list)
    at_cap: list[str] = field(default_factory=list)
    mark_before: int | None = None
    mark_after: int | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Redelivery:
    def __init__(self, *, store: EventStore, marks: RedeliveryMarks, hooks: Sequence[HookApi],
                 clock: Callable[[], datetime] = utcnow, max_pages: int = MAX_PAGES) -> None:
        self.store, self.marks, self.hooks = store, marks, list(hooks)
        self.clock, self.max_pages = clock, max_pages

    def sweep(self, *, since: timedelta | None = None, dry_run: bool = False) -> list[HookReport]:
        """Sweep every hook; ``since`` looks that far back instead of down to the mark."""
        if not self.hooks:
            log.info("redelivery: no hook to sweep (no GitHub App, no REDELIVER_HOOKS)")
        return [self._sweep(api, since=since, dry_run=dry_run) for api in self.hooks]

    def _sweep(self, api: HookApi, *, since: timedelta | None, dry_run: bool) -> HookReport:
        now = self.clock()
        report = HookReport(api.hook, mark_before=self.marks.get(api.hook))
        calls_before = api.calls
        try:
            listed = self._list(api, report, now=now, since=since)
            unsent = self._redeliver(api, report, rules.latest_failures(listed, now=now), now, dry_run)
            report.mark_after = rules.next_mark(report.mark_before, listed, unsent=unsent)
            if not dry_run and report.mark_after is not None and report.mark_after != report.mark_before:
                self.marks.advance(api.hook, report.mark_after)
        except (GitHubError, ConfigError) as exc:  # the mark stays: the next sweep looks again
            report.error = str(exc)
            log.warning("redelivery: hook %s not swept: %s", api.hook, exc)
        report.calls = api.calls - calls_before
        log.info("redelivery: hook %s: %d listed on %d page(s), %d failed, %d redelivered, "
                 "%d at the cap, %d GitHub call(s)%s", api.hook, report.listed, report.pages,
                 report.failed, len(report.redelivered), len(report.at_cap), report.calls,
                 " (dry run)" if dry_run else "")
        return report

    def _list(self, api: HookApi, report: HookReport, *, now: datetime,
              since: timedelta | None) -> list[rules.HookDelivery]:
        mark = None if since is not None else report.mark_before
        lower = now - min(since if since is not None else rules.WINDOW, rules.WINDOW)
        listed: list[rules.HookDelivery] = []
        items, nxt = api.first_page()
        while True:
            report.pages += 1
            page = rules.above_mark(_parse(items, api.hook), mark=mark, since=lower)
            listed.extend(page.fresh)
            if page.reached_mark or nxt is None or report.pages >= self.max_pages:
                break
            items, nxt = api.page(nxt)
        report.listed = len(listed)
        return listed

    def _redeliver(self, api: HookApi, report: HookReport, failures: list[rules.HookDelivery],
                   now: datetime, dry_run: bool) -> list[rules.HookDelivery]:
        report.failed = len(failures)
        unsent = []
        for item in failures:
            stream = delivery_stream(item.guid)
            history = self.store.read(stream)
            if rules.requested_for(history, item.id, now=now):  # another sweep asked; not listed yet
                log.info("redelivery: delivery %s (attempt %s) was requested already", item.guid, item.id)
                unsent.append(item)  # the mark stays below it: a later sweep sees whether it took
                continue
            previous = rules.attempts_requested(e["type"] for e in history)
            if rules.at_cap(previous):
                log.warning("redelivery: delivery %s (%s) left alone: %d redeliveries requested "
                            "already, the cap is %d", item.guid, item.event, previous, rules.MAX_ATTEMPTS)
                report.at_cap.append(item.guid)
                continue
            data = rules.requested_data(item, hook=api.hook, attempt=previous + 1)
            if dry_run:
                report.redelivered.append(data)
                continue
            event = new_event(rules.REQUESTED, stream=stream, data=data,
                              cause=Cause(correlation_id=item.guid, actor=ACTOR), occurred_at=now)
            try:
                self.store.append(stream, history[-1]["version"] if history else 0, [event])
            except ConcurrencyConflict:
                log.info("redelivery: delivery %s was taken by another sweep", item.guid)
                continue
            try:
                api.redeliver(item.id)
            except GitHubError as exc:
                log.warning("redelivery: delivery %s (attempt %s) could not be requested: %s",
                            item.guid, item.id, exc)
                unsent.append(item)
                continue
            report.redelivered.append(data)
        return unsent


def _parse(items: list[dict[str, Any]], hook: str) -> list[rules.HookDelivery]:
    out = []
    for doc in items:
        try:
            out.append(rules.HookDelivery.from_api(doc))
        except ValueError as exc:
            log.warning("redelivery: hook %s: skipped an item GitHub listed: %s", hook, exc)
    return out


def from_settings(settings: Any, *, hooks: Sequence[str] | None = None, transport: Any = None,
                  session: Any = None, env: Mapping[str, str] | None = None) -> Redelivery:
    """The sweep of a deployment: the App's hook if there is an App, and the repository or
    organization hooks of ``hooks`` (else ``REDELIVER_HOOKS`` and those stored by the deploy).
    The secrets are read with ``session`` (the CLI's profile and endpoint)."""
    import boto3

    from gip.adapters.github.client import RequestsTransport
    from gip.adapters.github.hooks import check_hook
    from gip.adapters.github.token import TokenSource, load_app_config
    from gip.store.dynamo_ops import DynamoRedeliveryMarks
    from gip.store.dynamodb import DynamoEventStore
    from gip.store.models import Tables

    sess = session or boto3.Session(region_name=settings.region)
    marks = DynamoRedeliveryMarks.from_settings(settings)
    transport = transport or RequestsTransport()
    apis: list[HookApi] = []

    def secrets() -> Any:
        return sess.client("secretsmanager", endpoint_url=settings.endpoint_url)

    try:
        app = load_app_config(settings, env=env, secrets_client=secrets)
        if app is not None:
            from gip.adapters.github.app import AppCredentials

            creds = AppCredentials(app, base_url=settings.github_api_url, transport=transport)
            apis.append(HookApi("app", settings.github_api_url, creds.jwt, transport))
    except ConfigError as exc:  # one line now, and each sweep reports it on the App's hook
        log.error("ConfigError: %s", exc)
        apis.append(HookApi("app", settings.github_api_url, _failing(exc), transport))
    specs = list(hooks) if hooks is not None else [*settings.redeliver_hooks, *marks.hooks()]
    if specs:
        source = TokenSource(secret_id=settings.github_token_secret_id, env=env, secrets_client=secrets)
        for spec in dict.fromkeys(check_hook(s) for s in specs):
            apis.append(HookApi(spec, settings.github_api_url, source.get, transport))
    return Redelivery(store=DynamoEventStore(Tables.from_settings(settings)), marks=marks, hooks=apis)


def _failing(error: ConfigError) -> Callable[[], str | None]:
    def token() -> str | None:
        raise ConfigError(str(error))

    return token
