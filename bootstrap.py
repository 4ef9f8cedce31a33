#!/usr/bin/env python3
"""github-issue-processor: one CLI to deploy, run locally, audit and operate.

    python bootstrap.py --org o-xxxxxxxxxx [--labels L1,L2] [--dry-run] [--yes]   deploy to AWS
    python bootstrap.py --org o-example --local [--port 8080] [--aws-port 4566]   run on moto
    python bootstrap.py replay|accounts|status|subscribe|unsubscribe|subscriptions|
                        reconcile|reinstate|destroy ...

Each subcommand lives in its own module under ``gip/cli/``; this file only dispatches
(the installed console script calls :func:`gip.cli.main.main` directly).
Exit codes: 0 ok, 1 the operation failed (or --verify found drift), 2 bad usage.
"""

from __future__ import annotations

import sys

from gip.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
