"""Sample GitHub deliveries for the local stack: the curl line, ``make demo``, the e2e test
and the bench all send these. Pure: build a payload, sign it, nothing is sent here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import uuid
from typing import Any

REPO = "octo-org/hello-world"
LABEL = "needs-reproduction"

FAILS = """\
The `hello` tool crashes on an empty config.

### Reproduction Steps

```sh
printf '' > config.ini
echo "loading config.ini"
test -s config.ini || { echo "ConfigError: config.ini is empty" >&2; exit 3; }
```

### Actual behaviour

> ConfigError: config.ini is empty
"""

PASSES = """\
Listing the working directory seems to fail for me.

### Reproduction Steps

```bash
mkdir -p work && cd work && touch a b
ls | wc -l
```

### Actual behaviour

> ListError: cannot list directory
"""

NO_SNIPPET = """\
Sometimes the dashboard is slow in the morning. No idea how to trigger it, sorry!
"""


def issue_payload(*, number: int, body: str, title: str = "Sample bug report", repo: str = REPO,
                  sender: str = "maintainer", association: str = "MEMBER", label: str = LABEL,
                  action: str = "labeled") -> dict[str, Any]:
    """An ``issues.labeled`` webhook payload (the fields our webhook reads, GitHub's shape)."""
    owner, name = repo.split("/", 1)
    user = {"login": "reporter", "id": 1001, "type": "User"}
    return {
        "action": action,
        "issue": {
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "id": 9_000_000 + number, "number": number, "title": title, "user": user,
            "labels": [{"name": "bug"}, {"name": label}], "state": "open", "locked": False,
            "comments": 0, "author_association": association, "body": body,
        },
        "label": {"name": label},
        "repository": {"id": 4242, "name": name, "full_name": repo, "private": False,
                       "owner": {"login": owner, "type": "Organization"}},
        "sender": {"login": sender, "id": 1002, "type": "User"},
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The bytes GitHub sends: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def headers(body: bytes, secret: str, *, event: str = "issues", delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/local",
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(body, secret),
    }


def curl_command(url: str, body_file: str, body: bytes, secret: str) -> str:
    """A ready-to-paste curl line that sends ``body_file`` signed (a fresh delivery id each time)."""
    return (f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
            f"-H 'X-GitHub-Event: issues' -H \"X-GitHub-Delivery: demo-$(date +%s%N)\" "
            f"-H 'X-Hub-Signature-256: {signature(body, secret)}' --data-binary @{shlex.quote(body_file)}")
