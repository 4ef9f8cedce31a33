#!/usr/bin/env python3
"""github-issue-processor: one CLI to deploy, run locally, audit and operate.

    python bootstrap.py --org o-xxxxxxxxxx [--labels L1,L2] [--dry-run] [--yes]   deploy to AWS
    python bootstrap.py --org o-example --local [--port 8080] [--aws-port 4566]   run on moto
    python bootstrap.py replay|accounts|status|subscribe|unsubscribe|subscriptions|
                        reconcile|reinstate|destroy ...

Each subcommand lives in its own module under ``gip/cli/``; this file only checks that the
dependencies are importable and dispatches (the installed console script calls
:func:`gip.cli.main.main` directly).
Exit codes: 0 ok, 1 the operation failed (or --verify found drift), 2 bad usage.
"""

from __future__ import annotations

import importlib.util
import sys

# import name -> distribution (setup.cfg install_requires)
REQUIRED = {"boto3": "boto3", "botocore": "botocore", "pynamodb": "pynamodb", "jsonschema": "jsonschema",
            "requests": "requests", "aws_lambda_powertools": "aws-lambda-powertools", "jwt": "PyJWT"}


def missing_packages() -> list[str]:
    """The required distributions that cannot be imported here (checked without importing them)."""
    return [dist for name, dist in REQUIRED.items() if importlib.util.find_spec(name) is None]


def main() -> int:
    missing = missing_packages()
    if missing:
        print(f"error: missing Python packages ({', '.join(missing)}) for {sys.executable}: "
              "run `make venv` and use .venv/bin/python, or `pip install .`", file=sys.stderr)
        return 1
    from gip.cli.main import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
