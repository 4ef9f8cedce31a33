"""The CloudFormation custom-resource protocol, pure: parsing, unwrapping, responses."""

from __future__ import annotations

import json

import pytest

from gip.adapters import custom_resource as cr

STACK = "arn:aws:cloudformation:us-east-1:222233334444:stack/StackSet-gip-member-abc/1a2b3c4d"


def request(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "RequestType": "Create",
        "ServiceToken": "arn:aws:sns:us-east-1:111122223333:gip-registrar",
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=s",
        "StackId": STACK,
        "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
        "ResourceType": "Custom::PoolRegistration",
        "LogicalResourceId": "PoolRegistration",
        "ResourceProperties": {"ServiceToken": "arn:aws:sns:us-east-1:111122223333:gip-registrar",
                               "AccountId": "222233334444"},
    }
    base.update(overrides)
    return base


def test_create_request_is_parsed_with_cloudformation_field_names() -> None:
    req = cr.parse_request(request())
    assert req.request_type == "Create"
    assert req.stack_account_id == "222233334444"
    assert req.physical_resource_id is None
    assert req.resource_properties["AccountId"] == "222233334444"


@pytest.mark.parametrize("missing", ["RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId"])
def test_request_missing_a_required_field_is_invalid(missing: str) -> None:
    payload = request()
    del payload[missing]
    with pytest.raises(cr.InvalidRequest, match=missing):
        cr.parse_request(payload)


def test_delete_without_physical_id_is_invalid() -> None:
    with pytest.raises(cr.InvalidRequest, match="PhysicalResourceId"):
        cr.parse_request(request(RequestType="Delete"))


def test_unknown_request_type_is_invalid() -> None:
    with pytest.raises(cr.InvalidRequest, match="Replace"):
        cr.parse_request(request(RequestType="Replace"))


def test_response_echoes_the_request_identifiers_exactly() -> None:
    req = cr.parse_request(request())
    response = cr.build_response(req, status="SUCCESS", physical_resource_id="pid-1", data={"AccountId": "222233334444"})
    assert response == {
        "Status": "SUCCESS",
        "Reason": "",
        "PhysicalResourceId": "pid-1",
        "StackId": STACK,
        "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
        "LogicalResourceId": "PoolRegistration",
        "NoEcho": False,
        "Data": {"AccountId": "222233334444"},
    }


def test_failed_response_always_has_a_reason_and_stays_under_4096_bytes() -> None:
    req = cr.parse_request(request())
    response = cr.build_response(req, status="FAILED", physical_resource_id="p", reason="",
                                 data={"Blob": "x" * 10_000})
    assert response["Reason"]
    assert len(cr.encode_response(response)) <= cr.MAX_RESPONSE_BYTES
    long = cr.build_response(req, status="FAILED", physical_resource_id="p", reason="y" * 5000)
    assert len(long["Reason"]) <= cr.MAX_REASON_CHARS


def test_sns_wrapped_request_is_unwrapped() -> None:
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(request())}}]}
    [payload] = list(cr.unwrap_messages(event))
    assert cr.parse_request(payload).request_id == request()["RequestId"]


def test_sns_to_sqs_wrapped_request_is_unwrapped() -> None:
    note = {"Type": "Notification", "Message": json.dumps(request(RequestType="Update", PhysicalResourceId="p"))}
    event = {"Records": [{"messageId": "m1", "body": json.dumps(note)}]}
    [payload] = list(cr.unwrap_messages(event))
    assert cr.parse_request(payload).request_type == "Update"


def test_direct_invocation_is_the_request_itself() -> None:
    assert list(cr.unwrap_messages(request())) == [request()]


def test_garbage_sns_message_unwraps_to_empty_and_cannot_be_salvaged() -> None:
    event = {"Records": [{"Sns": {"Message": "not json"}}]}
    [payload] = list(cr.unwrap_messages(event))
    assert payload == {}
    assert cr.salvage(payload) is None


def test_invalid_request_with_a_response_url_is_salvaged_to_answer_it() -> None:
    salvaged = cr.salvage({"ResponseURL": "https://b.s3.amazonaws.com/x", "RequestId": "r", "RequestType": "Bogus"})
    assert salvaged is not None and salvaged.request_id == "r" and salvaged.request_type == "Create"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?sig", True),
        ("https://bucket.s3.cn-north-1.amazonaws.com.cn/a", True),
        ("http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a", False),
        ("https://evil.example.com/a", False),
        ("https://amazonaws.com.evil.example/a", False),
        ("http://127.0.0.1:8080/a", False),
    ],
)
def test_only_s3_response_urls_are_answered(url: str, ok: bool) -> None:
    assert cr.response_url_allowed(url) is ok


def test_a_test_host_can_be_allowed_explicitly() -> None:
    assert cr.response_url_allowed("http://127.0.0.1:8080/a", extra_hosts=("127.0.0.1",))


def test_put_headers_send_an_empty_content_type() -> None:
    assert cr.put_headers(b"{}") == {"Content-Type": "", "Content-Length": "2"}
