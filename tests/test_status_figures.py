"""`status`'s publisher lag and live workers (issue 14's last gaps): a deployed stack's lag from
the publisher's IteratorAge in CloudWatch; the local stack's figures from its own /healthz, and
one notice line when it is not reachable."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from gip.cli.main import main
from gip.cli.status_figures import from_health_document, lag_from_metric
from gip.config import Settings
from gip.domain.envelope import Cause, utcnow
from gip.services.pool import Pool
from gip.store.dynamodb import DynamoEventStore
from gip.store.models import Tables, create_tables

PREFIX = "sf"
HEALTHY = {"status": "ready", "reasons": [], "publisher": {"lag_s": 2.4, "parked": 0, "last_error": None},
           "workers": {"live": 2, "configured": 2}, "dlq": {}, "queues": {}, "accounts": {"AVAILABLE": 2}}


def test_the_lag_is_the_iterator_age_maximum_or_zero_only_when_no_backlog_shows() -> None:
    assert lag_from_metric([1000.0, 45000.0, 300.0], recent_events=3, mapping_problem="") == \
        (45.0, "IteratorAge, Maximum over the last 5 min")
    assert lag_from_metric([], recent_events=0, mapping_problem="") == \
        (0.0, "idle: no IteratorAge datapoints and no events stored in the last 5 min")
    assert lag_from_metric([], recent_events=4, mapping_problem="") == \
        (None, "unknown (no IteratorAge datapoints in the last 5 min, though 4 event(s) were stored in it)")
    assert lag_from_metric([], recent_events=0, mapping_problem="its stream mapping is Disabled") == \
        (None, "unknown (no IteratorAge datapoints in the last 5 min; its stream mapping is Disabled)")


def test_the_local_figures_come_from_the_healthz_document() -> None:
    got = from_health_document("http://h/healthz", 200, {**HEALTHY, "workers": {"live": 1, "configured": 2}})
    assert (got.lag_s, got.workers, got.source, got.notice) == (2.4, {"live": 1, "configured": 2}, "local", "")
    starting = from_health_document("http://h/healthz", 503, {"status": "registering accounts"})
    assert starting.lag_s is None and starting.workers == {"live": None, "configured": None}
    assert starting.workers_note == "unknown (the local stack is registering accounts)"
    assert "\n" not in starting.notice and "not ready yet (registering accounts)" in starting.notice


@pytest.fixture(scope="module")
def tables(moto_server: str) -> DynamoEventStore:
    settings = Settings.for_prefix(PREFIX, endpoint_url=moto_server, region="us-east-1")
    create_tables(Tables.from_settings(settings))
    boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1").create_queue(QueueName=f"{PREFIX}-issues")
    return DynamoEventStore(Tables.from_settings(settings))


def cli(endpoint: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--prefix", PREFIX, "--endpoint-url", endpoint, "--region", "us-east-1"])
    return code, out.getvalue(), err.getvalue()


def health(endpoint: str, *argv: str) -> dict[str, Any]:
    code, out, _ = cli(endpoint, "status", "--format", "json", *argv)
    assert code == 0
    return dict(json.loads(out)["health"])


@pytest.mark.server
def test_a_deployed_stacks_lag_is_its_publishers_iterator_age(tables: DynamoEventStore, moto_server: str,
                                                              tmp_path: Path) -> None:
    """No datapoints and no events: idle, 0. An event stored but no datapoint: unknown, with
    why. IteratorAge over the bound: degraded with the reason, as the local figure does."""
    assert health(moto_server, "--state-dir", str(tmp_path))["publisher_lag_s"] == 0.0
    Pool(store=tables).register("500000000001", role_arn="arn:aws:iam::500000000001:role/p", source="manual",
                                cause=Cause(correlation_id="c", actor="test"))
    checked = health(moto_server, "--state-dir", str(tmp_path))
    assert checked["publisher_lag_s"] is None and checked["status"] == "ready"
    _, out, err = cli(moto_server, "status", "--state-dir", str(tmp_path))
    assert "  publisher lag: unknown (no IteratorAge datapoints in the last 5 min, though 1 event(s) " \
           "were stored in it)" in out.splitlines()
    assert err.count("\n") == 1 and "no local stack recorded for" in err  # a bare moto endpoint, said once

    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_server, region_name="us-east-1")
    now = utcnow()
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "IteratorAge", "Dimensions": [{"Name": "FunctionName", "Value": f"{PREFIX}-publisher"}],
         "Value": value, "Unit": "Milliseconds", "Timestamp": now - timedelta(seconds=ago)}
        for value, ago in ((45_000.0, 120), (800.0, 20), (99_000.0, 900))])  # the last one is out of the window
    checked = health(moto_server, "--state-dir", str(tmp_path))
    assert checked["publisher_lag_s"] == 45.0 and checked["status"] == "degraded"
    assert checked["reasons"] == ["publisher lag 45s (the oldest event not yet on the bus; bound 30s)"]
    _, out, _ = cli(moto_server, "status", "--state-dir", str(tmp_path))
    assert "  publisher lag: 45s (IteratorAge, Maximum over the last 5 min)" in out.splitlines()


class Healthz(BaseHTTPRequestHandler):
    answer: tuple[int, dict[str, Any]] = (200, HEALTHY)

    def do_GET(self) -> None:
        code, doc = type(self).answer if self.path == "/healthz" else (404, {})
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def local_gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.server
def test_the_local_stacks_figures_come_from_its_healthz(tables: DynamoEventStore, moto_server: str,
                                                         tmp_path: Path) -> None:
    """The endpoint is the one local-stack.json names: the workers and lag are the local
    stack's own; unreachable or starting, one notice line and both unknown."""
    with local_gateway() as base:
        (tmp_path / "local-stack.json").write_text(json.dumps(
            {"endpoint_url": moto_server, "webhook_url": f"{base}/webhook", "prefix": PREFIX}))
        Healthz.answer = (200, {**HEALTHY, "workers": {"live": 1, "configured": 2}})
        checked = health(moto_server, "--state-dir", str(tmp_path))
        assert checked["source"] == "local" and checked["workers"] == {"live": 1, "configured": 2}
        assert checked["publisher_lag_s"] == 2.4 and checked["reasons"] == ["1 of 2 worker(s) alive"]
        code, out, err = cli(moto_server, "status", "--state-dir", str(tmp_path))
        assert code == 0 and err == ""
        assert "  live workers: 1 of 2" in out.splitlines()
        assert f"  publisher lag: 2s (from the local {base}/healthz)" in out.splitlines()

        Healthz.answer = (503, {"status": "registering accounts"})
        code, out, err = cli(moto_server, "status", "--state-dir", str(tmp_path))
        assert code == 0 and "  live workers: unknown (the local stack is registering accounts)" in out.splitlines()
        assert err.count("\n") == 1 and "not ready yet (registering accounts)" in err
    code, out, err = cli(moto_server, "status", "--state-dir", str(tmp_path))  # its gateway is gone
    assert code == 0 and err == f"notice: local stack: not reachable at {base}/healthz (ConnectionError); " \
                                "publisher lag and live workers unknown\n"
    assert "  live workers: unknown (the local stack is not reachable)" in out.splitlines()
    assert "  publisher lag: unknown (the local stack is not reachable)" in out.splitlines()
