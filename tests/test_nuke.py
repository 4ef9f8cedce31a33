"""worker.cleaning.nuke: the aws-nuke config (pure) and the run, against a stand-in executable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from gip.errors import AwsError, ConfigError
from worker.cleaner import clean, load_cleaner
from worker.cleaning.job import CleanupJob, Protection
from worker.cleaning.nuke import NukeCleaner, nuke_config, removed_from_output

MEMBER, MANAGEMENT = "210987654321", "123456789012"
PROTECT = Protection(prefix="gip", role_name="gip-processing")
CREDS = {"AWS_ACCESS_KEY_ID": "ASIAMEMBER", "AWS_SECRET_ACCESS_KEY": "member-secret",
         "AWS_SESSION_TOKEN": "member-token"}


def test_config_covers_every_region_blocks_the_management_account_and_protects_our_things():
    config = nuke_config(MEMBER, regions=["us-east-1", "eu-west-1"], management_account=MANAGEMENT,
                         protection=PROTECT)
    assert config["regions"] == ["global", "us-east-1", "eu-west-1"]
    assert config["blocklist"] == [MANAGEMENT] and MEMBER not in config["blocklist"]
    assert config["bypass-alias-check-accounts"] == [MEMBER]
    assert list(config["accounts"]) == [MEMBER]
    filters = config["accounts"][MEMBER]["filters"]
    assert "gip-processing" in filters["IAMRole"]
    assert {"type": "glob", "value": "stacksets-exec-*"} in filters["IAMRole"]
    assert {"type": "glob", "value": "gip-processing -> *"} in filters["IAMRolePolicyAttachment"]
    assert filters["CloudFormationStack"] == [{"type": "glob", "value": "StackSet-gip-*"}]
    assert config["settings"]["RDSInstance"] == {"DisableDeletionProtection": True}
    assert "S3Object" in config["resource-types"]["excludes"]


@pytest.mark.parametrize(("member", "management", "message"), [
    (MANAGEMENT, MANAGEMENT, "refusing to clean the management account"),
    (MEMBER, "", "management account id '' is not 12 digits"),
    ("12345", MANAGEMENT, "account id '12345' is not 12 digits"),
])
def test_config_refuses_unsafe_targets(member, management, message):
    with pytest.raises(ConfigError, match=message):
        nuke_config(member, regions=["us-east-1"], management_account=management, protection=PROTECT)


def test_removed_lines_are_read_from_the_output():
    output = ("us-east-1 - EC2Instance - i-0abc - [Name: \"x\"] - removed\n"
              "us-east-1 - IAMRole - gip-processing - [] - filtered by config\n"
              "global - S3Bucket - s3://b - [] - would remove\n"
              "Removal requested: 1 waiting, 0 failed, 5 skipped, 1 finished\n")
    assert removed_from_output(output) == ["aws-nuke:EC2Instance/i-0abc@us-east-1"]


STAND_IN = r'''#!{python}
"""A stand-in for aws-nuke: checks what it is given, like the real one would, and reports."""
import json, os, sys
args = sys.argv[1:]
checks = []
checks.append(args[:1] == ["run"])
config_path = args[args.index("--config") + 1]
for flag in ("--no-dry-run", "--no-prompt", "--no-alias-check"):
    checks.append(flag in args)
config = json.load(open(config_path))  # JSON is YAML: aws-nuke reads it
account = "{member}"
checks.append(list(config["accounts"]) == [account])
checks.append(account not in config["blocklist"] and len(config["blocklist"]) >= 1)
checks.append(account in config["bypass-alias-check-accounts"])
checks.append(os.environ.get("AWS_ACCESS_KEY_ID") == "ASIAMEMBER")
checks.append(os.environ.get("AWS_SESSION_TOKEN") == "member-token")
leaked = sorted(k for k in os.environ if k.startswith(("GITHUB", "GIP_")) or k in ("AWS_PROFILE", "LEAK_ME"))
checks.append(not leaked)
checks.append(oct(os.stat(config_path).st_mode & 0o777) == "0o600")
with open("{record}", "w") as out:
    json.dump({{"checks": checks, "leaked": leaked, "config": config, "args": args}}, out)
if not all(checks):
    print("secret-looking output that must not reach the event: member-secret")
    sys.exit(2)
for region in config["regions"]:
    print(f"{{region}} - EC2Instance - i-{{region}} - [] - removed")
'''


def _stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "aws-nuke"
    path.write_text(STAND_IN.format(python=sys.executable, member=MEMBER, record=tmp_path / "record.json"))
    path.chmod(0o755)
    return path


def _job(account: str = MEMBER) -> CleanupJob:
    return CleanupJob(account_id=account, lease_id="L1", regions=("us-east-1", "eu-west-1"),
                      credentials=lambda: dict(CREDS), protection=PROTECT, management_account=MANAGEMENT)


def test_nuke_runs_with_the_member_credentials_and_the_generated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_worker_only")
    monkeypatch.setenv("LEAK_ME", "1")
    removed = NukeCleaner(str(_stand_in(tmp_path)))(_job())
    record = json.loads((tmp_path / "record.json").read_text())
    assert all(record["checks"]), record
    assert record["config"]["regions"] == ["global", "us-east-1", "eu-west-1"]
    assert removed == ["aws-nuke:EC2Instance/i-global@global", "aws-nuke:EC2Instance/i-us-east-1@us-east-1",
                       "aws-nuke:EC2Instance/i-eu-west-1@eu-west-1"]
    assert not Path(record["args"][record["args"].index("--config") + 1]).exists()  # config removed


def test_a_failing_nuke_is_one_short_error_without_its_output(tmp_path):
    failing = tmp_path / "aws-nuke"
    failing.write_text("#!/bin/sh\necho \"$AWS_SECRET_ACCESS_KEY\"\nexit 2\n")
    failing.chmod(0o755)
    with pytest.raises(AwsError) as info:
        NukeCleaner(str(failing))(_job())
    assert str(info.value) == "aws-nuke exited 2"
    assert "member-secret" not in str(info.value)


def test_a_hung_nuke_is_killed_at_its_timeout(tmp_path):
    hang = tmp_path / "aws-nuke"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    with pytest.raises(AwsError, match=r"timed out after 0\.5s"):
        NukeCleaner(str(hang), timeout_s=0.5)(_job())


def test_load_cleaner_prefers_aws_nuke_when_installed(tmp_path):
    binary = str(_stand_in(tmp_path))
    chosen = load_cleaner("", nuke=binary)
    assert isinstance(chosen, NukeCleaner) and chosen.binary == binary
    assert load_cleaner("", nuke="off") is clean
    assert load_cleaner("", nuke=str(tmp_path / "absent")) is clean
    assert load_cleaner("builtin", nuke=binary) is clean
    with pytest.raises(ConfigError, match="no aws-nuke binary"):
        load_cleaner("aws-nuke", nuke=str(tmp_path / "absent"))
    assert os.access(binary, os.X_OK)
