"""No-op re-deploy figures (printed, not a timed test).

Deploys once into an embedded moto server (local mode, fake dependency installer), then
times ``deploy`` again with nothing changed, and counts the CreateChangeSet calls it made.

Run: ``.venv/bin/python bench/noop_redeploy.py [rounds]``
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(key, value)

from gip.cli.deploy import deploy  # noqa: E402
from gip.local.embedded_aws import EmbeddedAws  # noqa: E402
from tests.deploy_support import RecordingReporter, options  # noqa: E402


def main(rounds: int = 3) -> None:
    server = EmbeddedAws(port=0).start()
    calls: list[str] = []
    try:
        started = time.perf_counter()
        deploy(options(server.url), RecordingReporter())
        print(f"first deploy                 {time.perf_counter() - started:6.2f} s")
        import botocore.client

        original = botocore.client.BaseClient._make_api_call

        def counting(self: botocore.client.BaseClient, name: str, params: dict) -> object:  # type: ignore[type-arg]
            calls.append(name)
            return original(self, name, params)

        botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
        times = []
        for _ in range(rounds):
            calls.clear()
            started = time.perf_counter()
            deploy(options(server.url), RecordingReporter())
            times.append(time.perf_counter() - started)
        print(f"no-op re-deploy              median {statistics.median(times):6.2f} s over {rounds} runs "
              f"(min {min(times):.2f}, max {max(times):.2f})")
        print(f"CreateChangeSet calls/re-run {calls.count('CreateChangeSet')}; "
              f"AWS calls/re-run {len(calls)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
