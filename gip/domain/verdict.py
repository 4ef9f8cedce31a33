"""Verdict logic. PURE: what happened in, one of the four contract verdicts out.

- ``no_repro_found``: nothing runnable (no snippet, or node absent for a JS/TS snippet).
- ``broken_repro``: the snippet could not start (syntax error, missing interpreter).
- ``reproduced``: it exited non-zero (a timeout counts: it did not finish), or its output
  contains the error text the issue quotes.
- ``not_reproduced``: it exited 0 and printed none of the quoted error text.

The issue author's quoted text goes into the reason as a code span (it is untrusted: the
comment keeps it code, see :mod:`gip.domain.markdown`). An infrastructure failure (assume-role, S3) is never a verdict: the loop records
``IssueProcessingFailed`` instead, so it never reaches this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from gip.domain.markdown import code_span
from gip.domain.repro import output_matches

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not_reproduced"
BROKEN_REPRO = "broken_repro"
NO_REPRO_FOUND = "no_repro_found"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, BROKEN_REPRO, NO_REPRO_FOUND)


@dataclass(frozen=True)
class Verdict:
    """A verdict and the one-line reason shown on the issue."""

    verdict: str
    reason: str


def no_repro(reason: str) -> Verdict:
    """Nothing runnable was found; ``reason`` says why."""
    return Verdict(NO_REPRO_FOUND, reason)


def decide(
    *,
    exit_code: int | None,
    output: str,
    expected_errors: tuple[str, ...] | list[str] = (),
    could_not_start: str | None = None,
    timed_out: bool = False,
    timeout_s: float | None = None,
) -> Verdict:
    """Decide the verdict of a snippet that was (or could not be) started."""
    if could_not_start:
        return Verdict(BROKEN_REPRO, f"the snippet could not start: {could_not_start}")
    matched = output_matches(output, expected_errors)
    if timed_out:
        limit = f" after {timeout_s:g}s" if timeout_s else ""
        return Verdict(REPRODUCED, f"the snippet did not finish{limit}; its process group was killed")
    if exit_code is None:
        return Verdict(BROKEN_REPRO, "the snippet produced no exit status")
    if exit_code != 0:
        extra = f" and printed the quoted error {code_span(_short(matched))}" if matched else ""
        return Verdict(REPRODUCED, f"the snippet exited with code {exit_code}{extra}")
    if matched:
        return Verdict(REPRODUCED, f"the snippet exited 0 but printed the quoted error {code_span(_short(matched))}")
    if expected_errors:
        return Verdict(NOT_REPRODUCED, "the snippet exited 0 without the quoted error text")
    return Verdict(NOT_REPRODUCED, "the snippet exited 0")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
