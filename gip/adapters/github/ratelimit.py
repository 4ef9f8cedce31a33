"""One GitHub rate-limit state per rate key, shared by every container (issue 19, §1).

Per key (:meth:`gip.adapters.github.auth.Credentials.rate_key`: "token" for a PAT, one per App
installation) the gate keeps:

- ``blocked_until`` (epoch s): no container sends a request to GitHub before it;
- ``strikes``: consecutive limits, for the back-off (:func:`blocked_wait`), reset by a success;
- ``next_write`` (epoch s): the earliest time of the deployment's next mutation, so writes stay
  ``write_interval`` apart across containers (GitHub: "at least one second between each").

The state is kept behind the store's :class:`~gip.store.protocols.RateGate` contract:
:class:`~gip.store.dynamo_ops.DynamoRateGate` keeps it as one row (``pk = github-rate#<key>``)
of the pool projection table, written with conditional updates;
:class:`~gip.store.memory_ops.MemoryRateGate` is the same for one process (unit tests, and the
default of a client built without one). This module keeps the back-off rule. See
docs/internals.md, "GitHub rate limits".
"""

from __future__ import annotations

from gip.store.memory_ops import MemoryRateGate
from gip.store.protocols import GateState, RateGate

__all__ = ["MAX_BACKOFF_S", "GateState", "MemoryRateGate", "RateGate", "blocked_wait"]

MAX_BACKOFF_S = 3600.0  # a secondary limit's back-off never grows past an hour


def blocked_wait(retry_after: float, strikes: int, *, reset_in: float | None) -> float:
    """Seconds to block after a limit, the ``strikes``-th in a row (0: the first).

    The wait GitHub asked for, doubled for each consecutive limit, but never past the primary
    reset when GitHub said when that is (``reset_in``), else never past :data:`MAX_BACKOFF_S`.
    """
    grown = retry_after * (2 ** min(max(strikes, 0), 16))
    cap = max(retry_after, reset_in if reset_in is not None else MAX_BACKOFF_S)
    return min(grown, cap)
