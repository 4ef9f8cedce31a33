"""Local mode (and the test suite's moto server): moto's CloudFormation parses templates with libyaml.

moto parses a template with PyYAML's pure-Python ``yaml.Loader`` several times per change set
(the change set, the stack, the template summary): ~20% of tests/test_deploy.py's CPU and of a
local start's deploy (py-spy). :func:`install` points moto's CloudFormation modules at a
stand-in for ``yaml`` whose ``Loader`` is the same loader over libyaml's C parser
(``yaml.CLoader``: the same constructor and resolver classes, so the same documents and the same
errors), carrying the tag constructors moto registers. Without libyaml it changes nothing.
Never used against real AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

_installed: dict[str, Any] = {}


class _CLoader(getattr(yaml, "CLoader", yaml.Loader)):  # type: ignore[misc]
    """``yaml.Loader`` over libyaml: moto's constructors are added here as well."""


class _Yaml:
    """``yaml`` as moto's CloudFormation sees it: everything PyYAML's, but ``Loader``."""

    Loader = _CLoader

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)

    @staticmethod
    def add_multi_constructor(tag_prefix: str, multi_constructor: Callable[..., Any],
                              Loader: Any = None) -> None:
        yaml.add_multi_constructor(tag_prefix, multi_constructor, Loader)
        if Loader is None:  # PyYAML's default targets: the loaders moto names, ours among them
            _CLoader.add_multi_constructor(tag_prefix, multi_constructor)


def install() -> None:
    """Patch moto's CloudFormation in this process (idempotent); :func:`uninstall` undoes it."""
    from moto.cloudformation import models, responses

    if _installed or not hasattr(yaml, "CLoader"):
        return
    _installed.update(models=models.yaml, responses=responses.yaml)
    models.yaml = responses.yaml = _Yaml()  # type: ignore[assignment]


def uninstall() -> None:
    from moto.cloudformation import models, responses

    if not _installed:
        return
    models.yaml, responses.yaml = _installed["models"], _installed["responses"]
    _installed.clear()
