"""Cleaning a member account between leases (docs/lifecycle.md, "Cleaning").

- ``job``      what to clean: account, regions, member credentials, what is protected
- ``plan``     PURE decisions: which listed resources are ours to keep, residue from tagging
- ``kinds``    the resource kinds the built-in cleaner knows: list + delete per kind
- ``builtin``  the built-in (fallback) cleaner: every kind, every allowed region
- ``residue``  what billable is left after any cleaner ran
- ``nuke``     aws-nuke: its per-account config (pure) and the subprocess that runs it
"""
