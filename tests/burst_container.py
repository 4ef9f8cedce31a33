"""One "container" of the real-process burst test (tests/test_github_burst.py).

``python -m tests.burst_container <handler> <queue arn> <stop file>`` plays one Lambda
container: an SQS event source mapping (gip.local.sqs_mappings.QueuePoller) feeding the
handler, built once, until the stop file exists. Everything else comes from the environment.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import boto3

from gip.local.lambdas import Function
from gip.local.sqs_mappings import QueuePoller


def main(handler: str, queue_arn: str, stop_file: str) -> None:
    function = Function(name=handler.split(".")[1], arn=f"arn:aws:lambda:us-east-1:123456789012:function:{handler}",
                        handler=handler, timeout_s=60)
    stop = threading.Event()
    poller = QueuePoller(sqs=boto3.client("sqs"), function=function, handler=function.load(),
                         queue_arn=queue_arn, region="us-east-1", batch_size=10, stop=stop)
    poller.start()
    while not Path(stop_file).exists():
        stop.wait(0.2)
    stop.set()
    poller.join(timeout=30)


if __name__ == "__main__":
    main(*sys.argv[1:4])
