"""A CLEANER plug-in for real-process tests: records every cleaning it is asked to do (one line
per call in ``$COUNT_FILE``), holds the account ``$CLEAN_DELAY`` seconds to widen the race
window, then runs the built-in cleaner."""

from __future__ import annotations

import json
import os
import time

from worker.cleaning.builtin import clean as builtin_clean
from worker.cleaning.job import CleanupJob


def clean(job: CleanupJob) -> list[str]:
    with open(os.environ["COUNT_FILE"], "a") as out:  # O_APPEND: one whole line per write
        out.write(json.dumps({"pid": os.getpid(), "account": job.account_id, "lease": job.lease_id}) + "\n")
    time.sleep(float(os.environ.get("CLEAN_DELAY", "0")))
    return builtin_clean(job)
