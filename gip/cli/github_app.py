"""The deploy's GitHub App and redelivery flags (``gip.cli.deploy`` adds them and calls
:func:`deploying` around the deploy).

- ``--github-app-id ID --github-app-key-file key.pem``: the key is read and checked when the
  command line is parsed (a bad file is one line, exit 2, before anything is deployed), then
  stored with the id as the JSON of the ``<prefix>/github-app`` secret after the deploy. The key
  never goes into a stack parameter, an output, a log line or the console.
- ``--redeliver-hooks repos/OWNER/NAME/hooks/ID,orgs/NAME/hooks/ID``: the repository or
  organization hooks the redelivery sweep also watches (PAT set-ups), stored in the pool
  table's ``redelivery-hooks`` row, which the sweep reads.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gip.adapters import aws
from gip.adapters.aws import aws_errors, error_code
from gip.errors import UsageError


@dataclass(frozen=True)
class KeyFile:
    """A checked PEM key file (``repr`` shows the path only)."""

    path: str
    pem: str = field(repr=False)


def key_file(path: str) -> KeyFile:
    """argparse ``type=``: read and check the App's private key."""
    from gip.adapters.github.app import load_private_key
    from gip.errors import ConfigError

    try:
        pem = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        load_private_key(pem)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc}") from None
    return KeyFile(path, pem)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--github-app-id", default=None, metavar="ID",
                        help="GitHub App id (with --github-app-key-file): the App wins over a token")
    parser.add_argument("--github-app-key-file", type=key_file, default=None, metavar="PEM",
                        help="the App's private key file; stored in <prefix>/github-app, never printed")
    parser.add_argument("--redeliver-hooks", default=None, metavar="HOOKS",
                        help="repos/OWNER/NAME/hooks/ID or orgs/NAME/hooks/ID (comma-separated) "
                             "whose failed deliveries the sweep redelivers (PAT set-ups)")


def check(args: argparse.Namespace) -> list[str] | None:
    """Pure: the flags' consistency (UsageError); the checked hook list, if given."""
    from gip.adapters.github.hooks import check_hook

    app_id, key = getattr(args, "github_app_id", None), getattr(args, "github_app_key_file", None)
    if (app_id is None) != (key is None):
        raise UsageError("--github-app-id and --github-app-key-file go together")
    if app_id is not None and not str(app_id).strip().isdigit():
        raise UsageError(f"--github-app-id must be the App's numeric id, got {app_id!r}")
    hooks = getattr(args, "redeliver_hooks", None)
    return None if hooks is None else [check_hook(h) for h in hooks.split(",") if h.strip()]


def deploying(args: argparse.Namespace, options: Any, reporter: Any,
              deploy: Callable[[Any, Any], dict[str, str]]) -> dict[str, str]:
    """Check the flags, deploy, then store the App secret and the hook list (not on a dry run)."""
    hooks = check(args)
    key: KeyFile | None = getattr(args, "github_app_key_file", None)
    if key is not None and not options.bot_login:
        options = replace(options, bot_login=_bot_login(args, key, reporter))
    out = deploy(options, reporter)
    if not out or options.dry_run:
        return out
    if key is not None:
        secret_id = out.get("GithubAppSecretArn") or f"{options.prefix}/github-app"
        value = json.dumps({"app_id": int(args.github_app_id), "private_key": key.pem})
        store_secret(aws.client(options, "secretsmanager"), secret_id, value)
        reporter.info(f"stored GitHub App {int(args.github_app_id)} in {options.prefix}/github-app")
    if hooks is not None and out.get("PoolTable"):
        from gip.store.dynamo_ops import DynamoRedeliveryMarks

        if getattr(options, "profile", None):
            os.environ["AWS_PROFILE"] = options.profile  # pynamodb's botocore session reads it
        marks = DynamoRedeliveryMarks(out["PoolTable"], region=aws.session(options).region_name,
                                      endpoint_url=aws.endpoint_url(options))
        marks.set_hooks(hooks)  # a failure: StoreUnavailable, one line
        reporter.info(f"redelivery sweep hooks: {', '.join(hooks) or 'none'}")
    return out


def _bot_login(args: argparse.Namespace, key: KeyFile, reporter: Any) -> str:
    """The App's ``<slug>[bot]`` from ``GET /app`` (it checks the id and key too: a refusal is
    one line, before anything is deployed); "" with a notice if GitHub cannot be reached."""
    from gip.adapters.github.errors import GitHubError
    from gip.adapters.github.token import check_app
    from gip.config import Settings

    url = getattr(args, "github_api_url", None) or "https://api.github.com"  # --github-api-url, checked
    env = {"GITHUB_APP_ID": str(args.github_app_id), "GITHUB_APP_PRIVATE_KEY": key.pem}
    try:
        app = check_app(Settings.for_prefix(args.prefix, github_api_url=url.rstrip("/")), env=env)
    except GitHubError as exc:
        reporter.notice(f"could not check the GitHub App with {url} ({exc}): pass --bot-login <app-slug>[bot]")
        return ""
    assert app is not None
    reporter.info(f"{app.line}; the notifier comments as {app.bot_login}")
    return app.bot_login


def store_secret(sm: Any, secret_id: str, value: str) -> None:
    """Put ``value`` into the secret (created if the stack's is missing); unchanged: no write."""
    with aws_errors("secretsmanager:PutSecretValue github-app"):
        try:
            current = sm.get_secret_value(SecretId=secret_id).get("SecretString")
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            sm.create_secret(Name=secret_id, SecretString=value)
            return
        if current != value:
            sm.put_secret_value(SecretId=secret_id, SecretString=value)
