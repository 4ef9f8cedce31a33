"""GitHub REST access for the gatekeeper and the notifier, the only holders of the token.

- ``errors``: typed errors, each carrying its data (``RateLimited.retry_after`` ...).
- ``client``: pure request building and response decoding, plus one small transport with
  injected ``sleep`` and ``clock`` that retries rate limits and 5xx within bounds.
- ``auth``: the ``Credentials`` contract (a token per repository, invalidate, rate key).
- ``token``: the personal access token, from Secrets Manager (``GITHUB_TOKEN_SECRET_ID``) or,
  in local mode only, ``GITHUB_TOKEN``; cached per container and never logged. It also picks
  the credentials: a GitHub App (``app``) wins over the token.
- ``app``: GitHub App authentication: the App's RS256 JWT, an installation token per
  repository (cached to 5 minutes before it expires, re-minted after a 401).
- ``hooks``: a webhook's deliveries (the App's, a repository's or an organization's): list a
  page at a time, redeliver one.
"""
