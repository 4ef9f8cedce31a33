"""The layout (issue 13): one installed library package, ``gip``; thin entry-point trees beside it."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_support import copy_source

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400


def egg_info(tmp_path: Path) -> Path:
    """setuptools' metadata for a copy of the source tree (no build, no network)."""
    src = tmp_path / "src"
    src.mkdir()
    copy_source(src, files=("setup.cfg", "pyproject.toml", "README.md", "bootstrap.py"))
    out = tmp_path / "meta"
    out.mkdir()
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info",
                    "--egg-base", str(out)], cwd=src, check=True, capture_output=True)
    (info,) = out.glob("*.egg-info")
    return info


def test_the_wheel_installs_only_gip_and_the_console_script_points_into_it(tmp_path: Path) -> None:
    info = egg_info(tmp_path)
    assert (info / "top_level.txt").read_text().split() == ["gip"]
    assert "github-issue-processor = gip.cli.main:main" in (info / "entry_points.txt").read_text()
    sources = (info / "SOURCES.txt").read_text().split()
    assert not any(s.startswith(("handlers/", "worker/", "ops/")) for s in sources)


def test_the_console_script_target_can_be_called_without_arguments() -> None:
    from gip.cli.main import main

    params = inspect.signature(main).parameters.values()
    assert all(p.default is not inspect.Parameter.empty for p in params)


def test_no_module_outside_tests_is_over_400_lines() -> None:
    modules = [*ROOT.glob("gip/**/*.py"), *ROOT.glob("handlers/**/*.py"), *ROOT.glob("worker/**/*.py"),
               ROOT / "bootstrap.py"]
    long = {str(m.relative_to(ROOT)): n for m in modules
            if (n := len(m.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_the_old_top_level_packages_are_gone() -> None:
    assert not (ROOT / "ops").exists() and not (ROOT / "handlers" / "core").exists()


ENTRY_POINT_TREES = ("worker", "handlers")


def module_level_imports(source: str) -> list[str]:
    """Pure: the modules a source imports when it is loaded (function bodies excluded; class
    bodies, ``if`` and ``try`` blocks included: they run at import time)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append(child.module)
            visit(child)

    visit(ast.parse(source))
    return found


def test_the_import_scan_sees_nested_module_level_imports_and_skips_function_bodies() -> None:
    source = ("import worker.sandbox\nif True:\n    from handlers import webhook\n"
              "try:\n    import json\nexcept ImportError:\n    pass\n"
              "class C:\n    from worker import procs\n"
              "def lazy():\n    from worker import loop\n")
    assert module_level_imports(source) == ["worker.sandbox", "handlers", "json", "worker"]


def test_the_library_imports_no_entry_point_tree_at_module_level() -> None:
    """gip is installed alone (setup.cfg): a module-level import of worker/ or handlers/ would
    fail in the wheel. Where local mode runs entry-point code it starts it as a process or
    imports it by name when it runs (gip.local.lambdas, gip.local.workers)."""
    leaks = {str(path.relative_to(ROOT)): name for path in ROOT.glob("gip/**/*.py")
             for name in module_level_imports(path.read_text())
             if name.split(".")[0] in ENTRY_POINT_TREES}
    assert leaks == {}


def test_the_files_scheduled_first_are_test_files_and_come_first_in_the_collection(
        request: pytest.FixtureRequest) -> None:
    from tests.conftest import LONGEST_FIRST

    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()] == []
    # the collection this run uses (xdist workers each collect, the same way)
    order = list(dict.fromkeys(item.path.name for item in request.session.items))
    listed = [name for name in order if name in LONGEST_FIRST]
    if len(listed) == len(LONGEST_FIRST):  # the whole suite was collected, not a selection
        assert order[:len(LONGEST_FIRST)] == list(LONGEST_FIRST)
    else:
        assert listed == [name for name in LONGEST_FIRST if name in listed]
