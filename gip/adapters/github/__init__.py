"""GitHub REST access for the gatekeeper and the notifier, the only holders of the token.

- ``errors``: typed errors, each carrying its data (``RateLimited.retry_after`` ...).
- ``client``: pure request building and response decoding, plus one small transport with
  injected ``sleep`` and ``clock`` that retries rate limits and 5xx within bounds.
- ``token``: the token, from Secrets Manager (``GITHUB_TOKEN_SECRET_ID``) or, in local mode
  only, ``GITHUB_TOKEN``; cached per container and never logged.
"""
