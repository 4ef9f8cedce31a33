"""The local runtime's wait knobs (gip/local/knobs.py): unset they change nothing, set they
replace the stream retries and the reconcile period, and a bad value is one line, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gip.errors import ConfigError
from gip.local import knobs
from gip.local.aws_setup import Schedule
from gip.local.lambdas import Function
from gip.local.schedules import build_jobs
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {
    f"arn:aws:lambda:us-east-1:123456789012:function:p-{name}": Function(
        name=f"p-{name}", arn=f"arn:aws:lambda:us-east-1:123456789012:function:p-{name}",
        handler=f"handlers.{name}.handler")
    for name in ("reconcile", "sweeper", "redeliver")
}


def _schedule(name: str, rate_s: int) -> Schedule:
    return Schedule(rule_name=f"p-{name}-schedule", rule_arn=f"arn:aws:events:us-east-1:123456789012:rule/p-{name}",
                    rate_s=rate_s, target_arns=(f"arn:aws:lambda:us-east-1:123456789012:function:p-{name}",))


def _periods(periods: dict[str, float]) -> dict[str, float]:
    jobs = build_jobs([_schedule("reconcile", 3600), _schedule("sweeper", 900), _schedule("redeliver", 900)],
                      functions=FUNCTIONS,
                      load=lambda f: (lambda event, context: None), sqs=None, queue_url=str,
                      account="123456789012", region="us-east-1", periods=periods)
    return {job.name: job.period_s for job in jobs}


def test_unset_knobs_keep_the_template_and_the_compressed_clock() -> None:
    got = knobs.from_env({"GIP_PREFIX": "p"})
    assert got == knobs.Knobs()
    assert got.max_retries(100) == 100 and got.stream_retry_s == 0.2
    assert _periods(got.periods()) == {"p-reconcile-schedule": 4.0, "p-sweeper-schedule": 2.0,
                                       "p-redeliver-schedule": 30.0}


def test_set_knobs_replace_the_retries_their_delay_and_the_named_periods_only() -> None:
    got = knobs.from_env({"GIP_LOCAL_STREAM_RETRIES": "3", "GIP_LOCAL_STREAM_RETRY_S": "0.05",
                          "GIP_LOCAL_RECONCILE_S": " 1 ", "GIP_LOCAL_REDELIVER_S": "5"})
    assert got.max_retries(100) == 3 and got.stream_retry_s == 0.05
    assert got.max_retries(-1) == 3  # also when the mapping retries until the record expires
    assert knobs.from_env({"GIP_LOCAL_STREAM_RETRIES": "0"}).max_retries(100) == 0  # park at once
    assert _periods(got.periods()) == {"p-reconcile-schedule": 1.0, "p-sweeper-schedule": 2.0,
                                       "p-redeliver-schedule": 5.0}
    only = knobs.from_env({"GIP_LOCAL_REDELIVER_S": "5"})
    assert _periods(only.periods()) == {"p-reconcile-schedule": 4.0, "p-sweeper-schedule": 2.0,
                                        "p-redeliver-schedule": 5.0}


@pytest.mark.parametrize("name, value, message", [
    ("GIP_LOCAL_STREAM_RETRIES", "many", "GIP_LOCAL_STREAM_RETRIES must be a whole number from 0 to 10000, not 'many'"),
    ("GIP_LOCAL_STREAM_RETRIES", "-1", "GIP_LOCAL_STREAM_RETRIES must be a whole number from 0 to 10000, not '-1'"),
    ("GIP_LOCAL_STREAM_RETRIES", "2.5", "GIP_LOCAL_STREAM_RETRIES must be a whole number from 0 to 10000, not '2.5'"),
    ("GIP_LOCAL_STREAM_RETRY_S", "0", "GIP_LOCAL_STREAM_RETRY_S must be a number of seconds from 0.01 to 60, not '0'"),
    ("GIP_LOCAL_REDELIVER_S", "0.1", "GIP_LOCAL_REDELIVER_S must be a number of seconds from 0.5 to 3600, not '0.1'"),
    ("GIP_LOCAL_RECONCILE_S", "nan", "GIP_LOCAL_RECONCILE_S must be a number of seconds from 0.5 to 3600, not 'nan'"),
])
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        knobs.from_env({name: value})
    assert str(raised.value) == message


@pytest.mark.server
def test_a_bad_knob_stops_the_local_stack_with_one_line_before_it_deploys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "GIP_"))}
    done = subprocess.run(
        [sys.executable, "bootstrap.py", "--org", "o-example0000", "--local", "--port", str(free_port()),
         "--aws-port", str(free_port()), "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT), "GIP_LOCAL_STREAM_RETRIES": "lots"},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: GIP_LOCAL_STREAM_RETRIES must be a whole number from 0 to 10000, not 'lots'"]
    assert "deploying" not in done.stdout and "Traceback" not in done.stdout + done.stderr
