"""Templates over CloudFormation's 51,200-byte TemplateBody limit go by TemplateURL (issue 20 §2)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

import gip.cli.deploy
from gip.cli import packaging
from gip.cli.deploy import deploy
from gip.cli.template_source import TEMPLATE_BODY_LIMIT, needs_url, template_key
from tests.deploy_support import RecordingReporter, copy_source, options

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
pytestmark = pytest.mark.server


def client(url: str, name: str) -> Any:
    return boto3.client(name, endpoint_url=url, region_name="us-east-1")


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    assert not needs_url("x" * TEMPLATE_BODY_LIMIT)
    assert needs_url("x" * (TEMPLATE_BODY_LIMIT + 1))
    assert needs_url("é" * (TEMPLATE_BODY_LIMIT // 2 + 1))  # 25,601 characters, 51,202 bytes


@pytest.fixture
def padded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real templates, management.yaml padded with comments past the limit."""
    for path in (ROOT / "templates").glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    body = (tmp_path / "management.yaml").read_text()
    pad = TEMPLATE_BODY_LIMIT - len(body.encode()) + 100
    body += "".join(f"# padding {i:06d} to go over the TemplateBody limit\n" for i in range(pad // 40 + 1))
    (tmp_path / "management.yaml").write_text(body)
    monkeypatch.setattr(gip.cli.deploy, "TEMPLATES", tmp_path)
    assert len(body.encode()) > TEMPLATE_BODY_LIMIT
    return body


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(tmp_path_factory.mktemp("src"))


def test_a_template_over_the_limit_is_uploaded_and_passed_by_url(moto_server: str, padded: str, src: Path) -> None:
    deploy(options(moto_server, prefix="gip-big", source_root=src), RecordingReporter())
    bucket = packaging.artifacts_bucket_name("gip-big", ACCOUNT, "us-east-1")
    s3, cfn = client(moto_server, "s3"), client(moto_server, "cloudformation")
    uploaded = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="templates/")["Contents"]]
    # Only the big one: worker.yaml is under the limit and goes inline.
    assert len(uploaded) == 1 and uploaded[0].startswith("templates/")
    stored = s3.get_object(Bucket=bucket, Key=uploaded[0])["Body"].read().decode()
    assert stored.startswith(padded[:2000]) and len(stored.encode()) > TEMPLATE_BODY_LIMIT
    assert cfn.get_template(StackName="gip-big", TemplateStage="Original")["TemplateBody"] == stored
    assert client(moto_server, "dynamodb").describe_table(TableName="gip-big-events")["Table"]

    again = RecordingReporter()
    deploy(options(moto_server, prefix="gip-big", source_root=src), again)
    assert "gip-big: no changes" in again.infos and again.events == []


def test_the_url_key_follows_the_content() -> None:
    assert template_key("a") == template_key("a") != template_key("b")


def test_a_first_dry_run_over_the_limit_plans_from_the_template_and_creates_nothing(
        moto_server: str, padded: str, src: Path) -> None:
    reporter = RecordingReporter()
    assert deploy(options(moto_server, prefix="gip-bigdry", dry_run=True, source_root=src), reporter) == {}
    assert any("planned from the template" in n and "gip-bigdry" in n for n in reporter.notices)
    adds = [line.split()[1] for line in reporter.infos if line.strip().startswith("Add")]
    assert "EventsTable" in adds and "WebhookFunction" in adds
    s3, cfn = client(moto_server, "s3"), client(moto_server, "cloudformation")
    assert not [b for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("gip-bigdry")]
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [n for n in live if n.startswith("gip-bigdry")]
