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
