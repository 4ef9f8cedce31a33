"""Keep the GitHub secrets out of the supervisor's ``/proc/<pid>/environ``.

A process's ``/proc/<pid>/environ`` shows the environment block it was started with; deleting
a variable from ``os.environ`` later does not change it, and in local mode a snippet runs as the
same user. So the supervisor re-executes itself once without the secrets, handing the values
over through an inherited pipe, and keeps them only in its own memory (``os.environ`` is a
copy: ``putenv`` never writes into the original block). It is also made non-dumpable, so that a
same-user process cannot read that memory either.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence

from gip.errors import ConfigError
from gip.isolation import make_not_dumpable

SECRET_VARS = ("GITHUB_WEBHOOK_SECRET", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY")
FD_VAR = "GIP_SECRETS_FD"
_PIPE_ROOM = 60_000  # below the 64 KiB pipe buffer: written in full before the exec, never blocks


def split_secrets(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """PURE: (the environment without the secrets, the secrets)."""
    secrets = {k: environ[k] for k in SECRET_VARS if environ.get(k)}
    return {k: v for k, v in environ.items() if k not in SECRET_VARS}, secrets


def hand_over(environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None) -> None:
    """When secrets are in this process's environment block, re-execute without them (does not
    return then); otherwise return at once."""
    env, secrets = split_secrets(os.environ if environ is None else environ)
    if not secrets or FD_VAR in env:
        return
    payload = json.dumps(secrets).encode()
    if len(payload) > _PIPE_ROOM:
        raise ConfigError(f"the GitHub secrets are {len(payload)} bytes; at most {_PIPE_ROOM} are handed over")
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env[FD_VAR] = str(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    args = list(argv if argv is not None else sys.orig_argv)
    os.execve(sys.executable, args, env)


def take_over(environ: MutableMapping[str, str] | None = None) -> None:
    """In the re-executed supervisor: read the secrets from the pipe into ``os.environ``."""
    target = os.environ if environ is None else environ
    make_not_dumpable()
    fd = target.pop(FD_VAR, None)
    if fd is None:
        return
    with os.fdopen(int(fd), "rb") as pipe:
        target.update(json.loads(pipe.read() or b"{}"))
