"""Local mode only: member accounts keep their ids across restarts.

moto's ``CreateAccount`` draws a random 12-digit id. The restored event log (gip.local.state)
names the accounts of the last run, so fresh ids on each start made reconcile register the new
ones and deregister the old ones two passes later: churn in the log, and a restored pool of
accounts that no longer exist. Member ``n`` of ``--prefix`` therefore gets one id, always:
:func:`member_id`, a hash of its name (``<prefix>-sandbox-<n>``); :func:`fixed_account_id`
makes moto use it for one ``CreateAccount``.

A gap-filler like gip.local.gaps: it needs the moto server in this process (EmbeddedAws, or
``mock_aws`` in tests). Against any other endpoint the patch is never reached, and the account
keeps the id moto gave it (:func:`gip.local.aws_setup.create_organization` takes what
``CreateAccount`` returns). Never used against real AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()  # one patched CreateAccount at a time in this process


def member_name(prefix: str, n: int) -> str:
    return f"{prefix}-sandbox-{n}"


def member_id(prefix: str, n: int) -> str:
    """Pure: the 12-digit id of member ``n``: from a hash of its name, so the same on every
    start; the leading 9 keeps it clear of moto's default management account 123456789012."""
    digest = int.from_bytes(hashlib.sha256(member_name(prefix, n).encode()).digest()[:8], "big")
    return f"9{digest % 10**11:011d}"


@contextlib.contextmanager
def fixed_account_id(account_id: str) -> Iterator[None]:
    """While inside, moto's organizations backend gives a new account ``account_id``."""
    from moto.organizations import utils

    with _LOCK:
        original = utils.make_random_account_id
        utils.make_random_account_id = lambda: account_id
        try:
            yield
        finally:
            utils.make_random_account_id = original
