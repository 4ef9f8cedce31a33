"""gip.domain.verdict: the four verdicts (pure)."""

from __future__ import annotations

from gip.domain.verdict import (
    BROKEN_REPRO,
    NO_REPRO_FOUND,
    NOT_REPRODUCED,
    REPRODUCED,
    decide,
    no_repro,
)


def test_non_zero_exit_is_reproduced():
    verdict = decide(exit_code=3, output="boom")
    assert verdict.verdict == REPRODUCED
    assert "code 3" in verdict.reason


def test_exit_zero_with_quoted_error_in_output_is_reproduced():
    verdict = decide(exit_code=0, output="warning\nValueError: frob exploded\n", expected_errors=["ValueError: frob exploded"])
    assert verdict.verdict == REPRODUCED
    assert "frob exploded" in verdict.reason


def test_exit_zero_without_the_error_is_not_reproduced():
    assert decide(exit_code=0, output="ok", expected_errors=["ValueError: x"]).verdict == NOT_REPRODUCED
    assert decide(exit_code=0, output="ok").verdict == NOT_REPRODUCED


def test_could_not_start_is_broken_repro_even_with_an_exit_code():
    verdict = decide(exit_code=1, output="", could_not_start="python syntax error: invalid syntax")
    assert verdict.verdict == BROKEN_REPRO
    assert "syntax" in verdict.reason


def test_timeout_is_reproduced_and_says_so():
    verdict = decide(exit_code=124, output="", timed_out=True, timeout_s=5)
    assert verdict.verdict == REPRODUCED
    assert "5s" in verdict.reason


def test_no_repro_carries_its_reason():
    verdict = no_repro("node is not installed")
    assert (verdict.verdict, verdict.reason) == (NO_REPRO_FOUND, "node is not installed")


def test_the_quoted_error_is_a_code_span_its_backticks_cannot_close():
    quote = "`x` @org/team <img src=y>"
    verdict = decide(exit_code=2, output=f"boom {quote}", expected_errors=[quote])
    assert verdict.reason.endswith(f" and printed the quoted error `` {quote} ``")
    from gip.domain.markdown import split_code_spans
    assert split_code_spans(verdict.reason)[-1] == (True, quote)
