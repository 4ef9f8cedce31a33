"""bootstrap.py dispatch: the contract's exit codes and routing, without touching AWS."""

from __future__ import annotations

import pytest

from gip.cli.main import main


def test_no_command_prints_help_and_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "Exit codes: 0 ok" in capsys.readouterr().out


def test_org_without_command_means_deploy_and_validates_the_org(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--org", "o-bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --org must look like o-xxxxxxxxxx (o- then 10-32 lowercase letters/digits), got 'o-bad'"]


def test_local_flag_routes_to_local_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--org", "o-example", "--local", "--accounts", "0"]) == 2
    assert "--accounts must be between" in capsys.readouterr().err


def test_unknown_command_is_bad_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["explode"])
    assert info.value.code == 2


def test_every_command_has_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("replay", "accounts", "status", "subscribe", "reconcile", "destroy", "reinstate"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "--endpoint-url" in capsys.readouterr().out


# ---------------------------------------------------------------- issue 14, CLI polish

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_a_reader_that_hangs_up_ends_the_command_quietly_with_exit_0(tmp_path: Path) -> None:
    """`COMMAND | head`: a command that prints far more than a pipe holds, through the real entry."""
    (tmp_path / "spew_cmd.py").write_text(
        "def add_arguments(parser):\n    pass\n\n"
        "def run(args):\n    for i in range(200000):\n        print(f'line {i} ' + 'x' * 60)\n    return 0\n")
    code = ("import sys; import gip.cli.main as m; m.COMMANDS['spew'] = ('spew_cmd', 'test'); "
            "sys.exit(m.main(['spew']))")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    for _ in range(3):
        shell = f"{sys.executable} -c \"{code}\" | head -n 2; echo \"rc=${{PIPESTATUS[0]}}\""
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
        assert done.stdout.splitlines()[:2] == ["line 0 " + "x" * 60, "line 1 " + "x" * 60]
        assert done.stdout.splitlines()[-1] == "rc=0"
        assert done.stderr == ""


def test_missing_packages_give_one_line_naming_the_fix() -> None:
    """bootstrap.py under an interpreter without the dependencies (-S -I: no site-packages)."""
    done = subprocess.run([sys.executable, "-S", "-I", "bootstrap.py", "accounts"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "boto3" in lines[0] and "make venv" in lines[0] and "pip install ." in lines[0]
    assert "Traceback" not in done.stderr


def test_common_options_have_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["accounts", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--region REGION AWS region" in out
    assert "--profile PROFILE AWS named profile" in out
    assert "--prefix PREFIX name prefix of every stack" in out


def test_local_help_has_an_optional_org_and_no_local_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["local", "--help"])
    out = capsys.readouterr().out
    usage = out.split("\n\n")[0]
    assert "[--org ORG]" in usage and "--local" not in usage
    assert "--local " not in out
    with pytest.raises(SystemExit) as info:  # `local --local` is not an option any more
        main(["local", "--local"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", ["replay", "accounts", "status", "reconcile", "redeliver", "subscriptions"])
def test_every_format_option_takes_json_and_jsonl(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{table,json,jsonl}" in out
    assert "json (one document) or jsonl (one object per line)" in out
