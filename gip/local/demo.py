"""``make demo``: send a signed sample issue to the running local stack and say what to watch.

The stack (``make local``) writes where it listens and its webhook secret to
``.local/local-stack.json``; ``--url`` and ``GITHUB_WEBHOOK_SECRET`` override that file.
The sample is an ``issues.labeled`` delivery for a new issue whose body has a shell
reproduction that fails with the error the issue quotes, so the verdict is ``reproduced``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from gip.local import samples

STATE = Path(__file__).resolve().parents[2] / ".local" / "local-stack.json"


def load_state(path: Path = STATE) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="webhook URL (default: from .local/local-stack.json)")
    parser.add_argument("--number", type=int, default=None, help="issue number (default: a new one)")
    parser.add_argument("--kind", choices=("fails", "passes", "none"), default="fails",
                        help="the reproduction in the issue body (default: fails)")
    args = parser.parse_args(argv)
    state = load_state()
    url = args.url or state.get("webhook_url")
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET", "").split(",")[0].strip() or state.get("secret")
    if not url or not secret:
        print("error: no running local stack found (start it with `make local`, or pass --url and "
              "set GITHUB_WEBHOOK_SECRET)", file=sys.stderr)
        return 1
    number = args.number or int(time.time()) % 100_000
    body_text = {"fails": samples.FAILS, "passes": samples.PASSES, "none": samples.NO_SNIPPET}[args.kind]
    body = samples.encode(samples.issue_payload(number=number, body=body_text,
                                                title="hello crashes on an empty config"))
    delivery = f"demo-{uuid.uuid4()}"
    try:
        answer = requests.post(url, data=body, headers=samples.headers(body, secret, delivery=delivery),
                               timeout=30)
    except requests.RequestException as exc:
        print(f"error: cannot reach the local stack at {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"sent issues.labeled for {samples.REPO}#{number} (delivery {delivery}): "
          f"{answer.status_code} {answer.text.strip()}")
    if answer.status_code != 202:
        return 1
    endpoint = state.get("endpoint_url", "http://127.0.0.1:4566")
    print(f"""
Watch the terminal running `make local`: one line per event, in about 5 seconds
  IssueReceived -> IssueQueued -> AccountReserved -> IssueProcessingStarted ->
  IssueProcessed (verdict={'reproduced' if args.kind == 'fails' else 'not_reproduced' if args.kind == 'passes' else 'no_repro_found'}) -> AccountReleased -> AccountCleaned
and, without GITHUB_TOKEN, the status comment the notifier would post at each step.

Then look at the audit trail and the pool (any credentials do for the local endpoint):
  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1
  .venv/bin/python bootstrap.py replay --stream {samples.REPO}#{number}
  .venv/bin/python bootstrap.py accounts""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
