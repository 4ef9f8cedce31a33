"""The pool timeline: one row per account, a bar per RESERVED / CLEANING / QUARANTINED span.

Gaps are AVAILABLE. A triangle marks each sweeper time-out. Each bar's ``<title>`` names the
issue, run, lease, duration and verdict, and links to the issue's section (``#i<N>``).
"""

from __future__ import annotations

from collections import defaultdict

from gip.report.model import Model, Run, Segment
from gip.report.svg import Scale, axis, duration, esc, num, span, svg, utc

ROW = 18
TOP = 20
CLASS = {"RESERVED": "R", "CLEANING": "C", "QUARANTINED": "Q"}


def anchors(model: Model) -> dict[str, str]:
    """Issue stream → its section's id (``i0``, ``i1``, …): never built from untrusted text."""
    return {stream: f"i{n}" for n, stream in enumerate(sorted(model.streams))}


def gantt(model: Model, scale: Scale, ids: dict[str, str]) -> str:
    runs = model.run_for_lease()
    by_account: dict[str, list[Segment]] = defaultdict(list)
    for seg in model.segments:
        by_account[seg.account].append(seg)
    marks: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for account, at, lease in model.timeouts:
        marks[account].append((at, lease))
    rows = []
    for n, account in enumerate(model.accounts):
        y = TOP + n * ROW
        parts = [f'<g class="row" data-account="{esc(account)}">'
                 f'<text class="acct" x="2" y="{y + 13}">{esc(account)}</text>'
                 f'<rect class="lane" x="{num(scale.x0)}" y="{y}" width="{num(scale.width)}" height="{ROW - 2}"/>']
        for seg in by_account.get(account, []):
            parts.append(_bar(seg, y, scale, runs, ids))
        for at, lease in marks.get(account, []):
            x = scale.x(at)
            parts.append(f'<path class="to" d="M{num(x)} {y + ROW - 2}l-4 -7h8z"><title>timed out by the sweeper '
                         f'at {esc(utc(at))}, lease {esc(lease)}</title></path>')
        parts.append("</g>")
        rows.append("".join(parts))
    height = TOP + len(model.accounts) * ROW
    body = ('<text class="tick" x="2" y="12">account</text>' + axis(scale, y=TOP - 4, height=height - TOP + 4)
            + "".join(rows))
    return svg(body, height=height + 20, label="pool timeline, one row per account", cls="chart gantt")


def _bar(seg: Segment, y: int, scale: Scale, runs: dict[str, Run], ids: dict[str, str]) -> str:
    run = runs.get(seg.lease_id or "")
    x, w = scale.x(seg.start), scale.w(seg.duration)
    head = seg.state + (f" {seg.issue.removeprefix('issue-')}" if seg.issue else "")
    if run is not None:
        head += f" run {run.run}: {run.verdict or run.status.lower()}"
    lines = [head, f"{span(seg.start, seg.end)} ({duration(seg.duration)})"]
    if seg.lease_id:
        lines.append(f"lease {seg.lease_id}")
    if seg.reason:
        lines.append(f"reason {seg.reason}")
    rect = (f'<rect class="{CLASS[seg.state]}" x="{num(x)}" y="{y + 1}" width="{num(max(w, 0.3))}" '
            f'height="{ROW - 4}"><title>{esc(chr(10).join(lines))}</title></rect>')
    if seg.state == "RESERVED" and seg.issue and w > 40:
        short = seg.issue.removeprefix("issue-").split("/")[-1]
        rect += f'<text class="lbl" x="{num(x + 2)}" y="{y + 12}">{esc(short[: int(w / 6)])}</text>'
    anchor = ids.get(seg.issue or "")
    return f'<a href="#{anchor}">{rect}</a>' if anchor else rect
