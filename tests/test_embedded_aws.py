"""The embedded AWS endpoint used by --local and the moto-server tests."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
import pytest

from gip.errors import GipError
from gip.local import local_org_id
from gip.local.embedded_aws import EmbeddedAws, dispatcher


def test_busy_port_is_one_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(GipError, match=f"port {port} on 127.0.0.1 is already in use"):
            EmbeddedAws(port=port).start()


def test_serves_aws_apis_over_http_and_stops() -> None:
    with EmbeddedAws(port=0) as aws:
        s3 = boto3.client("s3", endpoint_url=aws.url, region_name="us-east-1")
        s3.create_bucket(Bucket="gip-embedded-check")
        # moto's backends are per process, so other tests' buckets may be there too
        assert "gip-embedded-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        port = aws.port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # released after stop


def test_design_example_org_id_is_accepted_locally() -> None:
    assert local_org_id("o-example") == "o-example000"
    assert local_org_id("o-abcdefghij") == "o-abcdefghij"


def _get(aws: EmbeddedAws) -> tuple[int, str]:
    sqs = boto3.client("sqs", endpoint_url=aws.url, region_name="us-east-1")
    meta = sqs.list_queues(QueueNamePrefix="gip-embedded-date")["ResponseMetadata"]
    return meta["HTTPStatusCode"], meta["HTTPHeaders"]["date"]


def test_each_response_has_a_current_date_and_the_access_log_prints_only_when_asked(
        caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedAws(port=0) as aws, caplog.at_level(logging.INFO, logger="werkzeug"):
        logging.getLogger("werkzeug").setLevel(logging.INFO)  # what --verbose would ask for
        status, date = _get(aws)
        assert status == 200 and "POST / HTTP/1.1" in caplog.text
        sent = parsedate_to_datetime(date)
        assert abs((sent - datetime.now(UTC)).total_seconds()) <= 2
        caplog.clear()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the default start sets
        time.sleep(1.1)  # a new second: a new Date
        status, later = _get(aws)
        assert status == 200 and caplog.text == ""
        assert parsedate_to_datetime(later) > sent


def test_the_dispatcher_finds_each_hosts_backend_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    listed: list[int] = []
    real = backends.list_of_moto_modules
    monkeypatch.setattr(backends, "list_of_moto_modules", lambda: (listed.append(1), real())[1])
    plain, cached = DomainDispatcherApplication(create_backend_app), dispatcher()(create_backend_app)
    for host in ("dynamodb", "sqs.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com", "nowhere.example"):
        expected = plain.get_backend_for_host(host)
        listed.clear()
        assert cached.get_backend_for_host(host) == expected
        assert cached.get_backend_for_host(host) == expected and len(listed) == 1  # the second: remembered
    assert cached.get_backend_for_host("sqs.us-east-1.amazonaws.com") == "sqs"



def _handlers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "embedded-aws-handler"]


def test_handler_threads_serve_the_next_connections_and_a_long_poll_holds_only_its_own() -> None:
    before = len(_handlers())
    serving: list[str] = []

    def record(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
            serving.append(f"{threading.current_thread().name}#{id(threading.current_thread())}")
            return app(environ, start_response)
        return wrapped

    with EmbeddedAws(port=0, wrap=record) as aws:
        sqs = boto3.client("sqs", endpoint_url=aws.url, region_name="us-east-1")
        url = sqs.create_queue(QueueName="gip-embedded-threads")["QueueUrl"]
        serving.clear()
        for n in range(30):  # one connection each (werkzeug closes every one)
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        assert len(serving) == 30 and len(set(serving)) <= 3  # reused, not a thread per call
        polled: list[int] = []
        empty = sqs.create_queue(QueueName="gip-embedded-empty")["QueueUrl"]
        poller = threading.Thread(target=lambda: polled.append(len(boto3.client(
            "sqs", endpoint_url=aws.url, region_name="us-east-1").receive_message(
            QueueUrl=empty, WaitTimeSeconds=2).get("Messages", []))))
        poller.start()
        time.sleep(0.3)  # the long poll holds a handler thread; the others still answer at once
        started = time.monotonic()
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert got and time.monotonic() - started < 1.5 and poller.is_alive()
        poller.join(timeout=10)
        assert polled == [0]
    deadline = time.monotonic() + 5
    while len(_handlers()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_handlers()) <= before  # stopped: its idle handler threads ended
