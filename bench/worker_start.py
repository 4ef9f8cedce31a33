"""Stock-image worker start figures (printed, not a timed test).

Builds the real worker bundle (manylinux CPython 3.11 wheels, boto3 included, via pip; cached
under .local/cache), puts it in an embedded moto S3, then per round in a fresh directory:

- fetch + unpack: templates/worker.yaml's start command up to the ``exec`` (stdlib SigV4 GET,
  extract, write the .pth), against the local moto endpoint;
- import: ``python -S -c "import worker.__main__"`` with only the bundle on the path (``-S``
  keeps this machine's site-packages out, as the stock image has none of our dependencies).

For comparison it times, once, what every start used to do first: ``pip install boto3``.

Run: ``.venv/bin/python bench/worker_start.py [rounds]``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(key, value)

import boto3  # noqa: E402

from gip.cli import packaging  # noqa: E402
from gip.local.embedded_aws import EmbeddedAws  # noqa: E402
from tests.test_worker_bundle import stock_command  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {done.stderr.strip().splitlines()[-1:]}")
    return elapsed


def main(rounds: int = 5) -> None:
    started = time.perf_counter()
    art = packaging.build("worker", installer=packaging.pip_installer())
    print(f"worker bundle                {len(art.data) / 1e6:6.1f} MB zipped, built in "
          f"{time.perf_counter() - started:.1f} s (pip cache under .local/cache)")
    server = EmbeddedAws(port=0).start()
    fetch, imports = [], []
    try:
        s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key=art.key, Body=art.data)
        env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": server.url, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "BUNDLE_BUCKET": "artifacts", "BUNDLE_KEY": art.key}
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                app, site = Path(tmp) / "app", Path(tmp) / "site"
                site.mkdir()
                command = (stock_command().replace("/opt/app", str(app))
                           .replace('sysconfig.get_paths()["purelib"]', repr(str(site)))
                           .replace("python - <<", f"{sys.executable} - <<")
                           .replace("exec python -m worker", "true"))
                fetch.append(timed(["sh", "-c", command], env))
                probe = ("import worker.__main__, boto3, sys; "
                         f"assert boto3.__file__.startswith({str(app / 'deps')!r}), boto3.__file__")
                imports.append(timed([sys.executable, "-S", "-c", probe],
                                     {"PATH": env["PATH"], "PYTHONPATH": f"{app}:{app / 'deps'}"}))
    finally:
        server.stop()
    for label, times in (("fetch + unpack", fetch), ("import worker.__main__", imports),
                         ("start total (sum of medians)", [statistics.median(fetch) + statistics.median(imports)])):
        print(f"{label:<28} median {statistics.median(times) * 1000:7.0f} ms over {len(times)} run(s)"
              f"{f' (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})' if len(times) > 1 else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        pip = timed([sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--disable-pip-version-check",
                     "--target", tmp, "boto3"], dict(os.environ))
    print(f"before: pip install boto3     {pip * 1000:7.0f} ms, once, from PyPI over this machine's network "
          "(each stock start did it before unpacking)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
