"""The local API Gateway's request framing (issue 14): a bad ``Content-Length`` gets a 400, an
oversized or chunked body is refused and the connection closed, never read as the next request."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from gip.local.apigw import MAX_BODY, Gateway, body_length


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, list[dict]]]:
    seen: list[dict] = []

    def invoke(event: dict) -> dict:
        seen.append(event)
        return {"statusCode": 202, "body": "accepted"}

    gw = Gateway("127.0.0.1", 0, invoke=invoke, health=lambda: (True, {"status": "ready"}))
    gw.start()
    try:
        yield gw, seen
    finally:
        gw.stop()


def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes (a 5 s timeout fails the test: a hang)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"the gateway hung; got so far: {b''.join(chunks)!r}")
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_body_length_is_pure_and_strict() -> None:
    assert body_length("12", None) == (12, None)
    assert body_length(None, None) == (0, None)
    for bad in ("abc", "-1", "+5", "1.5", "١٢", " "):
        status = body_length(bad, None)[1]
        assert status is not None and (status[0] == 400 or bad.strip() == ""), bad
    assert body_length(str(MAX_BODY + 1), None)[1][0] == 413  # type: ignore[index]
    assert body_length("5", "chunked")[1][0] == 411  # type: ignore[index]


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_malformed_content_length_is_a_400_and_the_connection_closes(
        gateway: tuple[Gateway, list[dict]], value: str) -> None:
    gw, seen = gateway
    answer = exchange(gw.port, f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n{{}}".encode())
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Length must be a non-negative integer" in answer
    assert answer.count(b"HTTP/1.1") == 1 and seen == []


def test_a_chunked_body_is_refused_and_never_parsed_as_the_next_request(gateway: tuple[Gateway, list[dict]]) -> None:
    gw, seen = gateway
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = f"{len(smuggled):x}\r\n".encode() + smuggled + b"\r\n0\r\n\r\n"
    answer = exchange(gw.port, b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 411 ") and answer.count(b"HTTP/1.1") == 1
    assert seen == []


def test_an_oversized_body_is_a_413_then_the_connection_closes(gateway: tuple[Gateway, list[dict]]) -> None:
    gw, seen = gateway
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
    answer = exchange(gw.port, head + smuggled)
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.count(b"HTTP/1.1") == 1
    assert seen == []


def test_a_good_request_still_keeps_the_connection_alive(gateway: tuple[Gateway, list[dict]]) -> None:
    gw, seen = gateway
    one = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(gw.port, one + last)
    assert answer.startswith(b"HTTP/1.1 202 ") and b"HTTP/1.1 200 " in answer
    assert [e["body"] for e in seen] == ["{}"]
