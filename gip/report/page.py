"""The report page: a :class:`~gip.report.model.Model` in, one self-contained HTML string out.

Inline CSS and SVG only: no script, font, image or stylesheet is fetched, so the file can be
attached to a ticket or served from S3 as it is. Every string from the log (titles, repos,
errors, verdicts, URIs) is escaped; a ``result_uri`` is a link only when it is http(s).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from gip.report.gantt import anchors, gantt
from gip.report.model import Model, Run, dlq_bound, quantile
from gip.report.svg import (
    Scale,
    bars_over_time,
    dots,
    duration,
    esc,
    histogram,
    span,
    step_line,
    utc,
)

CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;border-bottom:1px solid #ccc;margin-top:28px}h3{font-size:14px}
svg.chart{width:100%;height:auto;display:block;margin:6px 0}svg.strip{max-height:16px}
.tick,.acct,.lbl{font:10px sans-serif;fill:#555}.lbl{fill:#fff}
.grid{stroke:#e4e4e4}.lane{fill:#f3f8f3}.R{fill:#3b6fd6}.C{fill:#e0a030}.Q{fill:#c03030}
.to{fill:#000}.key .to{color:#000}.rec{fill:#8aa8e0}.pro{fill:#3b6fd6}.hist{fill:#7a9cc6}.q{stroke:#c03030;stroke-dasharray:3 2}
.line{fill:none;stroke:#2a8a4a;stroke-width:1.5}.dot{fill:#e0a030}.strip circle{fill:#3b6fd6}.strip circle.evf{fill:#c03030}
.key span{display:inline-block;padding:1px 6px;margin-right:6px;color:#fff}.ax{text-anchor:middle}
.key .R{background:#3b6fd6}.key .C{background:#e0a030}.key .Q{background:#c03030}.key .rec{background:#8aa8e0}.key .pro{background:#3b6fd6}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#2a8a4a}.bad{color:#c03030}.none{color:#888}
.v0{fill:#c03030;background:#c03030}.v1{fill:#2a8a4a;background:#2a8a4a}.v2{fill:#e0a030;background:#e0a030}
.v3{fill:#7a5cc6;background:#7a5cc6}.v4{fill:#3b6fd6;background:#3b6fd6}.v5{fill:#888;background:#888}
section.issue{border-left:3px solid #ddd;padding-left:8px;margin:10px 0}
"""

FAILED_DOT = ' class="evf"'
VERDICT_CLASS = {"reproduced": "bad", "not_reproduced": "ok"}


def page(model: Model, *, drift: Sequence[str] | None, title: str = "github-issue-processor report") -> str:
    scale = Scale(model.start, model.end)
    ids = anchors(model)
    window = f"{utc(model.start)} to {utc(model.end)}"
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body>")
    intro = (f"<h1>{esc(title)}</h1><p>All times are UTC. Window: {esc(window)}"
             f"{' (the pool as it stood at the end)' if model.as_of else ''}; {model.events} events folded; "
             f"{len(model.accounts)} accounts, {len(model.runs)} runs.</p>")
    return "".join([head, intro, _pool(model, scale, ids), _throughput(model, scale), _verdicts(model, scale),
                    _history(model, ids), _health(model, scale, drift), _issues(model, scale, ids),
                    "</body></html>"])


def _pool(model: Model, scale: Scale, ids: dict[str, str]) -> str:
    states = Counter(model.final.values())
    summary = ", ".join(f"{n} {esc(s)}" for s, n in sorted(states.items()))
    key = ('<p class="key"><span class="R">RESERVED (issue)</span><span class="C">CLEANING</span>'
           '<span class="Q">QUARANTINED</span>gaps are AVAILABLE; ▼ the sweeper timed a lease out</p>')
    return (f'<h2 id="pool">Pool timeline</h2><p>At {esc(utc(model.end))}: {summary or "no accounts"}.</p>'
            + key + gantt(model, scale, ids))


def _bucket(model: Model) -> tuple[float, str]:
    return (3600.0, "hour") if model.end - model.start <= 14 * 86400 else (86400.0, "day")


def _per_bucket(times: list[float], size: float) -> list[tuple[float, int]]:
    counts = Counter(t // size * size for t in times)
    return sorted(counts.items())


def _throughput(model: Model, scale: Scale) -> str:
    size, name = _bucket(model)
    inside = [r for r in model.runs if r.received is not None and r.received >= model.start]
    received = _per_bucket([r.received for r in inside if r.received is not None], size)
    processed = _per_bucket([r.ended for r in model.runs if r.ended is not None and r.status == "PROCESSED"], size)
    processing = [p for r in model.runs if (p := r.processing) is not None]
    return ("<h2 id=\"throughput\">Throughput and waiting</h2>"
            f'<p class="key">Issues per {name}: <span class="rec">received</span><span class="pro">processed</span></p>'
            + bars_over_time([("received", "rec", received), ("processed", "pro", processed)],
                             scale=scale, bucket=size, label=f"issues received and processed per {name}")
            + _stats_table([("queue wait (IssueQueued → AccountReserved)", model.waits),
                            ("processing (IssueProcessingStarted → IssueProcessed)", processing)])
            + histogram(model.waits, label="queue wait")
            + histogram(processing, label="processing time")
            + "<h3>Usable accounts over time</h3>"
            + step_line([(t, float(v)) for t, v in model.usable], scale=scale, label="usable accounts"))


def _stats_table(rows: list[tuple[str, list[float]]]) -> str:
    body = "".join(f"<tr><td>{esc(name)}</td><td>{len(v)}</td><td>{esc(duration(quantile(v, 0.5)))}</td>"
                   f"<td>{esc(duration(quantile(v, 0.95)))}</td><td>{esc(duration(max(v, default=0)))}</td></tr>"
                   for name, v in rows)
    return f"<table><tr><th></th><th>n</th><th>p50</th><th>p95</th><th>max</th></tr>{body}</table>"


def _verdicts(model: Model, scale: Scale) -> str:
    done = [r for r in model.runs if r.verdict]
    per = Counter(r.verdict or "" for r in done)
    verdicts = sorted(per)
    repos: dict[str, Counter[str]] = defaultdict(Counter)
    for r in done:
        repos[r.repo][r.verdict or ""] += 1
    head = "".join(f"<th>{esc(v)}</th>" for v in verdicts)
    rows = "".join(f"<tr><td>{esc(repo)}</td>" + "".join(f"<td>{c[v] or ''}</td>" for v in verdicts)
                   + f"<td>{sum(c.values())}</td></tr>" for repo, c in sorted(repos.items(), key=lambda kv: -sum(kv[1].values())))
    totals = "".join(f"<td>{per[v]}</td>" for v in verdicts)
    size, name = _bucket(model)
    series = [(v, f"v{i % 6}", _per_bucket([r.ended for r in done if r.verdict == v and r.ended is not None], size))
              for i, v in enumerate(verdicts)]
    key = "".join(f'<span class="v{i % 6}">{esc(v)}</span>' for i, v in enumerate(verdicts))
    chart = bars_over_time(series, scale=scale, bucket=size, label=f"verdicts per {name}") if series else ""
    return ("<h2 id=\"verdicts\">Verdicts</h2>"
            + (f"<table><tr><th>repository</th>{head}<th>total</th></tr>{rows}"
               f"<tr><th>all</th>{totals}<th>{len(done)}</th></tr></table>"
               f'<p class="key">Per {name}: {key}</p>{chart}' if done else '<p class="none">no verdicts in this window</p>'))


def _cls(outcome: str) -> str:
    return f' class="{VERDICT_CLASS[outcome]}"' if outcome in VERDICT_CLASS else ""


def _link(uri: str | None) -> str:
    if not uri:
        return ""
    if uri.startswith(("https://", "http://")):
        return f'<a href="{esc(uri)}">result</a>'
    return f"<code>{esc(uri)}</code>"


def _history(model: Model, ids: dict[str, str]) -> str:
    rows = []
    for r in model.runs:
        outcome = r.verdict or r.status.lower()
        failure = f"{r.error} (retryable: {'yes' if r.retryable else 'no'})" if r.status == "FAILED" else (r.reason or "")
        wait = r.started - r.queued if r.started is not None and r.queued is not None else None
        rows.append(
            f'<tr><td><a href="#{ids.get(r.stream, "")}">{esc(r.stream.removeprefix("issue-"))}</a></td>'
            f"<td>{r.run}</td><td{_cls(outcome)}>{esc(outcome)}</td>"
            f"<td>{utc(r.received) if r.received else ''}</td><td>{duration(wait)}</td>"  # digits only
            f"<td>{duration(r.processing)}</td><td>{esc(r.account_id or '')}</td>"
            f"<td>{_link(r.result_uri)}</td><td>{esc(failure)}</td><td>{_matrix(r)}</td></tr>")
    return ("<h2 id=\"runs\">Run history</h2><table><tr><th>issue</th><th>run</th><th>outcome</th><th>received</th>"
            "<th>queued → started</th><th>processing</th><th>account</th><th>result</th><th>failure / skip</th>"
            "<th>version matrix</th></tr>"
            + "".join(rows) + "</table>")


def _matrix(run: Run) -> str:
    """A matrix run's cells as a small table (version, verdict, time) and the comment's sentence."""
    if not run.matrix:
        return ""
    rows = "".join(f"<tr><td><code>{esc(version)}</code></td><td{_cls(verdict)}>{esc(verdict)}</td>"
                   f"<td>{esc(duration(seconds))}</td></tr>" for version, verdict, seconds in run.matrix)
    return (f'<p class="matrix"><code>{esc(run.summary or "")}</code>: {esc(run.sentence)}</p>'
            f'<table class="matrix"><tr><th>version</th><th>verdict</th><th>time</th></tr>{rows}</table>')


def _health(model: Model, scale: Scale, drift: Sequence[str] | None) -> str:
    size, name = _bucket(model)
    per: dict[float, list[float]] = defaultdict(list)
    for t, seconds in model.cleanups:
        per[t // size * size].append(seconds)
    trend = [(b + size / 2, quantile(v, q), f"{label} of {len(v)} cleanups in the {name} from {utc(b, seconds=False)}: "
              f"{duration(quantile(v, q))}") for b, v in sorted(per.items()) for q, label in ((0.5, "p50"), (1.0, "max"))]
    cleanup = dots(trend, scale=scale, label="cleanup duration per " + name)
    quarantines = "".join(f"<li>{esc(a)} at {esc(utc(t))}: {esc(reason)}</li>" for a, t, reason in model.quarantines)
    dlq = [r for r in model.runs if dlq_bound(r)]
    dlq_items = "".join(f"<li>{esc(r.stream.removeprefix('issue-'))} run {r.run}, attempt {r.attempt}: {esc(r.error or '')} "
                        f"(retryable: {'yes' if r.retryable else 'no'})</li>" for r in dlq)
    if drift is None:
        check = '<p class="none">Projection check: not run (the page covers part of the log, or no store was given).</p>'
    elif not drift:
        check = f'<p class="ok">Projection check: <code>replay --verify</code> would pass: every stored row equals the fold of the {model.events} events.</p>'
    else:
        items = "".join(f"<li>{esc(d)}</li>" for d in drift[:50])
        check = (f'<p class="bad">Projection check: <code>replay --verify</code> would fail: {len(drift)} field(s) '
                 f"differ.</p><ul>{items}</ul>")
    anomalies = "".join(f"<li>{esc(a)}</li>" for a in model.anomalies[:50])
    return ("<h2 id=\"health\">Health</h2>" + check
            + (f'<p class="bad">{len(model.anomalies)} event(s) the reducers refuse:</p><ul>{anomalies}</ul>' if anomalies else "")
            + f"<h3>Cleanup duration ({len(model.cleanups)} cleanups; p50 and max per {name})</h3>" + cleanup
            + f"<h3>Quarantines ({len(model.quarantines)})</h3>" + (f"<ul>{quarantines}</ul>" if quarantines else '<p class="none">none</p>')
            + f"<h3>DLQ-bound failures ({len(dlq)})</h3><p>Not retryable, or failed on the last attempt.</p>"
            + (f"<ul>{dlq_items}</ul>" if dlq_items else '<p class="none">none</p>'))


def _issues(model: Model, scale: Scale, ids: dict[str, str]) -> str:
    runs: dict[str, list[Run]] = defaultdict(list)
    for r in model.runs:
        runs[r.stream].append(r)
    kinds: dict[str, tuple[str, str]] = {}  # event type -> its dot's class and escaped label, once per type

    def dot(kind: str) -> tuple[str, str]:
        label = kinds.get(kind)
        if label is None:
            label = kinds[kind] = (FAILED_DOT if "Failed" in kind else "", esc(kind.removeprefix("Issue")))
        return label

    lo, hi = model.start, model.end
    parts = ["<h2 id=\"issues\">Issues</h2><p>Each issue's stream, from its first event to its last.</p>"]
    for stream in sorted(model.streams):
        points = [p for p in model.streams[stream] if lo <= p[0] <= hi]
        if not runs.get(stream) or not points:
            continue
        first, last = points[0][0], points[-1][0]
        k = 1188 / max(last - first, 1.0)
        marks = "".join(f'<circle{dot(kind)[0]} cx="{6 + (at - first) * k:.0f}" cy="8" r="5">'
                        f"<title>+{duration(at - first)} {dot(kind)[1]}</title></circle>" for at, kind in points)
        outcomes = "; ".join(f"run {r.run}: {esc(r.verdict or r.status.lower())}" for r in reversed(runs[stream]))
        matrix = "".join(f"<h3>Run {r.run}: version matrix</h3>{_matrix(r)}" for r in reversed(runs[stream]) if r.matrix)
        parts.append(f'<section class="issue" id="{ids[stream]}"><h3>{esc(stream.removeprefix("issue-"))}: '
                     f"{esc(runs[stream][0].title)}</h3><p>{span(first, last)}: {outcomes}</p>"
                     f'<svg class="chart strip" viewBox="0 0 1200 16">{marks}</svg>{matrix}</section>')
    return "".join(parts)
