"""Build the Lambda and worker bundles and upload them, keyed by content hash.

- The Lambda bundle is ``handlers/`` + ``gip/`` + ``schemas/`` + the runtime dependencies, installed
  for the Lambda platform (manylinux2014_x86_64 wheels, CPython 3.11) and without
  boto3/botocore/s3transfer, which the Lambda runtime provides.
- The worker bundle is ``worker/`` + ``gip/`` + ``schemas/`` + *all* the dependencies,
  boto3 included, under ``deps/``: the stock python:3.11 image only unpacks it and runs it,
  with no ``pip install`` (and no PyPI) at task start.
- Zips are deterministic (sorted entries, fixed timestamps and modes), so the same sources
  give the same bytes, the same key (``artifacts/<kind>-<sha256>.zip``) and no upload.

Dependency vendoring is injectable: :func:`pip_installer` runs pip (wheels cached under
``.local/cache``), tests pass a fake installer or ``None`` (``--no-deps``: code only). The worker
bundle may also carry the pinned aws-nuke executable at ``bin/aws-nuke``, mode 0755
(:mod:`gip.cli.nuke_release` fetches it).
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from gip.adapters.aws import aws_errors, describe, error_code
from gip.errors import AwsError, GipError

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".local" / "cache"
PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.11"
PROVIDED_BY_RUNTIME = re.compile(r"^(boto3|botocore|s3transfer)([-_.].*)?$", re.IGNORECASE)
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
BUNDLES = {"lambda": ("handlers", "gip", "schemas"), "worker": ("worker", "gip", "schemas")}
# Where the dependencies go in each bundle: the Lambda runtime puts the zip root on sys.path;
# the worker's start command puts deps/ there through a .pth (snippets import boto3 too).
DEPS_PREFIX = {"lambda": "", "worker": "deps/"}
NUKE_PATH = "bin/aws-nuke"  # worker.cleaner.find_nuke looks there when aws-nuke is not on PATH

Installer = Callable[[list[str], Path], None]


class PackagingError(GipError):
    """A bundle could not be built (missing sources, pip failed)."""


@dataclass(frozen=True)
class Artifact:
    """A built bundle: its bytes and its content-addressed key."""

    kind: str
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        return f"artifacts/{self.kind}-{self.sha256[:32]}.zip"


def requirements(setup_cfg: Path = ROOT / "setup.cfg", *, kind: str = "lambda") -> list[str]:
    """``install_requires`` from setup.cfg; for the Lambda bundle, minus what its runtime provides."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    raw = parser.get("options", "install_requires", fallback="")
    reqs = [line.strip() for line in raw.splitlines() if line.strip()]
    if kind != "lambda":
        return sorted(reqs)
    return sorted(r for r in reqs if not _provided(r))


def _provided(requirement: str) -> bool:
    return bool(PROVIDED_BY_RUNTIME.match(re.split(r"[<>=!~ \[]", requirement)[0]))


def pip_installer(*, cache: Path = CACHE) -> Installer:
    """An installer that vendors manylinux/CPython-3.11 wheels, cached by requirement set."""

    def install(reqs: list[str], target: Path) -> None:
        digest = hashlib.sha256("\n".join([PLATFORM, PYTHON_VERSION, *reqs]).encode()).hexdigest()[:16]
        cached = cache / f"deps-{digest}"
        if not cached.is_dir():
            tmp = cache / f"deps-{digest}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            cmd = [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--platform", PLATFORM, "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                "--implementation", "cp", "--target", str(tmp), "--cache-dir", str(cache / "pip"),
                *reqs,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
                raise PackagingError(f"pip could not vendor the dependencies: {last}")
            prune_runtime_provided(tmp, keep_sdk=any(_provided(r) for r in reqs))
            tmp.rename(cached)
        shutil.copytree(cached, target, dirs_exist_ok=True)

    return install


def prune_runtime_provided(target: Path, *, keep_sdk: bool = False) -> None:
    """Remove ``bin/`` and, unless ``keep_sdk``, boto3/botocore/s3transfer (and their
    dist-info) pulled in transitively."""
    for entry in target.iterdir():
        if not keep_sdk and PROVIDED_BY_RUNTIME.match(entry.name):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    bin_dir = target / "bin"
    if bin_dir.is_dir():
        shutil.rmtree(bin_dir)


def _files(base: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_dir() or EXCLUDED_PARTS.intersection(rel.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        yield (f"{prefix}{rel.as_posix()}", path)


def deterministic_zip(entries: dict[str, bytes], *, executables: frozenset[str] = frozenset()) -> bytes:
    """Pure: a zip whose bytes depend only on the names, contents and which are ``executables``
    (mode 0755; every other entry 0644)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = (0o755 if name in executables else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name], compresslevel=9)
    return buf.getvalue()


def build(
    kind: str,
    *,
    root: Path = ROOT,
    installer: Installer | None,
    workdir: Path | None = None,
    nuke: bytes | None = None,
) -> Artifact:
    """Build bundle ``kind`` ("lambda" or "worker"). ``installer=None`` skips the deps;
    ``nuke``, the aws-nuke executable, goes to the worker bundle's ``bin/aws-nuke`` (0755)."""
    entries: dict[str, bytes] = {}
    for top in BUNDLES[kind]:
        source = root / top
        if not source.is_dir():
            raise PackagingError(f"cannot build the {kind} bundle: {source} is missing")
        for name, path in _files(source, f"{top}/"):
            entries[name] = path.read_bytes()
    if installer is not None:
        deps = (workdir or CACHE) / f"build-{kind}-{os.getpid()}"
        shutil.rmtree(deps, ignore_errors=True)
        deps.mkdir(parents=True)
        try:
            installer(requirements(root / "setup.cfg", kind=kind), deps)
            for name, path in _files(deps, DEPS_PREFIX[kind]):
                entries.setdefault(name, path.read_bytes())
        finally:
            shutil.rmtree(deps, ignore_errors=True)
    executables: frozenset[str] = frozenset()
    if nuke is not None and kind == "worker":
        entries[NUKE_PATH] = nuke
        executables = frozenset({NUKE_PATH})
    data = deterministic_zip(entries, executables=executables)
    return Artifact(kind=kind, data=data, sha256=hashlib.sha256(data).hexdigest())


def upload(s3: Any, *, bucket: str, key: str, data: bytes) -> bool:
    """Put ``data`` at ``key`` unless it is already there. Returns True if it uploaded."""
    if object_exists(s3, bucket=bucket, key=key):
        return False
    with aws_errors(f"s3:PutObject s3://{bucket}/{key}"):
        s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256")
    return True


def object_exists(s3: Any, *, bucket: str, key: str) -> bool:
    """HeadObject: True if the key exists; a missing key is False, anything else raises."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise AwsError(describe(exc, action=f"s3:HeadObject s3://{bucket}/{key}")) from exc


def ensure_bucket(s3: Any, *, bucket: str, region: str, tls_only: bool = True) -> bool:
    """Create the artifacts bucket if missing: encrypted, private, TLS only. True if created.

    ``tls_only=False`` is for a plain-HTTP local endpoint (moto enforces bucket policies).
    """
    if bucket_exists(s3, bucket=bucket):
        return False
    with aws_errors(f"s3:CreateBucket {bucket}"):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True},
        ]})
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        })
        if tls_only:
            s3.put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket))
    return True


def bucket_exists(s3: Any, *, bucket: str) -> bool:
    """HeadBucket: True if it exists; a missing bucket is False, anything else raises."""
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise AwsError(describe(exc, action=f"s3:HeadBucket {bucket}")) from exc
    return False


def tls_only_policy(bucket: str) -> str:
    """Pure: a bucket policy denying every request not made over TLS."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def artifacts_bucket_name(prefix: str, account: str, region: str) -> str:
    """Pure: ``<prefix>-artifacts-<account>-<region>``, shortened to S3's 63 characters."""
    name = f"{prefix}-artifacts-{account}-{region}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - 9]}-{digest}"
