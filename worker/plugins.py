"""Loading ``package.module:function`` plug-ins (PROCESSOR, CLEANER)."""

from __future__ import annotations

import importlib
from typing import Any

from gip.errors import ConfigError


def load_plugin(setting: str, spec: str) -> Any:
    """The callable named by ``spec``; a bad spec is a ConfigError naming ``setting``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{setting} must look like package.module:function, not {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {setting} {spec!r}: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"{setting} {spec!r} is not callable")
    return target
