"""``bootstrap.py report`` over a moto server: the page, the projection check, --as-of, --to-s3."""

from __future__ import annotations

import contextlib
import io
import re
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from gip.cli.main import main
from gip.domain.envelope import Envelope, iso, utcnow
from gip.domain.pool import Counts
from gip.services.projection import Projections
from gip.store.protocols import CountsRow
from tests.conftest import make_core
from tests.report_log import Log

A1, A2 = "111111111111", "222222222222"
PREFIX = "rep"


def recent_log() -> Log:
    """Two accounts, two issues, the last event a few minutes ago."""
    log = Log(t0=(utcnow() - timedelta(hours=2)).replace(microsecond=0))
    log.register(A1)
    log.register(A2)
    s1 = log.issue("octo/app", 1, 1)
    log.lease(A1, s1, "lease-1", reserved=2, released=30, cleaned=32)
    log.corr = "delivery-2"
    s2 = log.issue("octo/app", 2, 40)
    log.lease(A2, s2, "lease-2", reserved=41, released=80, cleaned=85, verdict=None, error="worker died")
    return log


@pytest.fixture(scope="module")
def seeded(moto_server: str) -> SimpleNamespace:
    core = make_core(moto_server, PREFIX)
    log = recent_log()
    by_stream: dict[str, list[Envelope]] = defaultdict(list)
    for event in log.events:
        by_stream[event["stream"]].append(event)
    for stream, events in by_stream.items():
        core.store.append(stream, 0, events)
    core.store.put_counts(CountsRow(Counts(), log.t0.date().isoformat()), expected=None)
    core.log = log
    return core


def report(endpoint: str, *argv: str, prefix: str = PREFIX) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *argv, "--prefix", prefix, "--endpoint-url", endpoint, "--region", "us-east-1"])
    return code, out.getvalue(), err.getvalue()


def test_the_page_states_whether_verify_would_pass(seeded: SimpleNamespace, moto_server: str, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    code, out, err = report(moto_server, "--output", str(target))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {target} (")
    page = target.read_text()
    assert page.count('<g class="row"') == 2
    assert "worker died (retryable: no)" in page
    assert "would fail" in page  # events only: no rows were written
    Projections(seeded.store).repair()
    code, _, _ = report(moto_server, "--output", str(target))
    assert code == 0 and "<code>replay --verify</code> would pass" in target.read_text()


def test_as_of_draws_the_pool_as_it_stood(seeded: SimpleNamespace, moto_server: str, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    moment = seeded.log.at(20)  # A1 reserved, A2 available
    code, _, _ = report(moto_server, "--as-of", iso(moment), "--output", str(target))
    page = target.read_text()
    assert code == 0
    assert "(the pool as it stood at the end)" in page
    assert "1 AVAILABLE, 1 RESERVED" in page
    assert "octo/app#2" not in page  # received later
    assert "Projection check: not run" in page


def test_since_only_draws_the_window_but_folds_from_the_start(seeded: SimpleNamespace, moto_server: str,
                                                               tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    code, _, _ = report(moto_server, "--since", iso(seeded.log.at(35)), "--output", str(target))
    page = target.read_text()
    assert code == 0 and "refuse" not in page  # every stream folded from version 1
    assert "octo/app#2" in page and ">octo/app#1</a>" not in page  # run 1 ended before the window


def test_correlation_id_draws_the_streams_one_delivery_touched(seeded: SimpleNamespace, moto_server: str,
                                                                tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    code, _, _ = report(moto_server, "--correlation-id", "delivery-2", "--output", str(target))
    page = target.read_text()
    assert code == 0
    assert re.findall(r'<g class="row" data-account="(\d+)"', page) == [A2]
    assert ">octo/app#2</a>" in page and ">octo/app#1</a>" not in page
    code, _, err = report(moto_server, "--correlation-id", "nobody", "--output", str(target))
    assert code == 1 and "no event has correlation id 'nobody'" in err


def test_stream_and_open(seeded: SimpleNamespace, moto_server: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    target = tmp_path / "r.html"
    code, _, _ = report(moto_server, "--stream", A1, "--open", "--output", str(target))
    assert code == 0 and opened == [target.resolve().as_uri()]
    assert re.findall(r'<g class="row" data-account="(\d+)"', target.read_text()) == [A1]


def test_bad_usage_and_missing_tables_are_one_line(moto_server: str, tmp_path: Path) -> None:
    code, _, err = report(moto_server, "--as-of", "1h", "--until", "2h", "--output", str(tmp_path / "x.html"))
    assert code == 2 and "give one" in err
    code, _, err = report(moto_server, "--output", str(tmp_path / "x.html"), prefix="nothing-here")
    assert code == 1 and err.count("\n") == 1 and "nothing-here-* tables are not there" in err


def test_to_s3_uploads_under_reports_and_prints_a_presigned_url(seeded: SimpleNamespace, moto_server: str,
                                                                 tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"{PREFIX}-results-123456789012"  # moto's account id
    s3.create_bucket(Bucket=bucket)
    code, out, err = report(moto_server, "--to-s3", "--output", str(tmp_path / "r.html"))
    assert (code, err) == (0, "")
    url = out.splitlines()[-1]
    parts = urlsplit(url)
    assert parts.path.startswith(f"/{bucket}/reports/report-") and parts.path.endswith(".html")
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["604800"]
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    assert body == (tmp_path / "r.html").read_text()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/")["Contents"]]
    assert len(keys) == 1 and re.fullmatch(r"reports/report-\d{8}T\d{6}Z\.html", keys[0])


def test_to_s3_without_the_bucket_is_one_line(seeded: SimpleNamespace, moto_server: str, tmp_path: Path) -> None:
    code, _, err = report(moto_server, "--to-s3", "--bucket", "no-such-bucket", "--output", str(tmp_path / "r.html"))
    assert code == 1 and err.count("\n") == 1 and "NoSuchBucket" in err and "Traceback" not in err


def test_local_mode_serves_the_page_drawn_on_each_request(seeded: SimpleNamespace, moto_server: str) -> None:
    from gip.cli.report import local_page
    from gip.local.apigw import Gateway

    calls: list[int] = []

    def page() -> str:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the log cannot be read")
        return local_page(prefix=PREFIX, region="us-east-1", endpoint_url=moto_server)

    gateway = Gateway("127.0.0.1", 0, invoke=lambda event: {}, health=lambda: (True, {}), report=page)
    gateway.start()
    try:
        url = f"http://127.0.0.1:{gateway.port}/report"
        with urllib.request.urlopen(url, timeout=30) as response:
            first = response.read().decode()
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert first.count('<g class="row"') == 2
        seeded.store.append("account-333333333333", 0, [_registered("333333333333", seeded.log)])
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read().decode().count('<g class="row"') == 3  # drawn again from the log
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url, timeout=30)
        assert failed.value.code == 503
        assert failed.value.read().decode() == ("the report cannot be drawn now: RuntimeError: "
                                                "the log cannot be read\n")
    finally:
        gateway.stop()


def test_the_local_banner_names_the_report_url() -> None:
    from gip.local.console import banner_lines

    lines = banner_lines(accounts=2, workers=1, url="http://127.0.0.1:8080/webhook", health="h", secret="s",
                         secret_from_env=False, github="g", token=False, endpoint="e", region="r", curl="c")
    assert any(line.split()[:2] == ["report", "http://127.0.0.1:8080/report"] for line in lines)


def _registered(account: str, seeded: Log) -> Envelope:
    log = Log(t0=seeded.t0)
    log.register(account, 90)
    return log.events[0]


def test_to_s3_against_aws_gives_an_https_url(tmp_path: Path) -> None:
    """In-process moto with no endpoint: the URL is the real S3 host, over HTTPS. (Last in the
    module: the in-process mock would otherwise outlive its block in pynamodb's cached clients.)"""
    from moto import mock_aws

    from gip.cli import report as report_cli

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="gip-reports-test")
        args = SimpleNamespace(profile=None, region="us-east-1", endpoint_url=None, bucket="gip-reports-test", prefix="p")
        url = report_cli.upload(args, SimpleNamespace(settings=SimpleNamespace(prefix="p")),  # type: ignore[arg-type]
                                "<p>x</p>", now=utcnow())
        assert url.startswith("https://") and "X-Amz-Signature=" in url and "X-Amz-Expires=604800" in url
        key = urlsplit(url).path.removeprefix("/gip-reports-test").lstrip("/")
        assert key.startswith("reports/report-")
        assert boto3.client("s3", region_name="us-east-1").get_object(Bucket="gip-reports-test", Key=key)["Body"].read() == b"<p>x</p>"
