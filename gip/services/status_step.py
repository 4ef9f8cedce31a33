"""What to do to our status comment, and which comments are ours (pure; the notifier's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gip.domain.comment import is_ours, rendered_version

if TYPE_CHECKING:
    from gip.services.notifier import Plan


def status_step(shown_body: str | None, body: str, plan: Plan) -> str:
    """What to do to our status comment now showing ``shown_body`` (None: there is none):
    ``create``, ``edit``, or why nothing is sent."""
    assert plan.status is not None
    if shown_body is None:
        return "create" if plan.create else "no_status_comment"
    if shown_body == body:
        return "unchanged"
    shown = rendered_version(shown_body)
    if shown is not None and plan.status.version is not None and shown[0] > plan.status.version:
        return "newer_shown"
    if not plan.create and plan.status.state == "skipped" and (shown is None or shown[1] != plan.status.run):
        return "other_run_shown"  # a run skipped before it was queued keeps the last verdict
    return "edit"  # a queued run brings an earlier run's comment up to date


def find_mine(comments: list[dict[str, Any]], *, login: str, marker: str,
              user_id: int | None = None, app_id: int | None = None) -> list[dict[str, Any]]:
    """Our comments (:func:`gip.domain.comment.is_ours`) that start with ``marker``, oldest first."""
    return [c for c in comments
            if is_ours(c, login=login, user_id=user_id, app_id=app_id)
            and (c.get("body") or "").startswith(marker)]
