"""Figures of the redelivery sweep (prints them; not a timed test).
Run: ``.venv/bin/python bench/redelivery_figures.py [--per-sweep 40] [--sweeps 4]``.

Against the fake GitHub playing an App (tests/fakes/github_app.py), moto in-process for the
event store and the marks, and a webhook endpoint that accepts everything:

1. a first sweep over a backlog (GitHub's 3-day window: ``--backlog`` deliveries);
2. ``--sweeps`` quiet sweeps, each after ``--per-sweep`` new OK deliveries (15 minutes' worth):
   deliveries listed, pages fetched, GitHub calls (goal: one page request);
3. one sweep after ``--failed`` of the new deliveries failed: calls = 1 page + 1 per failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(key, value)

from moto import mock_aws  # noqa: E402

from gip.adapters.github.app import AppConfig, AppCredentials  # noqa: E402
from gip.adapters.github.client import RequestsTransport  # noqa: E402
from gip.adapters.github.hooks import HookApi  # noqa: E402
from gip.services.redelivery import HookReport, Redelivery  # noqa: E402
from gip.store.dynamo_ops import DynamoRedeliveryMarks  # noqa: E402
from tests.conftest import make_core  # noqa: E402
from tests.fakes.github_app import FakeGitHubApp  # noqa: E402


class Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def row(name: str, r: HookReport) -> str:
    return (f"{name:<28} listed {r.listed:>5}  pages {r.pages:>3}  GitHub calls {r.calls:>3}  "
            f"redelivered {len(r.redelivered):>3}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=250)
    ap.add_argument("--per-sweep", type=int, default=40)
    ap.add_argument("--sweeps", type=int, default=4)
    ap.add_argument("--failed", type=int, default=3)
    o = ap.parse_args()
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    Thread(target=endpoint.serve_forever, daemon=True).start()
    gh = FakeGitHubApp(webhook_url=f"http://127.0.0.1:{endpoint.server_address[1]}/webhook").start()
    payload = {"action": "labeled", "issue": {"number": 1}, "repository": {"full_name": "o/r"}}
    with mock_aws():
        core = make_core(prefix="bench")
        creds = AppCredentials(AppConfig(str(gh.app_id), gh.private_key_pem), base_url=gh.url)
        api = HookApi("app", gh.url, creds.jwt, RequestsTransport(), sleep=lambda s: None)
        sweep = Redelivery(store=core.store, marks=DynamoRedeliveryMarks(core.settings.pool_table),
                           hooks=[api])
        for _ in range(o.backlog):
            gh.record_delivery("issues", payload)
        print(row(f"first sweep ({o.backlog} backlog)", sweep.sweep()[0]))
        for n in range(o.sweeps):
            for _ in range(o.per_sweep):
                gh.record_delivery("issues", payload)
            print(row(f"quiet sweep {n + 1} (+{o.per_sweep} OK)", sweep.sweep()[0]))
        for i in range(o.per_sweep):
            gh.record_delivery("issues", payload, status_code=502 if i < o.failed else 202)
        print(row(f"sweep with {o.failed} failed", sweep.sweep()[0]))
        print(row("the sweep after", sweep.sweep()[0]))
    gh.stop()
    endpoint.shutdown()


if __name__ == "__main__":
    main()
