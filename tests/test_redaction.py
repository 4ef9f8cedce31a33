"""gip.domain.redaction: exact values and patterns, redacted before any cut (pure)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gip.domain.redaction import FRAGMENT_CHARS, REDACTED, Redactor, redact, secrets_from_env
from tests.planted import EXAMPLES, TALLY, exact_values, families, fillers, leaks
from worker.results import log_tail

SESSION = "IQoJb3JpZ2luX2VjEFAaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexample+/=="
HELD = "wh-sEcReT-only-the-worker-knows"


@pytest.mark.parametrize(("text", "secret"), [
    ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("key ASIAY34FZKBOKMUTVV7A in use", "Y34FZKBOKMUTVV7A"),
    (f"AWS_SESSION_TOKEN={SESSION}", "ZXhhbXBsZWV4YW1w"),
    (f"token in a sentence {SESSION} here", "ZXhhbXBsZWV4YW1w"),
    ('{"Credentials": {"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"}}', "wJalrXUtnFEMI"),
    ("<SessionToken>abc.def-ghi</SessionToken>", "abc.def-ghi"),
    ("aws s3 ls --secret-access-key s3cr3tv4lu3", "s3cr3tv4lu3"),
    ("Authorization: token 0123456789abcdef", "0123456789abcdef"),
    ("Authorization: Bearer short", "short"),
    ('curl -H "authorization: Basic dXNlcjpwYXNz" x', "dXNlcjpwYXNz"),
    ("xghp_" + "a" * 36, "a" * 36),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", "lQOYBF"),
])
def test_each_pattern_family_is_redacted(text, secret):
    assert secret not in redact(text)


def test_exact_values_are_redacted_even_url_encoded_and_the_longest_first():
    r = Redactor(["abc/def+ghi=jkl", "abc/def+ghi=jkl-and-more"])
    out = r("a abc/def+ghi=jkl-and-more b abc%2Fdef%2Bghi%3Djkl c")
    assert out == f"a {REDACTED} b {REDACTED} c"


def test_short_values_are_not_exact_secrets():
    # a test key such as "x" would shred ordinary text
    assert Redactor(["x", "testing"])("x testing") == "x testing"


@pytest.mark.parametrize("cut", ["end", "start", "marker"])
def test_a_piece_of_a_value_left_by_an_earlier_cut_is_redacted(cut):
    value = "zQ9-mJ2-pX7-kL4-vB8-nC1"
    text = {"end": "output " + value[:10],
            "start": value[-10:] + " output",
            "marker": "a " + value[:9] + "\n…[512 bytes of output dropped: output cap]…\n" + value[-8:] + " b"}[cut]
    out = Redactor([value])(text)
    assert "output" in out or "bytes of output" in out
    assert value[:FRAGMENT_CHARS] not in out and value[-FRAGMENT_CHARS:] not in out


@pytest.mark.parametrize("text", ["see ghp_a1B2c3D4e5", "key AKIAIOSF", "Authorization: Bearer eyJhbG",
                                  f"tok {SESSION[:20]}…", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKC"])
def test_a_recognisable_start_of_a_token_at_a_cut_is_redacted(text):
    secret = text.split()[-1].rstrip("…")
    assert secret not in redact(text)


def test_a_piece_of_a_value_beside_what_a_pattern_took_is_redacted():
    # found by hypothesis: the value's end looked like an AWS secret, the pattern took it, and
    # the middle piece left at the cut matched neither the value's start nor its end
    value = "000000000000.000000000000000000Aa"
    out = Redactor([value])(value[1:])
    assert "00000000000." not in out and out.endswith("[REDACTED AWS SECRET]")


@pytest.mark.parametrize("tail", ["'", "", " more", "\\n<Expiration>"])
def test_an_xml_secret_whose_closing_tag_was_cut_is_redacted(tail):
    # found by the worker-sink property test: a processor's command clipped at 200 characters
    value = "TrzHRYsKO8Bppex+U2Bqj8QBmvS5dOGO0"
    out = redact(f"sh -c '<SecretAccessKey>{value}{tail}")
    assert value not in out and value[:12] not in out and "<SecretAccessKey>" in out


def test_the_end_of_a_private_key_whose_begin_was_cut_is_redacted_but_not_the_lines_before():
    text = "before it\nMIIEpAIBAAKCAQEA\nabc+/=\n-----END RSA PRIVATE KEY-----\nafter"
    out = redact(text)
    assert "MIIEp" not in out and "abc+/=" not in out
    assert out.startswith("before it\n") and out.endswith("after")


@pytest.mark.parametrize("text", [
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "AssertionError: expected 3 got 4\nauthor: alice",
    "the token expired; see … for details",
    "ValueError: frob exploded … again",
])
def test_ordinary_output_is_left_alone(text):
    assert redact(text) == text
    assert Redactor([HELD])(text) == text


def test_the_worker_holds_the_values_of_secret_looking_variables():
    env = {"AWS_SECRET_ACCESS_KEY": "x" * 40, "GITHUB_TOKEN": "ghp_" + "t" * 36, "HOME": "/root",
           "GITHUB_WEBHOOK_SECRET": HELD, "AWS_ACCESS_KEY_ID": "testing", "PATH": "/usr/bin"}
    assert secrets_from_env(env) == {"x" * 40, "ghp_" + "t" * 36, HELD}


def test_data_redacts_every_string_in_nested_json():
    r = Redactor([HELD])
    assert r.data({"a": [HELD, 1, {"b": f"x {HELD}"}], "n": None}) == {
        "a": [REDACTED, 1, {"b": f"x {REDACTED}"}], "n": None}


def test_redacting_a_megabyte_is_fast():
    text = ("u" * 500_000 + "\n" + "token=" * 50_000 + "a://" * 50_000 + "…ghp_" * 10_000
            + "-----END RSA PRIVATE KEY-----\n" * 1_000)
    started = time.thread_time()  # CPU time: a busy machine (other xdist workers) does not count
    Redactor([HELD, SESSION])(text)
    assert time.thread_time() - started < 2.0


# ---------------------------------------------------------------- properties


@settings(max_examples=EXAMPLES, deadline=None)
@given(planted=families(), before=fillers(), after=fillers(), lines=st.integers(0, 45),
       chars=st.integers(1, 400))
def test_no_planted_pattern_secret_survives_redaction_then_any_tail_cut(planted, before, after, lines, chars):
    # GIVEN a secret followed by enough lines/characters that the tail cut lands anywhere
    text = before + planted.text + after + "\nline" * lines
    # WHEN the whole text is redacted and then cut, as the worker does
    out = log_tail(redact(text), lines=40, chars=chars)
    TALLY["cases"] += 1
    assert leaks(out, planted.secret, around=before + after) == []
    assert leaks(redact(text), planted.secret, around=before + after) == []


@settings(max_examples=EXAMPLES, deadline=None)
@given(value=exact_values(), before=fillers(), after=fillers(), data=st.data())
def test_an_earlier_cut_through_a_value_leaves_no_recognisable_piece(value, before, after, data):
    # GIVEN a value cut somewhere by a cap that ran before redaction (the runner's output cap)
    at = data.draw(st.integers(1, len(value) - 1))
    text = data.draw(st.sampled_from([
        before + value[:at],                                  # the head of a capped text
        value[at:] + after,                                   # the tail of one
        before + value[:at] + "\n…[9 bytes dropped]…\n" + value[at:] + after,  # both, around a marker
    ]))
    out = Redactor([value])(text)
    TALLY["cases"] += 1
    # THEN nothing of FRAGMENT_CHARS or more is left of it at the cut
    assert leaks(out, value, around=before + after) == []


# ---------------------------------------------------------------- a word after "token:" is not a secret


@pytest.mark.parametrize("text", [
    "token: expired", "Token: Expired.", "auth token: missing", '{"token": "invalid", "n": 1}',
    "secret: NONE", "api_key: ****", "password: \"\"", "refresh token: re-issued",
])
def test_an_ordinary_word_after_a_colon_is_left_alone(text):
    assert redact(text) == text


@pytest.mark.parametrize(("text", "secret"), [
    ("password: hunter2", "hunter2"),  # a digit: not a word
    ("password: correcthorsebattery", "correcthorsebattery"),  # 16+ letters may be a password
    ("token: aBcDeFgH", "aBcDeFgH"),  # mixed case inside: not a word
    ("PASSWORD=hunter", "hunter"),  # after "=", an assignment proper: any value
    ("secret: s3cr3t", "s3cr3t"),
])
def test_a_value_that_looks_like_a_secret_after_a_colon_is_still_redacted(text, secret):
    assert secret not in redact(text)


_LEAD = st.sampled_from(["token: ", "token:", "Token: ", "token=", "GITHUB_TOKEN=", '"token": "',
                         "password: ", "auth: ", "", "use ", "x-access-token:"])
_CLASSIC = st.tuples(st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
                     st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                             min_size=36, max_size=36)).map("".join)
_FINE_GRAINED = st.tuples(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=22, max_size=22),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=59,
            max_size=59)).map(lambda p: f"github_pat_{p[0]}_{p[1]}")
_AWS_KEY_ID = st.tuples(st.sampled_from(["AKIA", "ASIA"]),
                        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16)).map("".join)
# a secret access key: 40 base64 characters; real ones mix cases and digits
_AWS_SECRET_KEY = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                          min_size=37, max_size=37).map(lambda s: "aZ9" + s)
_WORDS = st.from_regex(r"[A-Z]?[a-z]{1,9}(-[a-z]{1,3})?[.!?]?", fullmatch=True)  # at most _WORD_MAX (15) characters


@settings(max_examples=EXAMPLES, deadline=None)
@given(lead=_LEAD, secret=st.one_of(_CLASSIC, _FINE_GRAINED, _AWS_KEY_ID, _AWS_SECRET_KEY),
       before=fillers(80), after=st.sampled_from(["", "\n", " then", '"', ", next", ". ok"]))
def test_real_github_tokens_and_aws_keys_are_hidden_whatever_precedes_them(lead, secret, before, after):
    # GIVEN a real-format GitHub token (ghp_/ghs_/… classic, github_pat_ fine-grained) or AWS key
    # after "token:" or any other lead-in, amid arbitrary output
    text = f"{before}\n{lead}{secret}{after}"
    # THEN no recognisable piece of it is left
    assert leaks(redact(text), secret, around=before) == []


@settings(max_examples=EXAMPLES, deadline=None)
@given(key=st.sampled_from(["token", "Token", "auth token", "password", "api_key", "secret"]), word=_WORDS,
       rest=st.sampled_from(["", " for this run", ", retrying", "\nnext line"]))
def test_an_ordinary_word_after_a_secret_looking_key_and_colon_is_kept(key, word, rest):
    text = f"{key}: {word}{rest}"
    assert redact(text) == text
