"""Checks requests to the fake GitHub against GitHub's OpenAPI description.

The description is ``generated/api.github.com.json`` of the npm package ``@octokit/openapi``
(version :data:`VERSION`); ``make openapi`` (a prerequisite of ``make test``) fetches it into
``.cache/octokit-openapi/<version>/`` and the Makefile points ``GITHUB_OPENAPI`` at it.

:func:`check` returns the violations of one request, each with the status GitHub answers:

- 404: no operation for the method and path (unknown route, wrong method, or a path parameter
  of the wrong type, e.g. ``/issues/abc``: GitHub's router does not match it either);
- 400: a body that is not JSON (``Problems parsing JSON``);
- 422: a JSON body that does not validate against the operation's ``requestBody`` schema, a
  missing required body, or a declared query parameter that does not validate.

Query parameters the operation does not declare are ignored, as GitHub ignores them. The
``/api/v3`` prefix of a GitHub Enterprise Server base URL is removed first. Loading costs about
0.2 s (90 MB at the peak, 30 MB kept) once per process (measured on 23.0.2; :func:`description`
caches it).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

VERSION = "23.0.2"  # keep in step with OPENAPI_VERSION in the Makefile
ENV = "GITHUB_OPENAPI"
DEFAULT = Path(__file__).resolve().parents[2] / ".cache" / "octokit-openapi" / VERSION / "api.github.com.json"
_URI = "urn:github-openapi"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class DescriptionMissing(RuntimeError):
    """The OpenAPI description file is not there (``make openapi`` fetches it)."""


@dataclass(frozen=True)
class Violation:
    """One way a request breaks GitHub's description; ``status`` is GitHub's answer to it."""

    status: int
    method: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.method} {self.path}: {self.message}"

    def answer(self) -> dict[str, Any]:
        """The JSON document GitHub answers with."""
        docs = "https://docs.github.com/rest"
        if self.status == 404:
            return {"message": "Not Found", "documentation_url": docs, "status": "404"}
        if self.status == 400:
            return {"message": "Problems parsing JSON", "documentation_url": docs, "status": "400"}
        return {"message": "Validation Failed", "errors": [self.message],
                "documentation_url": docs, "status": "422"}


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    rank: tuple[int, ...]  # per segment, 0 literal and 1 templated: the lowest rank wins
    operations: Mapping[str, Any]


class Description:
    """An OpenAPI document, indexed by path template; :meth:`check` checks one request."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self._doc = doc
        self.checked = 0  # requests checked in this process (approximate under threads)
        self._registry: Registry[Any] = Registry().with_resource(_URI, DRAFT4.create_resource(doc))
        self._routes: dict[int, list[_Route]] = {}
        self._deep: list[tuple[_Route, re.Pattern[str]]] = []
        for template, item in doc["paths"].items():
            segments = template.strip("/").split("/")
            pattern = "/".join(re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(s)) for s in segments)
            route = _Route(template, re.compile(pattern), tuple(re.findall(r"\{([^}]+)\}", template)),
                           tuple(0 if "{" not in s else 1 for s in segments), item)
            self._routes.setdefault(len(segments), []).append(route)
            if template.endswith("/{path}"):  # the contents API: GitHub's {path} spans segments
                self._deep.append((route, re.compile(pattern.removesuffix("([^/]+)") + "(.+)")))

    def check(self, method: str, raw_path: str, body: bytes = b"") -> list[Violation]:
        """The violations of one request (``raw_path`` as sent, with its query string)."""
        self.checked += 1
        split = urlsplit(raw_path)
        path = split.path.removeprefix("/api/v3") or "/"
        where = (method.upper(), path)
        found = self._match(path)
        if found is None:
            return [Violation(404, *where, f"no path in GitHub's description matches {path}")]
        route, values = found
        operation = route.operations.get(method.lower())
        if method.lower() not in _METHODS or operation is None:
            allowed = sorted(m.upper() for m in route.operations if m in _METHODS)
            return [Violation(404, *where, f"{route.template} has no {method.upper()} (only {allowed})")]
        params = [self._resolve(p) for p in [*route.operations.get("parameters", []),
                                             *operation.get("parameters", [])]]
        problems = self._path_problems(route, params, values)
        if problems:
            return [Violation(404, *where, p) for p in problems]
        return [Violation(422, *where, p) for p in self._query_problems(params, split.query)] + \
            self._body_problems(route, method.lower(), operation, body, where)

    # ------------------------------------------------------------ parts

    def _match(self, path: str) -> tuple[_Route, dict[str, str]] | None:
        segments = path.strip("/").split("/")
        best: tuple[_Route, dict[str, str]] | None = None
        for route in self._routes.get(len(segments), []):
            m = route.pattern.fullmatch("/".join(segments))
            if m and (best is None or route.rank < best[0].rank):
                best = route, {n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)}
        for route, pattern in [] if best else self._deep:
            if m := pattern.fullmatch("/".join(segments)):
                return route, {n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)}
        return best

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            node = self._registry.resolver(_URI).lookup(node["$ref"]).contents
        return node

    def _deref(self, node: Any, depth: int = 0) -> Any:
        """A small schema (a parameter's) with its ``$ref``s inlined."""
        if depth > 20:
            raise ValueError("a parameter schema nests too deep")
        if isinstance(node, Mapping):
            return {k: self._deref(v, depth + 1) for k, v in self._resolve(node).items()}
        if isinstance(node, list):
            return [self._deref(v, depth + 1) for v in node]
        return node

    def _path_problems(self, route: _Route, params: list[Mapping[str, Any]],
                       values: Mapping[str, str]) -> list[str]:
        problems = []
        for param in params:
            if param.get("in") == "path" and param["name"] in values:
                problems += [f"path parameter {param['name']}: {e}"
                             for e in self._errors(self._deref(param.get("schema", {})),
                                                 _coerce(param, [values[param["name"]]]))]
        return problems

    def _query_problems(self, params: list[Mapping[str, Any]], query: str) -> list[str]:
        given = parse_qs(query, keep_blank_values=True)
        problems = []
        for param in params:
            if param.get("in") != "query":
                continue
            name = param["name"]
            if name not in given:
                if param.get("required"):
                    problems.append(f"query parameter {name} is required")
                continue
            problems += [f"query parameter {name}: {e}"
                         for e in self._errors(self._deref(param.get("schema", {})), _coerce(param, given[name]))]
        return problems

    def _body_problems(self, route: _Route, method: str, operation: Mapping[str, Any], body: bytes,
                       where: tuple[str, str]) -> list[Violation]:
        request_body = self._resolve(operation.get("requestBody", {}))
        content = request_body.get("content", {})
        if "application/json" not in content:
            return []
        if not body.strip():
            return ([Violation(422, *where, "a request body is required")]
                    if request_body.get("required") else [])
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return [Violation(400, *where, f"the body is not JSON: {exc}")]
        pointer = "/".join(p.replace("~", "~0").replace("/", "~1")
                           for p in ("paths", route.template, method, "requestBody"))
        if "$ref" in operation["requestBody"]:  # a shared request body in components
            pointer = operation["requestBody"]["$ref"].removeprefix("#/")
        schema = {"$ref": f"{_URI}#/{pointer}/content/application~1json/schema"}
        return [Violation(422, *where, f"body: {e}") for e in self._errors(schema, doc)]

    def _errors(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        validator = _validator(self, json.dumps(schema, sort_keys=True))
        error = best_match(validator.iter_errors(instance))
        if error is None:
            return []
        at = "/".join(str(p) for p in error.absolute_path)
        return [f"{at + ': ' if at else ''}{error.message}"]


@functools.lru_cache(maxsize=1024)
def _validator(description: Description, schema: str) -> Validator:
    return OAS30WriteValidator(json.loads(schema), registry=description._registry,
                               format_checker=oas30_format_checker)


def _coerce(param: Mapping[str, Any], values: list[str]) -> Any:
    """A query or path string as the type its schema declares (arrays: repeated or comma-separated)."""
    schema = param.get("schema", {})
    if schema.get("type") == "array":
        items = [v for value in values for v in value.split(",")]
        return [_scalar(schema.get("items", {}), v) for v in items]
    return _scalar(schema, values[-1])


def _scalar(schema: Mapping[str, Any], value: str) -> Any:
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def description_path() -> Path:
    """``$GITHUB_OPENAPI``, else this checkout's cache, else (a git worktree) the main checkout's."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if DEFAULT.is_file():
        return DEFAULT
    return _main_checkout_cache() or DEFAULT


def _main_checkout_cache() -> Path | None:
    dot_git = DEFAULT.parents[3] / ".git"
    if not dot_git.is_file():  # not a worktree
        return None
    gitdir = Path(dot_git.read_text().removeprefix("gitdir:").strip())
    common = gitdir / ((gitdir / "commondir").read_text().strip() if (gitdir / "commondir").is_file() else ".")
    shared = common.resolve().parent / DEFAULT.relative_to(DEFAULT.parents[3])
    return shared if shared.is_file() else None


@functools.cache
def description() -> Description:
    """The description, loaded once per process; :class:`DescriptionMissing` if not fetched."""
    return load(description_path())


def load(path: Path) -> Description:
    if not path.is_file():
        raise DescriptionMissing(
            f"GitHub's OpenAPI description is missing at {path}: run `make openapi` (or `make test`) to fetch it")
    with path.open("rb") as f:
        return Description(json.load(f))


def check(method: str, raw_path: str, body: bytes = b"") -> list[Violation]:
    """The violations of one request against the description (see :class:`Description`)."""
    return description().check(method, raw_path, body)
