"""Pure webhook checks: signature (GitHub's test vector), headers, media type, size, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gip.domain.delivery import (
    BadRequest,
    Delivery,
    InvalidSignature,
    PayloadTooLarge,
    UnsupportedMediaType,
    parse_delivery,
    parse_secrets,
    signature_for,
    verify_signature,
)
from gip.errors import ConfigError, GipError

EVENTS = Path(__file__).parent / "events"
TEST_SECRET = "test-webhook-secret"  # the secret tests/events/wh_*.json are signed with

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def recorded(name: str) -> tuple[dict[str, str], bytes]:
    doc = json.loads((EVENTS / name).read_text())
    body = json.dumps(doc["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    return {k.lower(): v for k, v in doc["headers"].items()}, body


def headers_for(body: bytes, *, event: str = "issues", secret: str = TEST_SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": "d-1",
        "x-hub-signature-256": signature_for(body, secret),
    }


def test_github_test_vector_passes() -> None:
    verify_signature(VECTOR_BODY, signature=VECTOR_SIGNATURE, secrets=[VECTOR_SECRET])
    assert signature_for(VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE


def test_test_vector_with_one_flipped_byte_fails() -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(b"Hello, World?", signature=VECTOR_SIGNATURE, secrets=[VECTOR_SECRET])
    with pytest.raises(InvalidSignature):
        verify_signature(VECTOR_BODY, signature=VECTOR_SIGNATURE[:-1] + "f", secrets=[VECTOR_SECRET])


def test_wrong_secret_fails() -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(VECTOR_BODY, signature=VECTOR_SIGNATURE, secrets=["not it"])


def test_rotation_accepts_current_and_next_secret() -> None:
    for secrets in ([VECTOR_SECRET, "next"], ["old", VECTOR_SECRET]):
        verify_signature(VECTOR_BODY, signature=VECTOR_SIGNATURE, secrets=secrets)


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=", "sha1=" + "0" * 40, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
     VECTOR_SIGNATURE + "00", "sha256=zz" + "0" * 62],
)
def test_malformed_signature_is_invalid(signature: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(VECTOR_BODY, signature=signature, secrets=[VECTOR_SECRET])


def test_no_secret_configured_never_accepts() -> None:
    for secrets in ([], [""]):
        with pytest.raises(ConfigError):
            verify_signature(VECTOR_BODY, signature=VECTOR_SIGNATURE, secrets=secrets)


def test_parse_secrets_reads_current_and_next() -> None:
    # the deprecated comma form: each part, and the whole value (a secret may hold a comma)
    assert parse_secrets(" cur , next ") == ("cur", "next", "cur , next")
    assert parse_secrets("only") == ("only",)
    assert parse_secrets(",") == ()
    assert parse_secrets(None) == ()


def test_two_settings_rotate_and_a_secret_with_a_comma_is_never_split() -> None:
    assert parse_secrets("a,b", "next") == ("a,b", "next")
    assert parse_secrets("current", "next") == ("current", "next")
    assert parse_secrets(None, "next") == ("next",)
    body = b'{"a": 1}'
    verify_signature(body, signature=signature_for(body, "a,b"), secrets=parse_secrets("a,b", "n"))
    with pytest.raises(InvalidSignature):
        verify_signature(body, signature=signature_for(body, "a"), secrets=parse_secrets("a,b", "n"))


@pytest.mark.parametrize(
    "name", ["wh_issues_opened.json", "wh_issues_labeled.json", "wh_issue_comment_created.json", "wh_ping.json"]
)
def test_recorded_deliveries_parse(name: str) -> None:
    headers, body = recorded(name)
    delivery = parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1 << 20)
    assert isinstance(delivery, Delivery)
    assert delivery.event == headers["x-github-event"]
    assert delivery.delivery_id == headers["x-github-delivery"]
    assert delivery.hook_id == "482153771"
    assert delivery.payload["repository"]["full_name"] == "octo-org/hello-world"


def test_recorded_delivery_under_the_next_secret_only_is_rejected() -> None:
    headers, body = recorded("wh_issues_labeled.json")
    with pytest.raises(InvalidSignature):
        parse_delivery(headers, body, secrets=["another"], max_bytes=1 << 20)


@pytest.mark.parametrize("missing", ["x-github-event", "x-github-delivery", "x-hub-signature-256"])
def test_missing_github_header_is_bad_request(missing: str) -> None:
    body = b'{"action": "opened"}'
    headers = headers_for(body)
    del headers[missing]
    with pytest.raises(BadRequest, match=missing):
        parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1024)


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-github-event", "Issues; DROP"), ("x-github-delivery", "../../etc"), ("x-github-delivery", "a" * 200)],
)
def test_malformed_github_header_is_bad_request(header: str, value: str) -> None:
    body = b"{}"
    headers = headers_for(body) | {header: value}
    with pytest.raises(BadRequest):
        parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1024)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data; boundary=x"]
)
def test_non_json_content_type_is_unsupported(content_type: str) -> None:
    body = b'{"zen": "x"}'
    headers = headers_for(body) | {"content-type": content_type}
    with pytest.raises(UnsupportedMediaType) as info:
        parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1024)
    assert info.value.status == 415


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_variants_are_accepted(content_type: str) -> None:
    body = b'{"zen": "x"}'
    headers = headers_for(body, event="ping") | {"content-type": content_type}
    assert parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1024).event == "ping"


@pytest.mark.parametrize("body", [b"payload=%7B%7D", b"[1, 2]", b'"text"', b"\xff\xfe{}", b"{", b""])
def test_signed_body_that_is_not_a_json_object_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=1024)
    assert info.value.status == 400


def test_body_over_the_cap_is_too_large_before_anything_else() -> None:
    body = b"{" + b" " * 2048 + b"}"
    with pytest.raises(PayloadTooLarge) as info:
        parse_delivery({}, body, secrets=[TEST_SECRET], max_bytes=1024)
    assert info.value.status == 413
    parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=len(body))


def test_unsigned_garbage_is_rejected_by_signature_before_parsing() -> None:
    body = b"not json at all"
    headers = headers_for(body) | {"x-hub-signature-256": "sha256=" + "0" * 64}
    with pytest.raises(InvalidSignature) as info:
        parse_delivery(headers, body, secrets=[TEST_SECRET], max_bytes=1024)
    assert info.value.status == 401


def test_rejections_are_gip_errors() -> None:
    for cls in (BadRequest, InvalidSignature, PayloadTooLarge, UnsupportedMediaType):
        assert issubclass(cls, GipError)


# --- bodies that no UTF-8 store could hold: JSON's \udfff escape -----------------------------


@pytest.mark.parametrize(("body", "where"), [
    (b'{"issue": {"title": "a\\udfff"}}', "issue.title"),
    (b'{"issue": {"labels": [{"name": "ok"}, {"name": "\\ud800x"}]}}', "issue.labels[1].name"),
    (b'{"sender": {"login": "\\udc00"}}', "sender.login"),
    (b'{"comment": {"body": "/reproduce\\n\\udfff"}}', "comment.body"),
    (b'{"repository": {"full_name": "o/\\udfff"}}', "repository.full_name"),
    (b'{"\\udfff": 1}', "<key>"),
    (b'{"a": [[[{"b\\udfff": true}]]]}', "a[0][0][0].<key>"),
])
def test_lone_surrogate_anywhere_is_bad_request_naming_where(body: bytes, where: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=1024)
    assert info.value.status == 400
    assert info.value.reason.startswith(f"body is not representable: {where} holds a lone surrogate")
    info.value.reason.encode("utf-8")  # the reason itself is always encodable


def test_surrogate_pair_escape_is_valid_text() -> None:
    body = b'{"issue": {"title": "\\ud83d\\ude00"}}'  # U+1F600, escaped as JSON does
    delivery = parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=1024)
    assert delivery.payload["issue"]["title"] == "\N{GRINNING FACE}"


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": [Infinity]}'])
def test_non_json_constants_are_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=1024)


@pytest.mark.parametrize("depth", [500, 5000])
def test_deeply_nested_surrogate_is_bad_request_not_a_crash(depth: int) -> None:
    body = b'{"a": ' + b"[" * depth + b'"\\udfff"' + b"]" * depth + b"}"
    with pytest.raises(BadRequest) as info:  # JSON's own depth limit, or the surrogate
        parse_delivery(headers_for(body), body, secrets=[TEST_SECRET], max_bytes=1 << 20)
    if depth == 500:
        assert "lone surrogate" in info.value.reason
