"""``.github/reproduce.yml`` on the gatekeeper's side (issue 17): read through the contents API
of the fake GitHub, validated (the line of the error), versions resolved from a local PEP 691
JSON index (1.0.0 to 1.6.0) or an npm-style registry, copied into ``IssueQueued``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from gip.domain.comment import render_status
from gip.services import repo_config
from gip.services.notifier import plan_for
from gip.services.repo_config import BadConfig, RegistryUnavailable, parse, resolve
from tests.conftest import empty_tables
from tests.fakes import fixtures
from tests.test_gatekeeper import LABEL, NUMBER, REPO, gatekeeper_handle, make_gatekeeper, receive

github_server = fixtures.github_server
RELEASES = [f"1.{i}.0" for i in range(7)]


def _pep691(name: str) -> dict:
    files = [{"filename": f"{name}-{v}.tar.gz", "url": f"x/{v}", "hashes": {}, "yanked": False}
             for v in RELEASES]
    files += [{"filename": f"{name}-1.5.1-py3-none-any.whl", "url": "x", "hashes": {}, "yanked": "broken"},
              {"filename": f"{name}-2.0.0rc1.tar.gz", "url": "x", "hashes": {}, "yanked": False}]
    return {"meta": {"api-version": "1.1"}, "name": name, "files": files,
            "versions": [*RELEASES, "1.5.1", "2.0.0rc1"]}


class Index:
    """A tiny registry: ``/simple/<name>/`` (PEP 691 JSON), ``/npm/<name>``, ``/simple/down/`` 503."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append((self.path, self.headers.get("Accept", "")))
                if self.path == "/simple/down/":
                    status, doc = 503, {"message": "down"}
                elif self.path.startswith("/simple/") and self.path.endswith("/") and "missing" not in self.path:
                    status, doc = 200, _pep691(self.path.split("/")[2])
                elif self.path.startswith("/npm/"):
                    status, doc = 200, {"name": "demo", "versions": {v: {} for v in [*RELEASES, "2.0.0-beta.1"]}}
                else:
                    status, doc = 404, {"message": "not found"}
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", repo_config.PEP691)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index():
    served = Index()
    yield served
    served.stop()


@pytest.fixture
def core(shared_core: SimpleNamespace) -> SimpleNamespace:
    return empty_tables(shared_core)


def config_text(index_url: str, **extra: str) -> str:
    lines = ["versions:", "  source: pypi:Demo_Pkg", f"  index: {index_url}/simple",
             'reported: "### Version"', "bisect: true", "max_runs: 6"]
    return "\n".join(lines + [f"{k}: {v}" for k, v in extra.items()]) + "\n"


# ---------------------------------------------------------------- parse: the line of the error


@pytest.mark.parametrize("text, line, needle", [
    ("versions:\n  source: cargo:x\n", 2, "versions/source: 'cargo:x' does not match"),
    ("versions:\n  source: list\n", 2, "'list' is a required property"),
    ("versions:\n  source: list\n  list: [1.0]\nbisect: true\nmax_runs: 99\n", 5, "max_runs: 99 is greater than"),
    ("versions: [\n  source: x\n", 3, "not valid YAML"),
    ("", 1, "None is not of type 'object'"),
    ("versions:\n  source: list\n  list: [1.0]\ncolour: red\n", 1, "Additional properties"),
])
def test_an_invalid_file_names_its_line(text, line, needle):
    with pytest.raises(BadConfig) as caught:
        parse(text)
    assert caught.value.line == line
    assert f"line {line}: " in caught.value.detail and needle in caught.value.detail


def test_a_valid_file_fills_the_defaults():
    config = parse("versions:\n  source: npm:@scope/demo\n")
    assert (config.matrix, config.bisect, config.max_runs, config.clean_between) == \
        (("reported", "latest"), False, 8, False)


# ---------------------------------------------------------------- resolve: registries


def test_pypi_pep691_drops_yanked_and_prereleases(index):
    config = resolve(parse(config_text(index.url)))
    assert config.versions == tuple(RELEASES)
    assert index.requests == [("/simple/demo-pkg/", repo_config.PEP691)]  # PEP 503 name, JSON asked
    with_pre = resolve(parse(config_text(index.url, include_prereleases="true").replace(
        "include_prereleases: true", "").replace("  index:", "  include_prereleases: true\n  index:")))
    assert with_pre.versions == (*RELEASES, "2.0.0rc1")  # still no yanked 1.5.1


def test_npm_registry_and_a_literal_list(index):
    npm = resolve(parse(f"versions:\n  source: npm:demo\n  index: {index.url}/npm\n"))
    assert npm.versions == tuple(RELEASES)
    listed = resolve(parse("versions:\n  source: list\n  list: [1.10.0, 1.2.0, 1.9]\n"))
    assert listed.versions == ("1.2.0", "1.9", "1.10.0")


def test_an_unreachable_registry_is_retryable_never_a_guess(index):
    with pytest.raises(RegistryUnavailable, match="HTTP 503"):
        resolve(parse(f"versions:\n  source: pypi:down\n  index: {index.url}/simple\n"))
    index.stop()
    with pytest.raises(RegistryUnavailable, match="ConnectionError"):
        resolve(parse(config_text(index.url)))
    index.server = SimpleNamespace(shutdown=lambda: None, server_close=lambda: None)


def test_an_unknown_package_is_bad_config(index):
    with pytest.raises(BadConfig, match="does not know this package"):
        resolve(parse(f"versions:\n  source: pypi:missing\n  index: {index.url}/simple\n"))


# ---------------------------------------------------------------- the gatekeeper


def queue(core, gh, t):
    gh.add_issue(REPO, NUMBER, labels=[LABEL])
    gh.set_permission(REPO, "maintainer-mia", "write")
    return gatekeeper_handle(make_gatekeeper(core, gh, t), [receive(core)])


def test_the_gatekeeper_copies_the_resolved_config_into_issue_queued(core, github_server, index):
    from tests.fakes.clock import FakeTime

    github_server.set_file(REPO, ".github/reproduce.yml", config_text(index.url))
    assert queue(core, github_server, FakeTime()) == {"batchItemFailures": []}
    queued = core.store.read(f"issue-{REPO}#{NUMBER}")[-1]
    assert (queued["type"], queued["schema_version"]) == ("IssueQueued", 2)
    matrix = queued["data"]["matrix_config"]
    assert matrix["versions"] == RELEASES and matrix["bisect"] is True and matrix["max_runs"] == 6
    contents = [r for r in github_server.requests if "/contents/" in r.path]
    assert len(contents) == 1 and len(index.requests) == 1  # the two added calls per issue


def test_an_invalid_file_skips_with_bad_config_and_a_comment_naming_the_line(core, github_server):
    from tests.fakes.clock import FakeTime

    github_server.set_file(REPO, ".github/reproduce.yml", "versions:\n  source: list\nmax_runs: 0\n")
    assert queue(core, github_server, FakeTime()) == {"batchItemFailures": []}
    skipped = core.store.read(f"issue-{REPO}#{NUMBER}")[-1]
    assert skipped["type"] == "IssueSkipped" and skipped["data"]["reason"] == "bad_config"
    assert skipped["data"]["detail"].startswith(".github/reproduce.yml line ")
    issue = core.issues.get(REPO, NUMBER)
    plan = plan_for(issue, skipped["data"])
    assert plan.create  # never queued, so no status comment yet: this one is created
    body = render_status(plan.status)
    assert "`.github/reproduce.yml` is not valid" in body and "reproduce.yml line 3: max_runs: 0 is less than" in body


def test_an_unreachable_registry_fails_the_record_and_appends_nothing(core, github_server, index):
    from tests.fakes.clock import FakeTime

    github_server.set_file(REPO, ".github/reproduce.yml",
                           f"versions:\n  source: pypi:down\n  index: {index.url}/simple\n")
    result = queue(core, github_server, FakeTime())
    assert len(result["batchItemFailures"]) == 1  # SQS retries it
    assert [e["type"] for e in core.store.read(f"issue-{REPO}#{NUMBER}")] == ["IssueReceived"]
