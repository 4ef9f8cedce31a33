"""Argument parsing and dispatch for ``bootstrap.py``.

Every subcommand is a module ``gip.cli.<name>`` (or ``gip.local``) exposing::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Known failures raise :class:`gip.errors.GipError`; they are printed as one line
and exit 1. Bad usage exits 2 (argparse's own convention, kept for our own checks too).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from gip.errors import GipError, UsageError

DEFAULT_PREFIX = "github-issue-processor"

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "deploy": ("gip.cli.deploy", "deploy the stacks to AWS (the default when --org is given)"),
    "local": ("gip.local", "run the whole system on an embedded AWS endpoint (moto server)"),
    "replay": ("gip.cli.replay", "print, verify or re-publish the event log"),
    "report": ("gip.cli.report", "draw the event log as one HTML page: pool timeline, runs, health"),
    "accounts": ("gip.cli.pool_cli", "show the account pool"),
    "status": ("gip.cli.pool_cli", "pool summary, queue and DLQ depth, recent failures"),
    "reinstate": ("gip.cli.pool_cli", "put a quarantined account back (it is cleaned first)"),
    "subscribe": ("gip.cli.subscribe", "add a rule on the bus with your target"),
    "unsubscribe": ("gip.cli.subscribe", "remove a subscription rule"),
    "subscriptions": ("gip.cli.subscribe", "list the rules on the bus"),
    "reconcile": ("gip.cli.reconcile_cli", "compare the pool with the Organization and fix it"),
    "redeliver": ("gip.cli.redeliver", "redeliver the GitHub webhook deliveries that failed"),
    "destroy": ("gip.cli.destroy", "remove the stacks (keeps the event table and results)"),
}


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand takes (DESIGN.md, CLI contract)."""
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                        help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's)")
    parser.add_argument("--profile", default=os.environ.get("AWS_PROFILE"),
                        help="AWS named profile for credentials (default: $AWS_PROFILE)")
    parser.add_argument("--prefix", default=os.environ.get("GIP_PREFIX", DEFAULT_PREFIX),
                        help=f"name prefix of every stack, table, queue and bus (default: $GIP_PREFIX, "
                             f"else {DEFAULT_PREFIX})")
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
                        help="AWS endpoint (e.g. http://127.0.0.1:4566 for --local)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bootstrap.py",
        description="github-issue-processor: reproduce GitHub bug reports in AWS sandbox accounts. "
                    "`bootstrap.py --org o-xxxxxxxxxx` deploys to AWS; add --local to run it all "
                    "on this machine.",
        epilog="Exit codes: 0 ok, 1 the operation failed (or --verify found drift), 2 bad usage. "
               "`bootstrap.py COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_common(p)
        p.set_defaults(_module=module_name)
        module = _load(module_name)
        if module is not None:
            adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
            adder(p)
    return parser


def _load(module_name: str) -> ModuleType | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # not built yet; the command reports that when called
        raise
    # a command module exposes run/add_arguments, or run_<name>/add_<name>_arguments (gip.cli.pool_cli)
    entry = any(n in ("run", "add_arguments") or n.startswith("run_") for n in vars(module))
    return module if entry else None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``, as the console script calls it) and run.

    A reader that hangs up (``replay | head``) ends the command quietly with exit 0: stdout is
    pointed at devnull so the interpreter's final flush does not fail again, as Python's
    documentation of SIGPIPE recommends (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `bootstrap.py --org o-x [--local]` with no subcommand means deploy (or local).
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["local", *(a for a in argv if a != "--local")] if "--local" in argv else ["deploy", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = _load(args._module)
    if module is None:
        print(f"error: '{args.command}' is not available in this build", file=sys.stderr)
        return 1
    runner = getattr(module, f"run_{args.command}", None) or module.run
    try:
        return int(runner(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
