"""Numbers in the environment: a bad value is one ConfigError naming the variable, never a
ValueError traceback from whichever function reads it first."""

from __future__ import annotations

import pytest

from gip.config import Settings, env_number
from gip.errors import ConfigError
from worker.config import WorkerConfig


def test_unset_or_empty_is_the_default_and_a_number_is_read_as_the_defaults_type() -> None:
    assert env_number({}, "X", 60.0) == 60.0
    assert env_number({"X": " "}, "X", 3) == 3
    assert env_number({"X": "0"}, "X", 60.0) == 0.0 and isinstance(env_number({"X": "2"}, "X", 1.5), float)
    assert env_number({"X": " 42 "}, "X", 3) == 42 and isinstance(env_number({"X": "42"}, "X", 3), int)


@pytest.mark.parametrize(("value", "default", "minimum", "message"), [
    ("15m", 900, 1, "X must be a whole number, not '15m'"),
    ("1.5", 900, 1, "X must be a whole number, not '1.5'"),
    ("soon", 60.0, 0, "X must be a number, not 'soon'"),
    ("0", 900, 1, "X must be at least 1, not '0'"),
    ("-3", 60.0, 0, "X must be at least 0, not '-3'"),
    ("nan", 60.0, 0, "X must be at least 0, not 'nan'"),
])
def test_a_bad_value_names_the_variable(value: str, default: float, minimum: float, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        env_number({"X": value}, "X", default, minimum=minimum)
    assert str(err.value) == message


@pytest.mark.parametrize("name", ["LEASE_SECONDS", "LEASE_HARD_CAP_SECONDS", "MAX_BODY_BYTES", "REPO_CONFIG_TTL_S"])
def test_settings_refuse_a_bad_number_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        Settings.from_env({name: "ten"})


def test_settings_and_the_worker_read_good_numbers() -> None:
    settings = Settings.from_env({"LEASE_SECONDS": "120", "REPO_CONFIG_TTL_S": "0"})
    assert (settings.lease_seconds, settings.repo_config_ttl_s) == (120, 0.0)
    cfg = WorkerConfig.from_env({"MAX_ATTEMPTS": "5", "WORKER_POLL_SECONDS": "1", "VISIBILITY_SECONDS": "60"},
                                settings=settings)
    assert (cfg.max_attempts, cfg.poll_wait_s, cfg.visibility_s, cfg.heartbeat_s) == (5, 1, 60, 20.0)
    with pytest.raises(ConfigError, match=r"^MAX_ATTEMPTS must be at least 1, not '0'$"):
        WorkerConfig.from_env({"MAX_ATTEMPTS": "0"}, settings=settings)
