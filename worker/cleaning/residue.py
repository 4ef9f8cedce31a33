"""What billable is left after cleaning: each built-in kind listed again, plus the Resource
Groups Tagging API for the services no kind covers. Any residue fails the cleanup attempt."""

from __future__ import annotations

from worker.cleaning.builtin import GLOBAL, REGIONAL
from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import pages
from worker.cleaning.plan import tagged_residue


def find_residue(job: CleanupJob) -> list[str]:
    """Labels of what is left (empty: clean). A listing error propagates: unverified is not clean."""
    out: list[str] = []
    for region in job.regions:
        for kind in REGIONAL:
            out += [kind.label(i, region) for i in kind.find(job.client(kind.service, region), job)]
        tagging = job.client("resourcegroupstaggingapi", region)
        arns = [m["ResourceARN"] for m in pages(tagging, "get_resources", "ResourceTagMappingList")]
        out += tagged_residue(arns, job.protection)
    for kind in GLOBAL:
        out += [kind.label(i, job.region) for i in kind.find(job.client(kind.service), job)]
    return out
