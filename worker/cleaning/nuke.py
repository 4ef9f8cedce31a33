"""aws-nuke (the maintained fork, github.com/ekristen/aws-nuke, v3): its per-account config and
the subprocess that runs it with the member credentials only.

Config format: https://aws-nuke.ekristen.dev/config. JSON is valid YAML, so the config is written
as JSON. aws-nuke refuses to run unless the blocklist has at least one account and the target is
not in it: the blocklist is the management account, where the worker runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gip.errors import AwsError, ConfigError
from worker.cleaning.job import ACCESS_ROLES, CleanupJob, Protection

_ROLE_GLOBS = ("stacksets-exec-*", "AWSServiceRoleFor*", "AWSReservedSSO_*")
# Resource types aws-nuke should leave to others: S3Object goes with its bucket (faster), and
# the account's own settings are not resources a run leaves behind.
_EXCLUDES = ["S3Object", "IAMAccountSettingPasswordPolicy", "OpsWorksUserProfile"]
_SETTINGS = {
    "EC2Instance": {"DisableStopProtection": True, "DisableDeletionProtection": True},
    "EC2Image": {"IncludeDisabled": True, "IncludeDeprecated": True, "DisableDeregistrationProtection": True},
    "RDSInstance": {"DisableDeletionProtection": True},
    "CloudFormationStack": {"DisableDeletionProtection": True},
    "DynamoDBTable": {"DisableDeletionProtection": True},
}
MAX_REMOVED = 500


def nuke_config(account_id: str, *, regions: Sequence[str], management_account: str,
                protection: Protection) -> dict[str, Any]:
    """The aws-nuke config for one member account (PURE). Raises ConfigError on unsafe input."""
    for name, value in (("account", account_id), ("management account", management_account)):
        if not (len(value) == 12 and value.isdigit()):
            raise ConfigError(f"aws-nuke: {name} id {value!r} is not 12 digits")
    if account_id == management_account:
        raise ConfigError("aws-nuke: refusing to clean the management account")
    if not regions:
        raise ConfigError("aws-nuke: no allowed regions")
    roles: list[Any] = [protection.role_name, *ACCESS_ROLES,
                        *({"type": "glob", "value": g} for g in _ROLE_GLOBS)]
    # "<role> -> <policy>" is how aws-nuke names a role's inline policies and attachments
    role_policies = [{"type": "glob", "value": f"{r} -> *"} for r in (protection.role_name, *ACCESS_ROLES)]
    role_policies += [{"type": "glob", "value": f"{g} -> *"} for g in _ROLE_GLOBS]
    stacks = [{"type": "glob", "value": f"{protection.stack_prefix}*"}]
    return {
        "regions": ["global", *dict.fromkeys(regions)],
        "blocklist": [management_account],
        "bypass-alias-check-accounts": [account_id],  # pool accounts have no alias; see nuke_args
        "resource-types": {"excludes": list(_EXCLUDES)},
        "settings": {k: dict(v) for k, v in _SETTINGS.items()},
        "accounts": {account_id: {"filters": {
            "IAMRole": roles,
            "IAMRolePolicy": role_policies,
            "IAMRolePolicyAttachment": role_policies,
            "CloudFormationStack": stacks,
        }}},
    }


def nuke_args(binary: str, config_path: str) -> list[str]:
    """``--no-alias-check`` works only with ``bypass-alias-check-accounts`` in the config."""
    return [binary, "run", "--config", config_path, "--no-dry-run", "--no-prompt", "--no-alias-check"]


def removed_from_output(text: str) -> list[str]:
    """``aws-nuke:<Type>/<id>@<region>`` for each line aws-nuke reports as removed (PURE)."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(" - ")]
        if len(parts) >= 4 and parts[-1] == "removed":
            out.append(f"aws-nuke:{parts[1]}/{parts[2]}@{parts[0]}"[:200])
            if len(out) >= MAX_REMOVED:
                break
    return out


@dataclass(frozen=True)
class NukeCleaner:
    """Runs ``binary`` against the job's account; its environment has the member credentials
    and nothing of the worker's own."""

    binary: str
    timeout_s: float = 1800

    def __call__(self, job: CleanupJob) -> list[str]:
        config = nuke_config(job.account_id, regions=job.regions, management_account=job.management_account,
                             protection=job.protection)
        creds = job.credentials()
        with tempfile.TemporaryDirectory(prefix="nuke-") as home:
            path = Path(home) / "config.yaml"
            path.write_text(json.dumps(config, indent=2))
            path.chmod(0o600)
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "AWS_DEFAULT_REGION": job.region,
                   "AWS_ACCESS_KEY_ID": creds["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": creds["AWS_SECRET_ACCESS_KEY"],
                   "AWS_SESSION_TOKEN": creds.get("AWS_SESSION_TOKEN", "")}
            proc = subprocess.Popen(nuke_args(self.binary, str(path)), env=env, cwd=home, text=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise AwsError(f"aws-nuke timed out after {self.timeout_s:g}s") from None
        if proc.returncode != 0:  # its output names resources and may echo input: not in the error
            raise AwsError(f"aws-nuke exited {proc.returncode}")
        return removed_from_output(output)
