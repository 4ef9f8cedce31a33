"""The repository's ``.github/reproduce.yml`` (issue 17): read, validate, resolve the versions.

The gatekeeper calls :func:`attach` on a run it is about to queue. It costs at most two calls:

1. ``GET /repos/{o}/{r}/contents/.github/reproduce.yml`` on the default branch, with the token
   the gatekeeper already has. No file: nothing changes (a single run, today's behaviour).
2. The registry: PyPI's PEP 691 JSON simple API (``index``, default ``https://pypi.org/simple``)
   or the npm registry's JSON (``index``, default ``https://registry.npmjs.org``); none for
   ``source: list``.

An invalid file is :class:`BadConfig` (the gatekeeper skips with ``bad_config`` and the
jsonschema error, with the line it is on). A registry that cannot be reached, or answers 5xx/429,
is :class:`RegistryUnavailable`: the record fails and SQS retries; a list is never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from gip.domain.matrix import CONFIG_SCHEMA, MatrixConfig, order_versions, reported_problem
from gip.errors import GipError

log = logging.getLogger(__name__)

CONFIG_PATH = ".github/reproduce.yml"
PYPI_INDEX = "https://pypi.org/simple"
NPM_REGISTRY = "https://registry.npmjs.org"
PEP691 = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 10.0
MAX_BYTES = 20_000_000

Fetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]


class BadConfig(GipError):
    """``reproduce.yml`` is not valid: ``detail`` names the line and the jsonschema error."""

    def __init__(self, detail: str, line: int | None = None) -> None:
        self.line = line
        self.detail = f"{CONFIG_PATH} line {line}: {detail}" if line else f"{CONFIG_PATH}: {detail}"
        super().__init__(self.detail)


class RegistryUnavailable(GipError):
    """The registry could not be reached or answered 5xx/429: retry the record later."""


def http_get(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """GET ``url`` with requests; a network failure is :class:`RegistryUnavailable`."""
    import requests

    try:
        with requests.get(url, headers=dict(headers), timeout=TIMEOUT_S, stream=True) as r:
            body = r.raw.read(MAX_BYTES + 1, decode_content=True)
            if len(body) > MAX_BYTES:
                raise RegistryUnavailable(f"{url}: the answer is over {MAX_BYTES} bytes")
            return r.status_code, body
    except requests.RequestException as exc:
        raise RegistryUnavailable(f"{url}: {type(exc).__name__}") from exc


# ---------------------------------------------------------------- parsing


def parse(text: str) -> MatrixConfig:
    """YAML text → a validated :class:`MatrixConfig` (versions not resolved yet)."""
    import yaml
    from jsonschema import Draft202012Validator

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadConfig(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    errors = sorted(Draft202012Validator(CONFIG_SCHEMA).iter_errors(doc),
                    key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path)
        raise BadConfig(f"{where + ': ' if where else ''}{err.message}", line_of(node, list(err.absolute_path)))
    problem = reported_problem(str(doc.get("reported", "#")))
    if problem:  # a regex that could hang on a hostile issue body is refused here, with its line
        raise BadConfig(f"reported: {problem}", line_of(node, ["reported"]))
    return MatrixConfig.from_mapping(doc)


def line_of(node: Any, path: list[Any]) -> int | None:
    """The 1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    import yaml

    if node is None:
        return 1
    for step in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            child = node.value[step]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


# ---------------------------------------------------------------- resolving


def resolve(config: MatrixConfig, fetch: Fetch = http_get) -> MatrixConfig:
    """The config with ``versions`` filled from the registry (or the list), ascending."""
    kind, _, package = config.source.partition(":")
    if kind == "list":
        versions = order_versions([(v, False) for v in config.listed], include_prereleases=True)
    elif kind == "pypi":
        versions = order_versions(_pypi(config.index or PYPI_INDEX, package, fetch),
                                  include_prereleases=config.include_prereleases)
    else:
        versions = order_versions(_npm(config.index or NPM_REGISTRY, package, fetch),
                                  include_prereleases=config.include_prereleases)
    if not versions:
        raise BadConfig(f"{config.source}: no versions left to run (after dropping yanked and prereleases)")
    return replace(config, versions=versions)


def _get_json(url: str, headers: Mapping[str, str], fetch: Fetch, source: str) -> Any:
    import json

    status, body = fetch(url, headers)
    if status == 404:
        raise BadConfig(f"{source}: the registry does not know this package ({url})")
    if status == 429 or status >= 500:
        raise RegistryUnavailable(f"{url}: HTTP {status}")
    if status != 200:
        raise RegistryUnavailable(f"{url}: unexpected HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise RegistryUnavailable(f"{url}: the answer is not JSON") from None


def _pypi(index: str, package: str, fetch: Fetch) -> list[tuple[str, bool]]:
    """PEP 691 (and PEP 700's ``versions``): a version is yanked when all its files are."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    name = canonicalize_name(package)
    doc = _get_json(f"{index.rstrip('/')}/{name}/", {"Accept": PEP691}, fetch, f"pypi:{package}")
    files: dict[str, list[bool]] = {}
    for f in doc.get("files", []) if isinstance(doc, dict) else []:
        filename = str(f.get("filename", ""))
        try:
            version = (parse_wheel_filename(filename)[1] if filename.endswith(".whl")
                       else parse_sdist_filename(filename)[1])
        except (InvalidSdistFilename, InvalidWheelFilename):
            continue
        files.setdefault(str(version), []).append(bool(f.get("yanked")))
    listed = doc.get("versions") if isinstance(doc, dict) else None
    names = [str(v) for v in listed] if isinstance(listed, list) else list(files)
    from packaging.version import InvalidVersion, Version

    def yanked(v: str) -> bool:
        try:
            marks = files.get(str(Version(v)), files.get(v, []))
        except InvalidVersion:
            return True
        return not marks or all(marks)  # no file to install, or every file yanked

    return [(v, yanked(v)) for v in names]


def _npm(registry: str, package: str, fetch: Fetch) -> list[tuple[str, bool]]:
    """The npm registry document; npm has no yanked releases (unpublished ones are gone)."""
    name = quote(package, safe="@")
    doc = _get_json(f"{registry.rstrip('/')}/{name}", {"Accept": "application/json"}, fetch, f"npm:{package}")
    versions = doc.get("versions") if isinstance(doc, dict) else None
    return [(str(v), False) for v in (versions or {})]


# ---------------------------------------------------------------- the gatekeeper's hook


def attach(github: Any, repo: str, data: dict[str, Any], fetch: Fetch = http_get, *,
           read: Callable[[], str | None] | None = None) -> dict[str, Any]:
    """``IssueQueued`` data with ``matrix_config`` when the repository has a ``reproduce.yml``
    (``read``: the file's text, e.g. through the gatekeeper's cache; default: GitHub's now).
    Raises :class:`BadConfig` (skip ``bad_config``) or :class:`RegistryUnavailable` (retry)."""
    from gip.adapters.github import errors as gh_errors

    try:
        text = read() if read is not None else github.get_file(repo, CONFIG_PATH)
    except gh_errors.Forbidden as exc:  # a token or App without contents:read: a single run
        log.warning("%s: cannot read %s (%s); running without a matrix", repo, CONFIG_PATH, exc)
        return data
    if text is None:
        return data
    config = resolve(parse(text), fetch)
    log.info("%s: matrix over %d version(s) from %s", repo, len(config.versions), config.source)
    return {**data, "matrix_config": config.to_event()}


def decide(github: Any, repo: str, data: dict[str, Any], fetch: Fetch = http_get, *,
           read: Callable[[], str | None] | None = None) -> tuple[str, dict[str, Any]]:
    """The gatekeeper's hook for a run it would queue: ``("IssueQueued", data + matrix_config)``,
    or ``("IssueSkipped", bad_config)``. :class:`RegistryUnavailable` propagates (retry)."""
    try:
        return "IssueQueued", attach(github, repo, data, fetch, read=read)
    except BadConfig as exc:
        log.warning("%s: %s", repo, exc.detail)
        return "IssueSkipped", {"reason": "bad_config", "run": data["run"], "sender": data["sender"],
                                "detail": exc.detail[:1000]}
