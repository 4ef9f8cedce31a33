"""Matrix cells in the worker (issue 17): worker.loop against moto in-process, REAL snippet
subprocesses; each cell runs with REPRO_VERSION set, in the same lease, its own sandbox."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import replace

import pytest
from moto import mock_aws

from gip.domain.envelope import Cause, issue_stream
from gip.domain.matrix import MatrixConfig
from tests.worker_env import last, make_stack, make_worker, member_ids, register, send_event, types
from worker import matrix_cells
from worker.processor import Job, Outcome

VERSIONS = [f"1.{i}.0" for i in range(7)]
SNIPPET = ("import os\nv = tuple(map(int, os.environ['REPRO_VERSION'].split('.')))\n"
           "print('REPRO_VERSION', os.environ['REPRO_VERSION'], 'uid', os.getuid())\n"
           "raise SystemExit(1 if v < (1, 4, 0) else 0)")
BODY = f"### Version\n\n1.1.0\n\n### Reproduction Steps\n\n```python\n{SNIPPET}\n```\n"


@pytest.fixture(scope="module")
def stack():
    with mock_aws():
        s = make_stack()
        s.number, s.member = 1, member_ids(1, start=1)[0]
        s.issue = issue_stream("octo/demo", 1)
        s.settings = replace(s.settings, issue_queue_url=s.sqs.create_queue(
            QueueName="mx-issues", Attributes={"VisibilityTimeout": "30"})["QueueUrl"])
        register(s, [s.member])
        yield s


def queue_with_matrix(stack, body: str, config: dict, number: int) -> None:
    delivery = f"delivery-{uuid.uuid4()}"
    data = {"repo": "octo/demo", "number": number, "title": "crash", "labels": ["needs-reproduction"],
            "trigger": "labeled", "sender": "maint", "html_url": "https://github.com/octo/demo/issues/1",
            "body": body}
    received = stack.issues.receive(delivery_id=delivery, repo="octo/demo", number=number, data=data,
                                    cause=Cause(correlation_id=delivery, actor="test"))
    queued = stack.issues.record("octo/demo", number, "IssueQueued",
                                 {"run": received.issue.run, "sender": "maint", "permission": "write",
                                  "matrix_config": config},
                                 cause=Cause.from_event(received.event, actor="gatekeeper"))
    send_event(stack, stack.settings.issue_queue_url, queued)


def config(**kw) -> dict:
    return MatrixConfig(source="pypi:demo", versions=tuple(VERSIONS), bisect=True, **kw).to_event()


def test_a_matrix_run_bisects_in_one_lease_and_records_every_cell(stack):
    cleaned_between = []
    queue_with_matrix(stack, BODY, config(clean_between=True), number=1)
    worker = make_worker(stack, cleaner=lambda job: cleaned_between.append(job.lease_id) or [])
    assert worker.poll_once() == "reproduced"  # the reported version's verdict
    processed = last(stack, stack.issue, "IssueProcessed")
    data = processed["data"]
    assert processed["schema_version"] == 2
    assert (data["summary"], data["fixed_in"], data["reported_version"], data["latest_version"]) == \
        ("fixed_in_latest", "1.4.0", "1.1.0", "1.6.0")
    cells = {c["version"]: (c["verdict"], c["exit_code"]) for c in data["matrix"]}
    assert cells["1.1.0"] == ("reproduced", 1) and cells["1.6.0"] == ("not_reproduced", 0)
    assert cells["1.4.0"] == ("not_reproduced", 0) and cells["1.3.0"] == ("reproduced", 1)
    assert len(cells) <= 2 + math.ceil(math.log2(5))
    assert data["message"] == "Reproduces on 1.1.0 (reported); fixed in 1.4.0; latest 1.6.0 passes."
    # one lease for every cell
    account_events = types(stack, f"account-{stack.member}")
    assert account_events.count("AccountReserved") == 1
    # clean_between: the account was cleaned between cells (n-1 times) with the run's lease, then once after
    assert len(cleaned_between) == len(cells) and len(set(cleaned_between)) == 1
    # each cell's log under the run's prefix, naming its version
    prefix = f"octo/demo/1/{data['run']}/"
    result = json.loads(stack.s3.get_object(Bucket="wk-results", Key=prefix + "result.json")["Body"].read())
    assert set(result["cell_log_keys"]) == set(cells)
    log_140 = stack.s3.get_object(Bucket="wk-results", Key=prefix + "cells/1.4.0.log")["Body"].read().decode()
    assert "REPRO_VERSION 1.4.0" in log_140 and "1.3.0" not in log_140


def _job(body: str = BODY) -> Job:
    return Job(repo="o/r", number=1, run=1, title="", body=body, html_url="", account_id="1" * 12,
               lease_id="l", region="us-east-1", credentials=dict)


def test_without_matrix_config_the_processor_runs_once_and_records_nothing_new():
    calls = []
    outcome = matrix_cells.run(_job(), lambda job: calls.append(job.repro_version) or Outcome("reproduced", "x"), None)
    assert calls == [None] and matrix_cells.event_fields(outcome) == {}


def test_no_snippet_ends_the_matrix_at_the_first_cell():
    calls = []

    def processor(job):
        calls.append(job.repro_version)
        return Outcome("no_repro_found", "nothing to run")
    cfg = MatrixConfig.from_mapping(config())
    outcome = matrix_cells.run(_job(), processor, cfg)
    assert outcome.verdict == "no_repro_found" and calls == ["1.1.0"]


def test_a_stop_between_cells_is_interrupted_not_a_verdict():
    job = _job()

    def processor(j):
        job.cancel.set()  # SIGTERM arrives during the first cell
        return Outcome("reproduced", "x", log="cell one")
    outcome = matrix_cells.run(job, processor, MatrixConfig.from_mapping(config()))
    assert outcome.interrupted and outcome.cell_logs == {"1.1.0": "cell one"}


def test_queued_config_reads_this_runs_issue_queued_only():
    events = [{"type": "IssueQueued", "data": {"run": 1, "matrix_config": config()}},
              {"type": "IssueQueued", "data": {"run": 2}}]
    assert matrix_cells.queued_config(events, 1).versions == tuple(VERSIONS)
    assert matrix_cells.queued_config(events, 2) is None


def test_a_broken_cell_is_skipped_over_and_the_message_says_so():
    verdicts = {"1.1.0": "reproduced", "1.2.0": "reproduced", "1.3.0": "broken_repro", "1.4.0": "not_reproduced",
                "1.5.0": "not_reproduced", "1.6.0": "not_reproduced"}

    def processor(job):
        return Outcome(verdicts[job.repro_version], "x", exit_code=1, duration_s=1.0, log=job.repro_version)
    outcome = matrix_cells.run(_job(), processor, MatrixConfig.from_mapping(config()))
    fields = matrix_cells.event_fields(outcome)
    assert fields["fixed_in"] == "1.4.0" and "skipped broken cells: 1.3.0" in fields["matrix_note"]
    assert outcome.message.endswith("latest 1.6.0 passes. (skipped broken cells: 1.3.0)")
    assert outcome.cell_logs["1.3.0"] == "1.3.0" and outcome.duration_s == len(outcome.cell_logs)
