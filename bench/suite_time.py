"""`make test` from a fresh clone, old revision against new, side by side (printed, not a timed test).

Issue 13's goal: `make test` from a fresh clone in at most half the time it took at a140d29 (the
commit the issue was filed against). This clones the current repository twice into a temporary
directory, at ``--old`` (default a140d29) and ``--new`` (default HEAD; committed work only), and
on this machine, one after the other:

1. setup, each clone in turn: ``make venv`` (and the checkov venv where the Makefile has one),
   with one pip cache shared by both builds (``--pip-cache``), so neither downloads more;
2. ``make test`` in the old clone, then in the new one: lint and pytest, timed wall-clock.

It prints the seconds of each phase, pytest's own seconds and test counts (from its summary
line), and the ratios new/old. Both suites run on the same machine back to back, so the ratio
is fair where the absolute seconds are not (shared machines are noisy). It takes as long as
both suites together plus two venv builds (tens of minutes): it is not part of ``make bench``.

Run: ``.venv/bin/python bench/suite_time.py [--old REV] [--new REV] [--pytest-args ARGS]``;
``--dry-run`` prints the plan only. A quick proof that it works end to end:
``bench/suite_time.py --pytest-args "-k test_layout"``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ISSUE_COMMIT = "a140d29"
SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s(?: \([\d:]+\))? =+$")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")
TESTS = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


@dataclass
class Run:
    """One revision's clone and what it took."""

    label: str
    rev: str
    sha: str
    path: Path
    setup_s: float = 0.0
    test_s: float = 0.0
    exit_code: int | None = None
    pytest_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def tests(self) -> int:
        return sum(self.counts.get(k, 0) for k in TESTS)


def parse_summary(output: str) -> tuple[float | None, dict[str, int]]:
    """Pure: pytest's seconds and counts from its last summary line (``None, {}`` when absent)."""
    for line in reversed(output.splitlines()):
        match = SUMMARY.match(line.strip())
        if match:
            counts = {kind.rstrip("s") if kind.startswith(("error", "warning")) else kind: int(n)
                      for n, kind in COUNT.findall(match["counts"])}
            return float(match["seconds"]), counts
    return None, {}


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def sh(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, *, dry: bool) -> tuple[float, int]:
    """Run ``cmd``, appending its output to ``log``; (wall-clock seconds, exit code)."""
    print(f"  $ (cd {cwd} && {shlex.join(cmd)}) >> {log}", flush=True)
    if dry:
        return 0.0, 0
    started = time.perf_counter()
    with log.open("a") as out:
        code = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    return time.perf_counter() - started, code


def checkov_stamp(clone: Path, env: dict[str, str]) -> str:
    """The checkov venv's stamp target, when this revision's Makefile has one (GNU make --eval)."""
    done = subprocess.run(["make", "--no-print-directory", "--eval", "print-stamp: ; @echo $(CHECKOV_STAMP)",
                           "print-stamp"], cwd=clone, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def setup(run: Run, env: dict[str, str], *, dry: bool) -> bool:
    print(f"{run.label} ({run.rev} = {run.sha[:10]}): clone and venv", flush=True)
    log = run.path.parent / f"{run.label}.log"
    if not dry:
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(run.path)], check=True)
        git("checkout", "--quiet", run.sha, cwd=run.path)
    seconds, code = sh(["make", "venv"], run.path, env, log, dry=dry)
    stamp = checkov_stamp(run.path, env) if not dry else ""
    if code == 0 and stamp:
        more, code = sh(["make", stamp], run.path, env, log, dry=dry)
        seconds += more
    run.setup_s = seconds
    if code:
        print(f"  setup failed (exit {code}): see {log}")
    return code == 0


def test(run: Run, env: dict[str, str], pytest_args: str, *, dry: bool) -> None:
    print(f"{run.label} ({run.rev} = {run.sha[:10]}): make test", flush=True)
    log = run.path.parent / f"{run.label}.log"
    cmd = ["make", "test"] + ([f"PYTEST_ARGS={pytest_args}"] if pytest_args else [])
    run.test_s, run.exit_code = sh(cmd, run.path, env, log, dry=dry)
    if not dry:
        run.pytest_s, run.counts = parse_summary(log.read_text(errors="replace"))


def ratio(new: float | None, old: float | None) -> str:
    return f"{new / old:.2f}" if new is not None and old else "n/a"


def report(old: Run, new: Run) -> None:
    print()
    print(f"{'':4} {'revision':12} {'setup s':>8} {'make test s':>12} {'pytest s':>9} {'tests':>6} "
          f"{'passed':>7} {'failed':>7} {'skipped':>8} {'error':>6} {'exit':>5}")
    for run in (old, new):
        pytest_s = f"{run.pytest_s:.1f}" if run.pytest_s is not None else "n/a"
        print(f"{run.label:4} {run.sha[:10]:12} {run.setup_s:8.1f} {run.test_s:12.1f} {pytest_s:>9} "
              f"{run.tests:6d} {run.counts.get('passed', 0):7d} {run.counts.get('failed', 0):7d} "
              f"{run.counts.get('skipped', 0):8d} {run.counts.get('error', 0):6d} {run.exit_code!s:>5}")
    print(f"new/old: make test {ratio(new.test_s, old.test_s)}, pytest {ratio(new.pytest_s, old.pytest_s)}, "
          f"setup {ratio(new.setup_s, old.setup_s)} (the goal: make test at most 0.50)")
    print(f"cpus: {os.cpu_count()}; load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=ISSUE_COMMIT, help=f"the old revision (default {ISSUE_COMMIT})")
    parser.add_argument("--new", default="HEAD", help="the new revision (default HEAD; committed work only)")
    parser.add_argument("--pytest-args", default="", help="PYTEST_ARGS for both runs, e.g. '-k test_layout'")
    parser.add_argument("--workdir", help="where the clones go (default: a new temporary directory)")
    parser.add_argument("--pip-cache", help="the pip cache both venv builds share (default: <workdir>/pip-cache)")
    parser.add_argument("--keep", action="store_true", help="keep the clones and logs afterwards")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="gip-suite-time-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(args.pip_cache or work / "pip-cache")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PIP_CACHE_DIR"] = str(cache)
    runs = [Run(label, rev, git("rev-parse", "--verify", f"{rev}^{{commit}}"), work / label)
            for label, rev in (("old", args.old), ("new", args.new))]
    print(f"workdir {work}; pip cache {cache}; PYTEST_ARGS={args.pytest_args!r}", flush=True)
    try:
        if all(setup(run, env, dry=args.dry_run) for run in runs):
            for run in runs:
                test(run, env, args.pytest_args, dry=args.dry_run)
        report(*runs)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            for path in [run.path for run in runs] + ([] if args.pip_cache else [cache]):
                shutil.rmtree(path, ignore_errors=True)
            if args.dry_run and not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
            print(f"logs: {work}/old.log, {work}/new.log" if not args.dry_run else "dry run: nothing ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
