"""Report scale: fold + render 10,000 and 100,000 events into the HTML page.

    .venv/bin/python bench/report.py [--sizes 10000,100000] [--repeat 3]

The logs are built with the real event constructors (``tests/report_log.synthetic``: 20
accounts leasing, issues received, queued, processed or failing, time-outs). Prints, per size,
the best of ``--repeat`` runs: seconds, events/s and the HTML size, then how time and size grew
between the smallest and largest size (linear growth: both ratios near the size ratio).
Goal (issue 16): 100,000 events in under 5 s, and under 2 MB of HTML for 10,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gip.domain.envelope import parse_iso
from gip.report import render
from tests.report_log import synthetic


def measure(size: int, *, repeat: int) -> tuple[int, float, int, int]:
    events = synthetic(size)
    end = parse_iso(max(e["occurred_at"] for e in events))
    best, page = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        page = render(events, end=end, drift=[])
        best = min(best, time.perf_counter() - start)
    return size, best, len(page.encode()), len(events)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [measure(int(s), repeat=args.repeat) for s in args.sizes.split(",")]
    for _, seconds, size, n in rows:
        print(f"{n:>7,} events: fold+render {seconds:5.2f}s = {n / seconds:>8,.0f} events/s; "
              f"HTML {size / 1e6:6.2f} MB ({size / n:.0f} bytes/event)")
    (n0, t0, s0, _), (n1, t1, s1, _) = rows[0], rows[-1]
    if n1 > n0:
        print(f"growth x{n1 / n0:.1f} events: time x{t1 / t0:.1f}, HTML x{s1 / s0:.1f} "
              f"(linear: both near x{n1 / n0:.1f})")
    ok = all(t < 5.0 for n, t, _, _ in rows if n <= 100_000) and all(s < 2e6 for n, _, s, _ in rows if n <= 10_000)
    print("goal met: 100,000 events under 5 s, 10,000 under 2 MB" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
