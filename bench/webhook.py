"""Webhook figures (prints them; not a timed test). Run: ``.venv/bin/python bench/webhook.py``.

1. AWS API calls per qualifying delivery (goal <= 2) and per duplicate delivery (goal <= 1),
   counted with a botocore ``before-call`` hook on every botocore client in the process
   (pynamodb's included), on moto in-process.
2. Handler time against the time of just its AWS calls (goal <= 1.2x), two ways:
   - a delivery's DynamoDB calls, captured with a ``provide-client-params`` hook, replayed under
     fresh keys with a bare boto3 client against identical tables in the same moto backend,
     alternating with handler runs (median of the paired ratios: the machine is shared);
   - the time spent inside the handler's own botocore calls (``provide-client-params``, the
     first event of a call, to ``after-call``, the last) against its wall time, same runs.
3. Import time of ``handlers.webhook`` as a ratio to ``import boto3`` alone, each in fresh
   subprocesses (goal <= 1.3x). Also shown: the imports a cold *qualifying* delivery adds
   (the event store is imported lazily, on the first delivery that stores something).
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"
PREFIX = "bench"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "GIP_PREFIX": PREFIX, "GITHUB_WEBHOOK_SECRET": SECRET,
}
N = int(os.environ.get("BENCH_N", "60"))


def labeled_event(number: int, delivery_id: str) -> dict[str, Any]:
    from gip.domain.delivery import signature_for

    doc = json.loads((ROOT / "tests/events/wh_issues_labeled.json").read_text())
    payload = copy.deepcopy(doc["payload"])
    payload["issue"]["number"] = number
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = dict(doc["headers"], **{"X-GitHub-Delivery": delivery_id,
                                      "X-Hub-Signature-256": signature_for(body, SECRET)})
    return {"headers": headers, "body": body.decode(), "isBase64Encoded": False}


class Calls:
    """Counts API calls and captures their parameters on every live botocore client."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.captured: list[tuple[Any, str, dict[str, Any]]] = []  # (client, operation, params)
        self.hooked: set[int] = set()
        self.capture = True  # deep-copying params costs time: off while timing
        self.reset()

    def hook_all(self) -> int:
        import botocore.client

        for obj in gc.get_objects():
            if isinstance(obj, botocore.client.BaseClient) and id(obj) not in self.hooked:
                self.hooked.add(id(obj))
                obj.meta.events.register("before-call", self._before_call)
                obj.meta.events.register("after-call", self._after_call)
                obj.meta.events.register("provide-client-params", functools.partial(self._params, obj))
        return len(self.hooked)

    def _before_call(self, model: Any, **_: Any) -> None:
        self.count[model.name] += 1

    def _params(self, client: Any, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.capture:
            self.captured.append((client, model.name, copy.deepcopy(params)))
        self._started = time.perf_counter()  # the first event of BaseClient._make_api_call

    def _after_call(self, **_: Any) -> None:  # the last one, also emitted before an error
        self.in_calls += time.perf_counter() - self._started

    def reset(self) -> None:
        self.in_calls = 0.0
        self._started = 0.0
        self.count.clear()
        self.captured.clear()


def fresh_tables(prefix: str = PREFIX) -> Any:
    from gip.config import Settings
    from gip.store.models import Tables, create_tables

    tables = Tables.from_settings(Settings.for_prefix(prefix))
    create_tables(tables)
    return tables


def calls_and_times() -> None:
    from moto import mock_aws

    from handlers import webhook

    with mock_aws():
        fresh_tables()
        webhook.reset()
        assert webhook.handler(labeled_event(1, "warm-1"))["statusCode"] == 202  # cold start
        calls = Calls()
        calls.hook_all()

        def one(event: dict[str, Any]) -> tuple[int, Counter[str]]:
            calls.reset()
            status = webhook.handler(event)["statusCode"]
            return status, Counter(calls.count)

        status, qualifying = one(labeled_event(2, "q-2"))
        assert status == 202
        _, duplicate = one(labeled_event(2, "q-2"))
        _, fan_out = one(labeled_event(2, "q-2-labeled-again"))
        from gip.domain.envelope import Cause

        webhook._issues().cancel("octo-org/hello-world", 2, reason="closed",
                                 cause=Cause(correlation_id="b", actor="bench"))
        _, redelivery_after_end = one(labeled_event(2, "q-2"))
        print("AWS API calls per delivery (before-call hook on every botocore client):")
        show("qualifying delivery", qualifying, goal=2)
        show("duplicate delivery (run still active)", duplicate, goal=1)
        show("fan-out: 2nd trigger for an active issue", fan_out, goal=1)
        show("redelivery after the run ended", redelivery_after_end, goal=1)

        # Timing. One qualifying delivery's DynamoDB calls are captured; then, N times, a
        # qualifying delivery for a fresh issue runs through the handler and the captured calls
        # are replayed under fresh keys against a second set of identical tables in the same
        # moto backend (bare boto3 client, parameter validation off as pynamodb does), in
        # alternating order, with every table emptied between rounds (moto copies every table
        # on each transaction, so table size would otherwise skew later calls).
        import boto3
        from botocore.config import Config

        fresh_tables("replay")
        bare = boto3.client("dynamodb", config=Config(parameter_validation=False))
        calls.reset()
        assert webhook.handler(labeled_event(3, "shape-3"))["statusCode"] == 202
        shape = [(op, params) for _, op, params in calls.captured]
        calls.capture = False
        _empty(bare)
        handler_s: list[float] = []
        replay_s: list[float] = []
        in_calls_s: list[float] = []
        gc.collect()
        gc.freeze()  # moto's and botocore's many objects would make each full collection slow
        for i in range(N):
            event = labeled_event(100 + i, f"t-{i}")
            replay = [(op, _retarget(params, f"r{i}-")) for op, params in shape]

            def run_handler(event: dict[str, Any] = event) -> None:
                calls.reset()
                start = time.perf_counter()
                assert webhook.handler(event)["statusCode"] == 202
                handler_s.append(time.perf_counter() - start)
                in_calls_s.append(calls.in_calls)

            def run_replay(replay: list[tuple[str, dict[str, Any]]] = replay) -> None:
                start = time.perf_counter()
                for op, params in replay:
                    bare._make_api_call(op, params)
                replay_s.append(time.perf_counter() - start)

            for step in ((run_handler, run_replay) if i % 2 else (run_replay, run_handler)):
                step()
            _empty(bare)
        gc.unfreeze()
    paired = statistics.median(h / r for h, r in zip(handler_s, replay_s, strict=True))
    print(f"\nhandler vs just its AWS calls (moto in-process, {N} qualifying deliveries, "
          f"{len(shape)} calls each):")
    print(f"  handler median {statistics.median(handler_s) * 1000:.2f} ms; its calls replayed "
          f"bare, median {statistics.median(replay_s) * 1000:.2f} ms -> {paired:.2f}x "
          f"(median of paired ratios; ratio of totals {sum(handler_s) / sum(replay_s):.2f}x; "
          "goal <= 1.2x)")
    inside = sum(handler_s) / sum(in_calls_s)
    print(f"  handler wall time / time inside its own botocore calls, same runs: {inside:.2f}x "
          f"(median per delivery "
          f"{statistics.median(h / c for h, c in zip(handler_s, in_calls_s, strict=True)):.2f}x)")


def _empty(client: Any) -> None:
    for table in (f"{PREFIX}-events", f"{PREFIX}-issues", "replay-events", "replay-issues"):
        for item in client.scan(TableName=table, ProjectionExpression="pk, sk" if table.endswith(
                "events") else "pk")["Items"]:
            client.delete_item(TableName=table, Key=item)


def _retarget(params: dict[str, Any], key_prefix: str) -> dict[str, Any]:
    """The same call on the replay tables, under fresh keys so every condition holds again."""
    text = json.dumps(params).replace(f'"{PREFIX}-', '"replay-')
    text = text.replace('"S": "issue-', f'"S": "{key_prefix}issue-')
    text = text.replace('"S": "delivery-', f'"S": "{key_prefix}delivery-')
    return json.loads(text)  # type: ignore[no-any-return]


def show(label: str, counts: Counter[str], *, goal: int) -> None:
    total = sum(counts.values())
    ok = "ok" if total <= goal else "OVER GOAL"
    detail = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"
    print(f"  {label:<42} {total}  ({detail}; goal <= {goal}: {ok})")


def import_seconds(statement: str, runs: int) -> float:
    code = (f"import time; t = time.perf_counter(); {statement}; "
            "print(time.perf_counter() - t)")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def import_times(runs: int = 7) -> None:
    import_seconds("import boto3; import handlers.webhook", 1)  # compile .pyc once
    boto3_s = import_seconds("import boto3", runs)
    webhook_s = import_seconds("import handlers.webhook", runs)
    storing_s = import_seconds("import handlers.webhook, gip.services.issues", runs)
    print(f"\nimport time, fresh subprocesses, median of {runs}:")
    print(f"  import boto3                       {boto3_s * 1000:7.1f} ms")
    print(f"  import handlers.webhook            {webhook_s * 1000:7.1f} ms "
          f"-> {webhook_s / boto3_s:.2f}x boto3 (goal <= 1.3x)")
    print(f"  + the event store (lazy, 1st qualifying delivery) {storing_s * 1000:7.1f} ms "
          f"-> {storing_s / boto3_s:.2f}x boto3")


def main() -> None:
    os.environ.update(ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    calls_and_times()
    import_times()


if __name__ == "__main__":
    main()
