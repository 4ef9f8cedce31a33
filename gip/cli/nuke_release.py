"""The pinned aws-nuke release the worker bundle carries (``bin/aws-nuke``), so that default
deployments (the stock python image) clean with aws-nuke, not only ``worker/Dockerfile`` images.

Downloaded once on the operator's machine at deploy time, checked against :data:`SHA256` and
cached under ``.local/cache`` like the pip wheels. The fetcher is injectable: tests serve a small
tarball. ``worker/Dockerfile`` pins the same version and checksum (a test holds them equal).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gip.cli.packaging import CACHE, PackagingError

VERSION = "3.63.4"
ARCH = "amd64"  # Fargate runs the stock image as linux/amd64 (X86_64)
SHA256 = "92f1a16e7e76c15399520e9ebba669b1fa4ea781460ebd6e32eb298df03c9da2"  # that tarball's

Fetcher = Callable[[str], bytes]


class NukeReleaseError(PackagingError):
    """The pinned aws-nuke release could not be downloaded, or is not the one pinned."""


def release_url(version: str = VERSION, arch: str = ARCH) -> str:
    """Pure: the GitHub release asset of ``version`` for linux/``arch``."""
    return (f"https://github.com/ekristen/aws-nuke/releases/download/v{version}/"
            f"aws-nuke-v{version}-linux-{arch}.tar.gz")


def download(url: str) -> bytes:
    """The real fetcher: one HTTPS GET (GitHub redirects to its asset host; urllib follows)."""
    with urllib.request.urlopen(url, timeout=120) as resp:
        return bytes(resp.read())


def binary_from_tarball(data: bytes) -> bytes:
    """Pure: the ``aws-nuke`` executable inside a release tarball (read, never extracted to disk)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.removeprefix("./") == "aws-nuke":
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise NukeReleaseError(f"the aws-nuke tarball is not a readable .tar.gz: {exc}") from exc
    raise NukeReleaseError("the aws-nuke tarball has no aws-nuke executable at its top")


def aws_nuke_binary(*, fetch: Fetcher = download, cache: Path = CACHE,
                    version: str = VERSION, sha256: str = SHA256) -> bytes:
    """The pinned aws-nuke executable: from the cache if its tarball checks out, else downloaded,
    checked against ``sha256`` and cached. Raises NukeReleaseError (one line) on any failure."""
    url = release_url(version)
    cached = cache / url.rsplit("/", 1)[1]
    if cached.is_file() and hashlib.sha256(data := cached.read_bytes()).hexdigest() == sha256:
        return binary_from_tarball(data)
    try:
        data = fetch(url)
    except Exception as exc:  # urllib, DNS, TLS, proxies: one line whatever it was
        raise NukeReleaseError(f"cannot download aws-nuke v{version} from {url}: {exc}; retry, "
                               "or deploy with --no-nuke (the worker then cleans with its built-in cleaner)"
                               ) from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise NukeReleaseError(f"aws-nuke v{version} from {url} has sha256 {got}, expected {sha256}: "
                               "refusing to bundle it")
    binary = binary_from_tarball(data)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return binary
