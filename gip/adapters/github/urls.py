"""The GitHub REST API root a deployment calls (``--github-api-url``), checked once at deploy.

- github.com: ``https://api.github.com`` (``https://github.com`` is corrected to it);
- GitHub Enterprise Cloud with data residency: ``https://api.SUBDOMAIN.ghe.com``
  (``https://SUBDOMAIN.ghe.com`` is corrected to it);
- GitHub Enterprise Server: ``https://HOST/api/v3``. A bare ``https://HOST`` (or ``/api``) is
  corrected to it, with a notice; any other path is refused in one line;
- a loopback host (the fake GitHub of the tests, local mode) may use http and any of the above.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT = "https://api.github.com"
GHES_PATH = "/api/v3"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def normalize_api_url(url: str) -> tuple[str, str | None]:
    """``(url, notice)``: the URL to use and, if it was corrected, a one-line notice.

    Raises ValueError with one line when it cannot be a GitHub API root.
    """
    raw = (url or "").strip()
    parts = urlsplit(raw)
    host, path = (parts.hostname or "").lower(), parts.path.rstrip("/")
    loopback = host in _LOOPBACK
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise ValueError(f"--github-api-url must be an https:// URL, got {raw!r}")
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"--github-api-url must be a plain https://HOST[/api/v3] URL, got {raw!r}")
    root = f"{parts.scheme}://{parts.netloc}"
    if host == "github.com" and not path:
        return DEFAULT, f"--github-api-url: {raw} is the web site; using the API at {DEFAULT}"
    if host.endswith(".ghe.com") and not host.startswith("api."):
        fixed = f"https://api.{host}"
        return fixed, f"--github-api-url: {raw} is the web site; using the API at {fixed}"
    if host == "api.github.com" or host.endswith(".ghe.com"):
        if path:
            raise ValueError(f"--github-api-url: {host} takes no path, got {raw!r}")
        return root, None
    if path == GHES_PATH or (loopback and not path):
        return root + path, None
    if path in ("", "/api"):
        fixed = root + GHES_PATH
        return fixed, f"--github-api-url: a GitHub Enterprise Server API ends in {GHES_PATH}; using {fixed}"
    raise ValueError(f"--github-api-url: a GitHub Enterprise Server API URL is https://HOST{GHES_PATH}, "
                     f"got {raw!r}")


def api_url_arg(value: str) -> str:
    """argparse ``type=``: the corrected URL (its notice on stderr), or a one-line error."""
    import argparse
    import sys

    try:
        fixed, notice = normalize_api_url(value)
    except ValueError as exc:
        # argparse names the flag itself: "argument --github-api-url: <this>"
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--github-api-url: ")) from exc
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    return fixed
