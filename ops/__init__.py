"""Operator-side code: the CLI subcommands of bootstrap.py. Never shipped to Lambda."""
