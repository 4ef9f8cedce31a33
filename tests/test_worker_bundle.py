"""The worker bundle carries every dependency; the stock image only fetches, unpacks and runs it
(issue 20 §9). The start command is taken from templates/worker.yaml and run for real."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gip.cli import packaging
from gip.local.gaps import load_template
from tests.deploy_support import FakeInstaller, copy_source

ROOT = Path(__file__).resolve().parent.parent
FAKE_NUKE = b"#!/bin/sh\necho 'aws-nuke version v3.63.4'\n"  # stands in for the pinned release


def stock_command() -> str:
    template = load_template((ROOT / "templates" / "worker.yaml").read_text())
    container = template["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    return str(container["Command"]["Fn::If"][1][0])


def test_worker_bundle_vendors_the_sdk_under_deps_and_the_lambda_bundle_does_not(tmp_path: Path) -> None:
    for top in ("gip", "handlers", "schemas", "worker"):
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "setup.cfg").write_text("[options]\ninstall_requires =\n    boto3>=1\n    requests>=2\n")
    installer = FakeInstaller()
    worker = zipfile.ZipFile(io.BytesIO(packaging.build("worker", root=tmp_path, installer=installer).data))
    lam = zipfile.ZipFile(io.BytesIO(packaging.build("lambda", root=tmp_path, installer=installer).data))
    assert installer.calls == [["boto3>=1", "requests>=2"], ["requests>=2"]]
    assert "deps/fakedep/__init__.py" in worker.namelist() and "worker/__init__.py" in worker.namelist()
    assert "fakedep/__init__.py" in lam.namelist()
    # the library goes into both bundles; each bundle carries only its own entry points
    assert "gip/__init__.py" in worker.namelist() and "gip/__init__.py" in lam.namelist()
    assert "handlers/__init__.py" in lam.namelist() and "handlers/__init__.py" not in worker.namelist()
    assert "worker/__init__.py" not in lam.namelist()


def test_the_worker_keeps_the_sdk_the_lambda_prunes_it(tmp_path: Path) -> None:
    for keep in (True, False):
        target = tmp_path / str(keep)
        for name in ("boto3", "botocore-1.34.0.dist-info", "requests", "bin"):
            (target / name).mkdir(parents=True)
        packaging.prune_runtime_provided(target, keep_sdk=keep)
        left = sorted(p.name for p in target.iterdir())
        assert left == (["boto3", "botocore-1.34.0.dist-info", "requests"] if keep else ["requests"])


@pytest.fixture(scope="module")
def bundle(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    src = copy_source(tmp_path_factory.mktemp("src"))
    art = packaging.build("worker", root=src, installer=FakeInstaller(), nuke=FAKE_NUKE)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key=art.key, Body=art.data)
    return SimpleNamespace(url=moto_server, key=art.key)


def run_start(bundle: SimpleNamespace, tmp_path: Path, key: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The start command with /opt/app, the image's site-packages and its python made local."""
    app, site = tmp_path / "app", tmp_path / "site"
    site.mkdir(exist_ok=True)
    probe = (f"import os, site, worker; site.addsitedir({json.dumps(str(site))}); import fakedep; "
             "print(worker.__file__); print(fakedep.__file__); print(os.environ[\"PYTHONPATH\"]); "
             "from worker.cleaner import find_nuke; print(find_nuke(\"\"))")
    command = (stock_command().replace("/opt/app", str(app))
               .replace('sysconfig.get_paths()["purelib"]', json.dumps(str(site)))
               .replace("python - <<", f"{sys.executable} - <<")
               .replace("exec python -m worker", f"exec {sys.executable} -c '{probe}'"))
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": bundle.url, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "BUNDLE_BUCKET": "artifacts", "BUNDLE_KEY": key}
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done, app, site


@pytest.mark.server
def test_stock_image_start_command_only_unpacks_the_bundle_and_runs_it(bundle: SimpleNamespace, tmp_path: Path) -> None:
    assert "pip" not in stock_command()  # nothing from PyPI at task start
    done, app, site = run_start(bundle, tmp_path, bundle.key)
    assert done.returncode == 0, done.stderr[-2000:]
    # The worker from the bundle; its dependencies from deps/ through the .pth (as snippets see them).
    # The worker, with NUKE unset and no aws-nuke on PATH, picks the bundle's bin/aws-nuke.
    assert done.stdout.split() == [str(app / "worker" / "__init__.py"), str(app / "deps" / "fakedep" / "__init__.py"),
                                   str(app), str((app / "bin" / "aws-nuke").resolve())]
    assert (site / "gip-bundle.pth").read_text() == f"{app}/deps\n"
    assert (app / "schemas" / "envelope.json").exists()
    # zipfile.extractall drops modes; the start command restores the executable bit, and only there.
    assert (app / "bin" / "aws-nuke").stat().st_mode & 0o777 == 0o755
    assert (app / "worker" / "__main__.py").stat().st_mode & 0o111 == 0
    ran = subprocess.run([str(app / "bin" / "aws-nuke")], capture_output=True, text=True, timeout=10, check=True)
    assert ran.stdout.strip() == "aws-nuke version v3.63.4"


@pytest.mark.server
def test_a_bundle_that_cannot_be_fetched_is_one_line(bundle: SimpleNamespace, tmp_path: Path) -> None:
    done, _, _ = run_start(bundle, tmp_path, "artifacts/worker-missing.zip")
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("cannot fetch the worker bundle s3://artifacts/artifacts/worker-missing.zip: HTTP Error 404")


def test_stock_image_fetch_signs_its_request_as_botocore_does() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from freezegun import freeze_time

    script = stock_command().split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    namespace: dict[str, Any] = {"__name__": "fetch"}
    exec(compile(script, "start-command", "exec"), namespace)  # the template's own code, not input
    url = "https://b.s3.eu-west-1.amazonaws.com/artifacts/worker-abc.zip"
    now = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
    for token in ("token", None):
        ours = namespace["signed_headers"](url, "eu-west-1", "AKID", "secret", token, now)
        request = AWSRequest(method="GET", url=url, headers={})
        # An S3 client configured with payload_signing_enabled=False signs UNSIGNED-PAYLOAD too.
        request.context["client_config"] = SimpleNamespace(s3={"payload_signing_enabled": False})
        with freeze_time(now):
            S3SigV4Auth(Credentials("AKID", "secret", token), "s3", "eu-west-1").add_auth(request)
        assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
        assert ours["authorization"] == request.headers["Authorization"]
