"""SQS batches with partial failures, through Powertools' ``BatchProcessor``.

Each record goes to a function that raises on failure; the failed records come back in
``batchItemFailures`` (ReportBatchItemFailures on the event source mapping), so SQS redelivers
only those. Delivery is at least once: record handlers must be idempotent.
https://docs.powertools.aws.dev/lambda/python/latest/utilities/batch/
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

BatchResponse = dict[str, list[dict[str, str]]]  # {"batchItemFailures": [{"itemIdentifier": id}]}


def process_sqs_batch(event: Mapping[str, Any],
                      record_handler: Callable[[SQSRecord], object]) -> BatchResponse:
    """Call ``record_handler`` once per SQS record; a record whose call raises is reported failed."""
    if not event.get("Records"):
        return {"batchItemFailures": []}  # Powertools refuses an empty batch; there is nothing to do
    # A batch that fails whole is still an answer, not an error: the same retry, no invocation error.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=dict(event), record_handler=record_handler,
                                        processor=processor, context=None)
    return {"batchItemFailures": [{"itemIdentifier": str(f["itemIdentifier"])} for f in response["batchItemFailures"]]}
