"""Version matrix and bisect, the pure core (issue 17): config schema, version order, the
reported version, the matrix plan, and bisect's three properties under hypothesis."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from gip.domain.matrix import (
    BROKEN_REPRO,
    CONFIG_SCHEMA,
    FIXED_IN_LATEST,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_REPRODUCED_ON_REPORTED,
    REGRESSED,
    REPRODUCED,
    STILL_REPRODUCES,
    MatrixConfig,
    bisect,
    find_version,
    order_versions,
    reported_version,
)
from gip.domain.matrix_run import from_event, plan, run_matrix, sentence
from gip.domain.regex_guard import MAX_SCAN_CHARS, pattern_problem

PROPS = settings(max_examples=60, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
VERSIONS = tuple(f"1.{i}.0" for i in range(7))  # 1.0.0 .. 1.6.0
BODY = "### Version\n\n1.1.0\n\n### Reproduction Steps\n\n```sh\nexit 1\n```\n"


def counting(oracle):
    calls: list[str] = []

    def run(version: str) -> str:
        calls.append(version)
        return oracle(version)
    return run, calls


# ---------------------------------------------------------------- config schema


def errors(doc):
    return [e.message for e in Draft202012Validator(CONFIG_SCHEMA).iter_errors(doc)]


def test_schema_accepts_the_issue_example_and_fills_defaults():
    doc = {"versions": {"source": "pypi:requests", "index": "https://pypi.org/simple",
                        "include_prereleases": False},
           "reported": "### Version", "matrix": ["reported", "latest"], "bisect": True,
           "max_runs": 8, "clean_between": False}
    assert errors(doc) == []
    config = MatrixConfig.from_mapping({"versions": {"source": "npm:@scope/pkg"}})
    assert (config.source, config.matrix, config.bisect, config.max_runs) == \
        ("npm:@scope/pkg", ("reported", "latest"), False, 8)


@pytest.mark.parametrize("doc, needle", [
    ({}, "'versions' is a required property"),
    ({"versions": {"source": "list"}}, "'list' is a required property"),
    ({"versions": {"source": "cargo:x"}}, "does not match"),
    ({"versions": {"source": "list", "list": ["1"]}, "max_runs": 0}, "less than the minimum"),
    ({"versions": {"source": "list", "list": ["1"]}, "bisect": "yes"}, "is not of type 'boolean'"),
    ({"versions": {"source": "list", "list": ["1"]}, "colour": 1}, "Additional properties"),
])
def test_schema_rejects_with_a_specific_message(doc, needle):
    assert any(needle in message for message in errors(doc)), errors(doc)


def test_config_round_trips_through_the_event_form():
    config = MatrixConfig.from_mapping({"versions": {"source": "list", "list": ["1.0", "2.0"]},
                                        "bisect": True, "max_runs": 5})
    resolved = MatrixConfig(**{**config.__dict__, "versions": ("1.0", "2.0")})
    back = MatrixConfig.from_mapping(resolved.to_event())
    assert (back.versions, back.bisect, back.max_runs, back.source) == (("1.0", "2.0"), True, 5, "list")


# ---------------------------------------------------------------- versions


def test_order_versions_sorts_semantically_and_drops_yanked_and_prereleases():
    pairs = [("1.10.0", False), ("1.2.0", False), ("1.9.0", True), ("2.0.0rc1", False),
             ("1.2", False), ("not-a-version", False), ("1.3.0.dev1", False)]
    assert order_versions(pairs) == ("1.2.0", "1.10.0")
    assert order_versions(pairs, include_prereleases=True) == ("1.2.0", "1.3.0.dev1", "1.10.0", "2.0.0rc1")


def test_find_version_matches_by_version_equality():
    assert find_version(VERSIONS, "v1.4") == 4
    assert find_version(VERSIONS, "9.9") is None
    assert find_version(VERSIONS, "garbage") is None


@pytest.mark.parametrize("body, pattern, expected", [
    (BODY, "### Version", "1.1.0"),
    ("### Version\n\n_No response_\n\n### Other\n\n2.0\n", "### Version", None),
    ("### Package version\n\nv2.3.4 on linux\n", "### Package version", "2.3.4"),
    ("I use mylib==0.9.1 here", r"mylib==(\S+)", "0.9.1"),
    ("nothing", r"mylib==(\S+)", None),
    ("mylib==1", r"mylib==\S+", None),  # a regex without a group finds nothing
    ("x", r"(unclosed", None),
])
def test_reported_version(body, pattern, expected):
    assert reported_version(body, pattern) == expected


# ---------------------------------------------------------------- the plan and the summary


def config(**kw):
    return MatrixConfig(source="list", versions=VERSIONS, **kw)


def below(boundary: str):
    return lambda v: REPRODUCED if find_version(VERSIONS, v) < find_version(VERSIONS, boundary) else NOT_REPRODUCED


def test_plan_is_reported_then_latest_and_capped():
    assert plan(config(), BODY) == (["1.1.0", "1.6.0"], "1.1.0", "")
    assert plan(config(matrix=("latest", "1.3", "reported"), max_runs=2), BODY)[0] == ["1.6.0", "1.3.0"]
    cells, reported, note = plan(config(), "### Version\n\n7.0.0\n")
    assert (cells, reported) == (["1.6.0"], None) and "7.0.0 is not among" in note


def test_fixed_in_the_issue_example_within_two_plus_log2_five():
    oracle, calls = counting(below("1.4.0"))
    result = run_matrix(config(bisect=True), BODY, oracle)
    assert (result.summary, result.fixed_in, result.introduced_in) == (FIXED_IN_LATEST, "1.4.0", None)
    assert calls[:2] == ["1.1.0", "1.6.0"] and len(calls) == len(set(calls))
    assert len(calls) <= 2 + math.ceil(math.log2(5))
    assert sentence(result) == "Reproduces on 1.1.0 (reported); fixed in 1.4.0; latest 1.6.0 passes."


def test_regressed_names_introduced_in():
    oracle = lambda v: NOT_REPRODUCED if v < "1.3.0" else REPRODUCED  # noqa: E731
    result = run_matrix(config(bisect=True), BODY, oracle)
    assert (result.summary, result.introduced_in, result.fixed_in) == (REGRESSED, "1.3.0", None)
    assert "introduced in 1.3.0; latest 1.6.0 reproduces" in sentence(result)


@pytest.mark.parametrize("reported, latest, summary", [
    (REPRODUCED, REPRODUCED, STILL_REPRODUCES),
    (NOT_REPRODUCED, NOT_REPRODUCED, NOT_REPRODUCED_ON_REPORTED),
    (BROKEN_REPRO, NOT_REPRODUCED, INCONCLUSIVE),
])
def test_summary_without_a_search(reported, latest, summary):
    oracle, calls = counting(lambda v: reported if v == "1.1.0" else latest)
    result = run_matrix(config(bisect=True), BODY, oracle)
    assert result.summary == summary and calls == ["1.1.0", "1.6.0"]
    assert result.fixed_in is None and result.introduced_in is None


def test_without_bisect_two_runs_and_no_boundary():
    oracle, calls = counting(below("1.4.0"))
    result = run_matrix(config(), BODY, oracle)
    assert (result.summary, result.fixed_in, len(calls)) == (FIXED_IN_LATEST, None, 2)


def test_a_hundred_versions_take_at_most_two_plus_seven_runs():
    versions = tuple(f"0.{i}.0" for i in range(100))
    body = "### Version\n\n0.0.0\n"
    for boundary in (1, 2, 37, 50, 98, 99):
        oracle, calls = counting(lambda v, b=boundary: REPRODUCED if int(v.split(".")[1]) < b else NOT_REPRODUCED)
        result = run_matrix(MatrixConfig(source="list", versions=versions, bisect=True, max_runs=9), body, oracle)
        assert result.fixed_in == f"0.{boundary}.0" and len(calls) <= 2 + 7, (boundary, calls)


def test_event_form_round_trips_for_the_comment():
    result = run_matrix(config(bisect=True), BODY, below("1.4.0"))
    data = {"matrix": [{"version": v, "verdict": x} for v, x in result.cells.items()],
            "summary": result.summary, "reported_version": "1.1.0", "latest_version": "1.6.0",
            "fixed_in": "1.4.0"}
    assert sentence(from_event(data)) == sentence(result)
    assert from_event({"verdict": "reproduced"}) is None


# ---------------------------------------------------------------- bisect properties


@st.composite
def monotone_case(draw):
    n = draw(st.integers(min_value=2, max_value=130))
    boundary = draw(st.integers(min_value=1, max_value=n - 1))
    versions = [f"{i}.0" for i in range(n)]
    return versions, boundary


@PROPS
@given(monotone_case(), st.booleans())
def test_bisect_finds_the_boundary_of_any_monotone_oracle(case, introduced):
    versions, boundary = case
    low, high = (NOT_REPRODUCED, REPRODUCED) if introduced else (REPRODUCED, NOT_REPRODUCED)
    oracle, calls = counting(lambda v: low if versions.index(v) < boundary else high)
    budget = math.ceil(math.log2(len(versions) - 1)) if len(versions) > 2 else 0
    found = bisect(versions, 0, len(versions) - 1, oracle, max_runs=budget,
                   observed={versions[0]: low, versions[-1]: high})
    assert not found.inconclusive, found
    assert found.boundary == versions[boundary]
    assert found.runs == len(calls) <= budget
    assert versions[0] not in calls and versions[-1] not in calls  # the matrix cells are not re-run


verdicts = st.sampled_from([REPRODUCED, NOT_REPRODUCED, BROKEN_REPRO])


@PROPS
@given(st.lists(verdicts, min_size=2, max_size=80), st.integers(min_value=0, max_value=12))
def test_bisect_never_exceeds_the_run_cap(table, cap):
    versions = [f"{i}.0" for i in range(len(table))]
    oracle, calls = counting(lambda v: table[versions.index(v)])
    found = bisect(versions, 0, len(versions) - 1, oracle, max_runs=cap,
                   observed={versions[0]: REPRODUCED, versions[-1]: NOT_REPRODUCED})
    assert len(calls) == found.runs <= cap
    assert len(set(calls)) == len(calls)


@PROPS
@given(st.lists(verdicts, min_size=3, max_size=80), st.data())
def test_bisect_is_honest_for_any_oracle(table, data):
    """Whatever the oracle: a named boundary is a real change between two tested neighbours
    (only broken cells between them) and the observations agree with it; otherwise inconclusive."""
    table = [REPRODUCED, *table[1:-1], NOT_REPRODUCED]
    versions = [f"{i}.0" for i in range(len(table))]
    # the matrix may have run extra cells too (a literal version in `matrix:`)
    extra = data.draw(st.lists(st.integers(min_value=1, max_value=len(table) - 2), max_size=3))
    observed = {versions[i]: table[i] for i in (0, len(table) - 1, *extra)}
    found = bisect(versions, 0, len(versions) - 1, lambda v: table[versions.index(v)], max_runs=40,
                   observed=observed)
    if found.inconclusive:
        assert found.boundary is None and found.reason
        return
    k = versions.index(found.boundary)
    assert table[k] == NOT_REPRODUCED and found.observed[found.boundary] == NOT_REPRODUCED
    j = k - 1
    while table[j] == BROKEN_REPRO:
        assert versions[j] in found.skipped or versions[j] in found.observed
        j -= 1
    assert table[j] == REPRODUCED and found.observed[versions[j]] == REPRODUCED
    sides = [found.observed[v] for v in versions if found.observed.get(v, BROKEN_REPRO) != BROKEN_REPRO]
    assert sides == sorted(sides, key=lambda s: s == NOT_REPRODUCED)  # monotone


def test_bisect_says_inconclusive_when_the_matrix_contradicts_monotonicity():
    versions = list(VERSIONS)
    table = dict(zip(versions, [REPRODUCED, REPRODUCED, NOT_REPRODUCED, REPRODUCED,
                                NOT_REPRODUCED, NOT_REPRODUCED, NOT_REPRODUCED], strict=True))
    found = bisect(versions, 1, 6, table.__getitem__, max_runs=8,
                   observed={"1.1.0": REPRODUCED, "1.6.0": NOT_REPRODUCED, "1.2.0": NOT_REPRODUCED,
                             "1.3.0": REPRODUCED})
    assert found.inconclusive and found.boundary is None and "one boundary" in found.reason


def test_bisect_skips_broken_cells_and_says_so():
    versions = list(VERSIONS)
    table = dict(zip(versions, [REPRODUCED, REPRODUCED, REPRODUCED, BROKEN_REPRO,
                                NOT_REPRODUCED, NOT_REPRODUCED, NOT_REPRODUCED], strict=True))
    found = bisect(versions, 1, 6, table.__getitem__, max_runs=8,
                   observed={"1.1.0": REPRODUCED, "1.6.0": NOT_REPRODUCED})
    assert (found.boundary, found.skipped) == ("1.4.0", ("1.3.0",))
    table["1.2.0"] = BROKEN_REPRO
    table["1.4.0"] = BROKEN_REPRO
    table["1.5.0"] = BROKEN_REPRO
    found = bisect(versions, 1, 6, table.__getitem__, max_runs=8,
                   observed={"1.1.0": REPRODUCED, "1.6.0": NOT_REPRODUCED})
    assert not found.inconclusive and found.boundary == "1.6.0"  # every cell between was broken
    assert sorted(found.skipped) == ["1.2.0", "1.3.0", "1.4.0", "1.5.0"]


def test_bisect_cap_reached_is_inconclusive_with_the_range():
    versions = [f"{i}.0" for i in range(100)]
    found = bisect(versions, 0, 99, lambda v: REPRODUCED if float(v) < 60 else NOT_REPRODUCED,
                   max_runs=2, observed={"0.0": REPRODUCED, "99.0": NOT_REPRODUCED})
    assert found.inconclusive and found.runs == 2 and "run cap reached between" in found.reason


# ---------------------------------------------------------------- a repository's regex on a hostile body


@pytest.mark.parametrize("pattern", [
    r"mylib==(\S+)", r"[Vv]ersion:\s*v?(\d+(?:\.\d+)*)", r"(?im)^\s*version\s*[:=]\s*v?([0-9][0-9a-z.+-]*)\s*$",
    r"version[:=]\s*([\w.]+)", r"Version: (.*)\s*$", r"(\d+)(?=\s)", r"(?:\.\d+)*(\d)",
])
def test_ordinary_version_patterns_are_accepted(pattern):
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(a+)+$", "a repeat holds another repeat"),  # exponential: the classic
    (r"(\w+\s?)+$", "a repeat holds another repeat"),
    (r"(x)(?:a*)*", "a repeat holds another repeat"),
    (r"(a|ab)*(c)", "a repeat holds an alternation"),
    (r"(a)(?:\1)+", "a backreference"),
    (r"\s*\s*\s*(x)", "three unbounded repeats"),  # cubic
    (r"(.*)(.*)(.*)x", "three unbounded repeats"),
    (r"(a)b|c*c*c*", "three unbounded repeats"),  # inside an alternation too
    (r"mylib==\S+", "has no group"),
    (r"(unclosed", "not a regular expression"),
])
def test_patterns_that_could_hang_on_a_hostile_body_are_refused_and_say_why(pattern, why):
    assert why in (pattern_problem(pattern) or "")
    assert reported_version("a" * 30 + "!", pattern) is None  # refused: never run


def test_a_refused_pattern_returns_at_once_on_the_body_that_would_hang_it():
    started = time.thread_time()
    assert reported_version("a" * 5_000 + "!", r"(a+)+$") is None  # unguarded: longer than the universe
    assert time.thread_time() - started < 0.5


def test_an_accepted_pattern_sees_only_the_start_of_the_body_and_stays_quick():
    assert reported_version("x" * (MAX_SCAN_CHARS - 20) + " mylib==1.2.3", r"mylib==(\S+)") == "1.2.3"
    assert reported_version("x" * MAX_SCAN_CHARS + " mylib==1.2.3", r"mylib==(\S+)") is None
    started = time.thread_time()  # quadratic at worst, on MAX_SCAN_CHARS characters at most
    assert reported_version("a" * 65_536, r"(.*)x") is None
    assert time.thread_time() - started < 5.0


def test_a_heading_line_of_64k_hashes_does_not_backtrack():
    started = time.thread_time()  # the old heading regex took 40 s on this line
    assert reported_version("### " + "#" * 65_000 + "x\n\n1.0\n") is None
    assert reported_version("  ## version  \t##  \n x 2.0") == "2.0"
    assert time.thread_time() - started < 0.5


def test_the_gatekeeper_refuses_such_a_pattern_as_bad_config_with_its_line():
    from gip.services.repo_config import BadConfig, parse

    with pytest.raises(BadConfig) as caught:
        parse("versions:\n  source: list\n  list: [1.0]\nreported: '(a+)+$'\n")
    assert caught.value.line == 4 and "a repeat holds another repeat" in caught.value.detail
    assert parse("versions:\n  source: list\n  list: [1.0]\nreported: 'lib==(\\S+)'\n").reported == r"lib==(\S+)"
