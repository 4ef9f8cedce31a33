"""Planted secrets for the redaction property tests: hypothesis strategies per family, and the
leak check every sink is held to."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st

# REDACTION_EXAMPLES=1000 for a long run; the default keeps the suite quick.
EXAMPLES = int(os.environ.get("REDACTION_EXAMPLES", "40"))
# The suite's worker-sink cases are a fixed set (CI must not fail at random); REDACTION_RANDOM=1
# explores new ones (under `ulimit -v`: hypothesis's shrinking of a large failure is hungry).
DERANDOMIZE = os.environ.get("REDACTION_RANDOM") != "1"
WINDOW = 12  # a run of this many characters of a secret, found in a sink, is a leak
TALLY: Counter[str] = Counter()  # cases generated / sinks checked / leaks, per test session

_UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ALNUM = _UPPER_DIGITS + "abcdefghijklmnopqrstuvwxyz"
_B64 = _ALNUM + "+/"


@dataclass(frozen=True)
class Planted:
    """``text`` goes into the output; ``secret`` is what must not come out."""

    family: str
    text: str
    secret: str


def _chars(alphabet: str, n: int, m: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=m or n)


def _pem(label: str, body: list[str]) -> Planted:
    text = f"-----BEGIN {label}-----\n" + "\n".join(body) + f"\n-----END {label}-----"
    return Planted("private_key", text, "".join(body))


def families() -> st.SearchStrategy[Planted]:
    """One planted secret of any pattern family the redaction must know without its value."""
    value = _chars(_B64, 16, 40)
    return st.one_of(
        st.tuples(st.sampled_from(["AKIA", "ASIA"]), _chars(_UPPER_DIGITS, 16)).map(
            lambda p: Planted("aws_key_id", p[0] + p[1], p[0] + p[1])),
        st.tuples(st.sampled_from(["aws_secret_access_key={}", "AWS_SECRET_ACCESS_KEY = {}",
                                   '"SecretAccessKey": "{}"', "'aws_session_token': '{}'",
                                   "password: {}", "<SecretAccessKey>{}</SecretAccessKey>",
                                   "--secret-access-key {}"]), value).map(
            lambda p: Planted("assignment", p[0].format(p[1]), p[1])),
        st.tuples(st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]), _chars(_ALNUM, 36)).map(
            lambda p: Planted("github_token", p[0] + p[1], p[0] + p[1])),
        st.tuples(_chars(_ALNUM, 22), _chars(_ALNUM + "_", 59)).map(
            lambda p: Planted("github_token", f"github_pat_{p[0]}_{p[1]}", f"github_pat_{p[0]}_{p[1]}")),
        st.tuples(st.sampled_from(["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY",
                                   "PRIVATE KEY", "PGP PRIVATE KEY BLOCK"]),
                  st.lists(_chars(_B64, 64), min_size=2, max_size=6)).map(lambda p: _pem(*p)),
        st.tuples(st.sampled_from(["Authorization: Bearer {}", "authorization: token {}",
                                   '-H "Authorization: Bearer {}"']),
                  _chars(_ALNUM + "._-", 20, 60)).map(
            lambda p: Planted("authorization", p[0].format(p[1]), p[1])),
    )


def exact_values() -> st.SearchStrategy[str]:
    """Credential-like values no pattern knows (only exact-value redaction can catch them)."""
    return _chars(_ALNUM + "-_.", 16, 60)


def fillers(max_size: int = 300) -> st.SearchStrategy[str]:
    """Ordinary, and not so ordinary, output around the secrets."""
    return st.text(st.characters(codec="utf-8", exclude_characters="…"), max_size=max_size)


def leaks(sink: str, secret: str, *, around: str = "") -> list[str]:
    """Pieces of ``secret`` (``WINDOW`` characters long) found in ``sink`` that ``around`` (the
    text the secret was planted in) does not explain."""
    n = min(WINDOW, len(secret))
    pieces = {secret[i:i + n] for i in range(len(secret) - n + 1)}
    return sorted(p for p in pieces if p in sink and p not in around)
