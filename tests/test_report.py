"""The report page as a value: geometry of the pool timeline, UTC times, hostile text, size."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta, timezone
from html.parser import HTMLParser

import pytest

from gip.domain.envelope import issue_stream
from gip.report import build, render
from gip.report.model import quantile
from tests.report_log import T0, Log, synthetic

A1, A2, A3 = "111111111111", "222222222222", "333333333333"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "svg", "g",
                "text", "rect", "line", "path", "circle", "a", "table", "tr", "th", "td", "ul", "li", "code",
                "section"}


class Page(HTMLParser):
    """Every tag with its attributes, the rows of the Gantt and the bars in each row."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: dict[str, list[dict[str, str]]] = {}
        self._row: str | None = None
        self.titles: list[str] = []
        self._in_title = False
        self.ids: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "g" and a.get("class") == "row":
            self._row = a["data-account"]
            self.rows[self._row] = []
        elif tag == "rect" and self._row and a.get("class") in ("R", "C", "Q"):
            self.rows[self._row].append(a)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._row = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def small_log() -> Log:
    log = Log()
    for a in (A1, A2, A3):
        log.register(a)
    s1 = log.issue("octo/app", 1, 1)
    log.lease(A1, s1, "lease-1", reserved=2, released=12, cleaned=14)  # 10 min reserved, 2 cleaning
    s2 = log.issue("octo/app", 2, 15)
    log.lease(A1, s2, "lease-2", reserved=20, released=50, cleaned=51, verdict="not_reproduced")  # 30 min
    s3 = log.issue("octo/lib", 3, 5)
    log.lease(A2, s3, "lease-3", reserved=10, released=40, cleaned=45, verdict=None, timed_out=True,
              error="worker died", retryable=False)
    return log


END = T0 + timedelta(minutes=60)


def test_one_row_per_account_and_bars_never_overlap_within_a_row() -> None:
    page = Page(render(small_log().events, end=END))
    assert list(page.rows) == [A1, A2, A3]  # A3 never leased: still a row, all AVAILABLE
    assert page.rows[A3] == []
    for bars in page.rows.values():
        spans = sorted((float(b["x"]), float(b["x"]) + float(b["width"])) for b in bars)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start + 0.11  # rounding to 0.1 px, never a real overlap
    assert [b["class"] for b in page.rows[A1]] == ["R", "C", "R", "C"]


def test_bar_widths_are_proportional_to_durations() -> None:
    page = Page(render(small_log().events, end=END))
    reserved = [float(b["width"]) for b in page.rows[A1] if b["class"] == "R"]
    cleaning = [float(b["width"]) for b in page.rows[A1] if b["class"] == "C"]
    assert reserved[1] / reserved[0] == pytest.approx(3.0, rel=0.02)  # 30 min vs 10 min
    assert reserved[0] / cleaning[0] == pytest.approx(5.0, rel=0.05)  # 10 min vs 2 min
    per_minute = reserved[0] / 10  # the whole window is 60 min over 1070 px
    assert per_minute == pytest.approx(1070 / 60, rel=0.01)


def test_bars_carry_issue_run_lease_duration_and_verdict_and_link_to_the_issue() -> None:
    text = render(small_log().events, end=END)
    page = Page(text)
    title = next(t for t in page.titles if t.startswith("RESERVED octo/app#2"))
    assert "run 1: not_reproduced" in title and "lease lease-2" in title and "(30m 00s)" in title
    assert "2026-01-10 08:20:00-08:50:00 UTC" in title
    links = [a["href"] for tag, a in page.tags if tag == "a" and a["href"].startswith("#")]
    assert links and all(href[1:] in page.ids for href in links)
    timed_out = [t for t in page.titles if t.startswith("timed out by the sweeper")]
    assert timed_out == ["timed out by the sweeper at 2026-01-10 08:40:00 UTC, lease lease-3"]
    assert re.search(r'<text class="lbl"[^>]*>app#1</text>', text)  # a wide RESERVED bar names its issue


def test_times_are_utc_and_say_so_even_for_an_end_given_in_another_zone() -> None:
    end = END.astimezone(timezone(timedelta(hours=2)))
    text = render(small_log().events, end=end)
    assert "All times are UTC" in text
    assert "Window: 2026-01-10 08:00:00 UTC to 2026-01-10 09:00:00 UTC" in text
    ticks = re.findall(r'<text class="tick ax"[^>]*>(\d{4}-\d\d-\d\d \d\d:\d\d[^<]*)</text>', text)
    assert ticks and all(t.endswith(" UTC") for t in ticks)


def test_distributions_state_p50_p95_and_max() -> None:
    model = build(small_log().events, start=None, end=END)
    # queued at +1.5, +15.5, +5.5; reserved at +2, +20, +10
    assert sorted(model.waits) == pytest.approx([30.0, 270.0, 270.0])
    assert quantile(model.waits, 0.5) == 270.0 and quantile(model.waits, 0.95) == 270.0
    text = render(small_log().events, end=END)
    assert "<td>queue wait (IssueQueued → AccountReserved)</td><td>3</td><td>4m 30s</td><td>4m 30s</td><td>4m 30s</td>" in text
    assert "processing (IssueProcessingStarted → IssueProcessed)</td><td>2</td>" in text


def test_received_and_processed_per_hour() -> None:
    log = small_log()
    log.issue("octo/app", 4, 65)  # received in the next hour, still queued
    text = render(log.events, end=END + timedelta(minutes=30))
    titles = Page(text).titles
    assert "received 2026-01-10 08:00 UTC: 3" in titles and "received 2026-01-10 09:00 UTC: 1" in titles
    assert "processed 2026-01-10 08:00 UTC: 2" in titles  # the third run failed
    assert not any(t.startswith("processed 2026-01-10 09:00") for t in titles)


def test_run_history_newest_first_with_failures_and_health() -> None:
    text = render(small_log().events, end=END, drift=[])
    rows = re.findall(r'<tr><td><a href="#i\d+">([^<]+)</a></td>', text)
    assert rows == ["octo/app#2", "octo/lib#3", "octo/app#1"]  # by received, newest first
    assert "worker died (retryable: no)" in text
    assert "DLQ-bound failures (1)" in text
    assert "<code>replay --verify</code> would pass" in text
    failing = render(small_log().events, end=END, drift=["account 1: status: stored='A' log='B'"])
    assert "would fail: 1 field(s) differ" in failing and "stored=&#x27;A&#x27;" in failing
    assert "Projection check: not run" in render(small_log().events, end=END)
    # verdicts per repository: octo/app has one of each, octo/lib none (its run failed)
    assert ("<tr><th>repository</th><th>not_reproduced</th><th>reproduced</th><th>total</th></tr>"
            "<tr><td>octo/app</td><td>1</td><td>1</td><td>2</td></tr>") in text
    assert "octo/lib</td><td>" not in text.split('id="verdicts"')[1].split('id="runs"')[0]


def test_cleanup_durations_and_usable_accounts_follow_the_log() -> None:
    log = small_log()
    s = log.issue("octo/app", 9, 52)
    log.quarantine(A3, s, "lease-9", reserved=53, released=55, quarantined=57)
    model = build(log.events, start=None, end=END)
    assert sorted(seconds for _, seconds in model.cleanups) == [60.0, 120.0, 300.0]  # a quarantine is no cleanup
    assert model.usable == [(T0.timestamp(), 3), (log.at(57).timestamp(), 2)]  # registered at the start


def test_quarantine_and_refused_events_are_shown_not_raised() -> None:
    log = small_log()
    s = log.issue("octo/app", 9, 52)
    log.quarantine(A3, s, "lease-9", reserved=53, released=55, quarantined=57, reason="residue left")
    log.add("AccountCleaned", f"account-{A3}", 58, {"lease_id": "nope", "removed": []})  # illegal
    page = Page(text := render(log.events, end=END))
    assert [b["class"] for b in page.rows[A3]] == ["R", "C", "Q"]
    assert "Quarantines (1)" in text and "residue left" in text
    assert "1 event(s) the reducers refuse" in text


def test_a_window_clips_bars_to_its_start() -> None:
    log = small_log()
    start = T0 + timedelta(minutes=30)
    page = Page(render(log.events, start=start, end=END))
    first = page.rows[A1][0]  # lease-2 (08:20-08:50) drawn from the window's start
    assert float(first["x"]) == 120.0
    assert float(first["width"]) == pytest.approx(1070 / 30 * 20, rel=0.01)
    assert all(float(b["x"]) >= 120 for bars in page.rows.values() for b in bars)


HOSTILE = "<script>alert(\"x\")</script>' onmouseover='alert(1)\" <img src=x onerror=alert(2)>"


def test_hostile_text_in_every_untrusted_field_is_escaped() -> None:
    log = Log()
    log.register(A1)
    log.register(A2)
    log.register(HOSTILE)  # an account stream the schemas would refuse, drawn all the same
    stream = issue_stream("evil.org/x-y_z", 1)
    log.add("IssueReceived", stream, 1, {
        "repo": HOSTILE, "number": 1, "title": HOSTILE, "labels": [HOSTILE], "trigger": HOSTILE,
        "sender": HOSTILE, "html_url": "javascript:alert(3)", "run": 1, "body": HOSTILE})
    log.add("IssueQueued", stream, 2, {"run": 1, "sender": HOSTILE, "permission": HOSTILE})
    log.lease(A1, stream, HOSTILE, reserved=3, released=20, cleaned=22, verdict=HOSTILE,
              result_uri="javascript:alert(4)")
    other = log.issue("evil.org/x-y_z", 2, 25, title=HOSTILE)
    log.lease(A2, other, "l2", reserved=26, released=30, cleaned=31, verdict=None, error=HOSTILE)
    s3 = log.issue("evil.org/x-y_z", 3, 32)
    log.quarantine(A1, s3, "l3", reserved=33, released=34, quarantined=36, reason=HOSTILE)
    text = render(log.events, end=END, drift=[HOSTILE], title=HOSTILE)
    page = Page(text)
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
    hrefs = [a["href"] for tag, a in page.tags if tag == "a"]
    assert hrefs and all(h.startswith("#") or h.startswith("https://") for h in hrefs)
    assert "javascript:alert(4)" in text  # shown as text, never a link
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27; onmouseover=&#x27;alert(1)&quot;"
    assert text.count(escaped) >= 6  # title, verdict, error, lease, reason, drift, page title …
    assert any(HOSTILE in t for t in page.titles)  # the hover text reads back as written
    assert list(page.rows) == sorted([A1, A2, HOSTILE])  # its row's label and attribute, escaped


MATRIX = {"matrix": [{"version": "1.1.0", "verdict": "reproduced", "exit_code": 1, "duration_s": 1.25},
                     {"version": "1.6.0", "verdict": "not_reproduced", "exit_code": 0, "duration_s": 0.5},
                     {"version": "1.4.0", "verdict": "not_reproduced", "exit_code": 0, "duration_s": 75}],
          "summary": "fixed_in_latest", "fixed_in": "1.4.0", "reported_version": "1.1.0", "latest_version": "1.6.0"}


def matrix_cells(html: str) -> list[tuple[str, str, str]]:
    """(version, verdict, time) of every row of every matrix table in ``html``, in order."""
    return re.findall(r"<tr><td><code>([^<]*)</code></td><td[^>]*>([^<]*)</td><td>([^<]*)</td></tr>", html)


def test_a_matrix_run_shows_its_table_and_sentence_in_the_history_and_its_issue() -> None:
    from gip.domain.schemas import validate

    log = small_log()
    s4 = log.issue("octo/app", 4, 52)
    log.lease(A3, s4, "lease-4", reserved=53, released=58, cleaned=59, processed=MATRIX)
    processed = next(e for e in log.events if e["type"] == "IssueProcessed" and e["stream"] == s4)
    validate(processed)  # the schema (v2) accepts what the page is drawn from
    assert processed["schema_version"] == 2
    text = render(log.events, end=END)
    history = text.split('id="runs"')[1].split('id="health"')[0]
    section = text.split('id="issues"')[1]
    sentence = "Reproduces on 1.1.0 (reported); fixed in 1.4.0; latest 1.6.0 passes."
    cells = [("1.1.0", "reproduced", "1.2s"), ("1.6.0", "not_reproduced", "0.5s"), ("1.4.0", "not_reproduced", "1m 15s")]
    for part in (history, section):
        assert matrix_cells(part) == cells
        assert f"<code>fixed_in_latest</code>: {sentence}" in part
    assert history.count("<th>version</th>") == 1  # only the matrix run has a table; the others none
    assert '<td class="bad">reproduced</td><td>1.2s</td>' in history
    model = build(log.events, start=None, end=END)
    plain = [r for r in model.runs if r.stream != s4]
    assert plain and all(r.matrix == () and r.summary is None and r.sentence == "" for r in plain)


def test_hostile_matrix_versions_and_summary_are_escaped() -> None:
    log = Log()
    log.register(A1)
    stream = log.issue("octo/app", 1, 1)
    hostile = {"matrix": [{"version": HOSTILE, "verdict": HOSTILE, "exit_code": 1, "duration_s": 1},
                          {"version": "1.6.0", "verdict": "not_reproduced", "exit_code": 0, "duration_s": 1}],
               "summary": HOSTILE, "fixed_in": HOSTILE, "reported_version": HOSTILE, "latest_version": "1.6.0"}
    log.lease(A1, stream, "l1", reserved=2, released=10, cleaned=11, processed=hostile)
    text = render(log.events, end=END)
    page = Page(text)
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27; onmouseover=&#x27;alert(1)&quot;"
    assert text.count(escaped) >= 2 * 5  # version, verdict, summary, and twice in the sentence; in both places
    assert "latest 1.6.0 passes." in text


def test_ten_thousand_events_make_a_self_contained_page_under_two_megabytes() -> None:
    events = synthetic(10_000)
    end = max(e["occurred_at"] for e in events)
    from gip.domain.envelope import parse_iso

    text = render(events, end=parse_iso(end))
    assert len(text.encode()) < 2_000_000
    lowered = text.lower()
    for external in ("<script", "<link", "<img", "src=", "url(", "@import", "@font-face"):
        assert external not in lowered
    assert len(Page(text).rows) == 20
