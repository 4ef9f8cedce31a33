"""The report in a real browser: headless Chromium renders it to PNG.

Checks: no console message, one Gantt row per account in the DOM Chromium built, and a
screenshot that is not blank. Skips with a reason where Chromium is absent (``make test``
installs Debian's ``chromium``). ``GIP_UPDATE_SCREENSHOT=1`` copies the screenshot to
docs/report.png (the README shows it).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from gip.domain.envelope import parse_iso
from gip.report import render
from tests.pngread import pixels
from tests.report_log import demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
ROOT = Path(__file__).resolve().parent.parent
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium(tmp_path: Path, page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
               "--window-size=1280,900", "--virtual-time-budget=3000", *flags, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def test_the_console_check_sees_a_console_error(tmp_path: Path) -> None:
    """The detector below is not vacuous: a page that logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom-123")</script></body></html>')
    done = chromium(tmp_path, bad, f"--screenshot={tmp_path / 'bad.png'}")
    assert any("boom-123" in line for line in console_messages(done.stderr)), done.stderr[-2000:]


def test_chromium_renders_the_report(tmp_path: Path) -> None:
    events, accounts = demo()
    page = tmp_path / "report.html"
    end = parse_iso(max(e["occurred_at"] for e in events)) + timedelta(minutes=20)  # the quarantine shows
    page.write_text(render(events, end=end, drift=[]))
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, page, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []

    dom = chromium(tmp_path, page, "--dump-dom")
    rows = re.findall(r'<g class="row" data-account="(\d{12})"', dom.stdout)
    assert len(rows) == accounts == len(set(rows))
    assert dom.stdout.count('<rect class="Q"') == 1

    width, height, bpp, data = pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    grey = [sum(data[i:i + 3]) // 3 for i in range(0, len(data), bpp * 5)]
    assert statistics.pvariance(grey) > 500  # a blank page is one colour: variance 0
    inked = sum(v < 200 for v in grey) / len(grey)
    assert 0.02 < inked < 0.9
    if os.environ.get("GIP_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "report.png")
