"""The worker's SQS I/O: receive one message, and wait, give back or settle it.

Waiting is a delayed copy plus a delete, never a failed receive, so that waiting for an
account or for a busy cleanup does not walk the message towards its DLQ.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gip.errors import AwsError
from worker.config import WorkerConfig
from worker.messages import backoff_seconds

log = logging.getLogger(__name__)
WAITS_ATTRIBUTE = "gip-waits"
SQS_MAX_DELAY = 900


def message_waits(msg: Mapping[str, Any]) -> int:
    """Pure: how many pool waits this message has counted (its ``gip-waits`` attribute)."""
    return int(msg.get("MessageAttributes", {}).get(WAITS_ATTRIBUTE, {}).get("StringValue", "0"))


class QueueMessages:
    """The message half of :class:`worker.loop.Worker`, which provides these attributes."""

    cfg: WorkerConfig
    sqs: Any
    rng: random.Random

    def _receive(self, url: str, *, wait: int) -> list[dict[str, Any]]:
        try:
            answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=wait,
                                              AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                                              MessageAttributeNames=[WAITS_ATTRIBUTE])
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(f"cannot receive from {url}: {exc}") from exc
        return list(answer.get("Messages", []))

    def _requeue_cleanup(self, msg: dict[str, Any], delay: int) -> None:
        """Back off without spending a receive (a busy account is not a failure, and the cleanup
        queue's maxReceiveCount is small): a delayed copy, then delete this one. A failed delete
        leaves a duplicate, which the claim and the account's state make harmless."""
        url = self.cfg.settings.cleanup_queue_url
        try:
            self.sqs.send_message(QueueUrl=url, MessageBody=msg["Body"], DelaySeconds=min(SQS_MAX_DELAY, delay))
        except (ClientError, BotoCoreError) as exc:
            log.warning("cleanup requeue failed, backing off in place: %s", exc)
            self._visibility(url, msg, delay)
            return
        self._delete(url, msg)

    def _backoff(self, msg: dict[str, Any], receives: int) -> int:
        wait = backoff_seconds(receives, base=self.cfg.backoff_base_s, cap=self.cfg.backoff_cap_s, rng=self.rng)
        self._visibility(self.cfg.settings.issue_queue_url, msg, wait)
        return wait

    def _requeue(self, msg: dict[str, Any], *, soon: bool = False) -> int:
        """Wait without spending a receive: send a delayed copy, then delete this one.

        Waiting for an account (or for the sweeper to settle a dead worker's run) is not a
        failure, so it must not walk the message towards the DLQ (maxReceiveCount is small).
        The copy counts its waits in a message attribute, which drives the exponential backoff;
        the pool wait is measured from the envelope's time, which the copy keeps. A failed
        delete leaves a duplicate, which the issue's stream makes harmless (dropped or conflict).

        ``soon``: accounts were free but other workers won the races for them; look again in
        1-3 s (jitter spreads the contenders) and do not count it as a wait.
        Returns the seconds until the message is seen again.
        """
        url = self.cfg.settings.issue_queue_url
        waits = message_waits(msg)
        if soon:
            delay = int(1 + self.rng.uniform(0, 2))
        else:
            waits += 1
            delay = backoff_seconds(waits, base=self.cfg.backoff_base_s, cap=self.cfg.backoff_cap_s, rng=self.rng)
        try:
            self.sqs.send_message(QueueUrl=url, MessageBody=msg["Body"], DelaySeconds=min(SQS_MAX_DELAY, delay),
                                  MessageAttributes={WAITS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(waits)}})
        except (ClientError, BotoCoreError) as exc:
            log.warning("requeue failed, backing off in place: %s", exc)
            return self._backoff(msg, waits)
        self._delete(url, msg)
        return min(SQS_MAX_DELAY, delay)

    def _visibility(self, url: str, msg: dict[str, Any], seconds: int, *, quiet: bool = False) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"],
                                               VisibilityTimeout=int(seconds))
        except (ClientError, BotoCoreError) as exc:
            (log.debug if quiet else log.warning)("visibility change failed: %s", exc)

    def _delete(self, url: str, msg: dict[str, Any]) -> None:
        try:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
        except (ClientError, BotoCoreError) as exc:
            log.warning("delete failed (the message comes back and is dropped as a redelivery): %s", exc)

