"""One botocore data loader for the whole process (local mode's stack process, and the tests).

pynamodb builds a botocore session per table connection *and per thread*, moto one per backend,
and each new session's loader parsed the service models and endpoints JSON again. Local mode
plays a mapping's concurrent invocations as threads of one process, so a burst's first records
each built their own sessions: 1-2 s on a busy core before the gatekeeper's first decision
(bench/e2e.py, a cold stack). The loader caches what it has read, so sharing it makes a new
session cheap. In Lambda a container runs one invocation at a time; nothing here runs there.
"""

from __future__ import annotations

import functools

import botocore.loaders
import botocore.session

_ORIGINAL = botocore.loaders.create_loader


def install() -> None:
    """Every botocore session created from now on in this process shares one loader (idempotent)."""
    if not isinstance(botocore.session.create_loader, functools._lru_cache_wrapper):
        botocore.session.create_loader = functools.cache(_ORIGINAL)  # type: ignore[assignment]
