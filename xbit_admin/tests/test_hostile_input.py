"""Issue #17, findings 3 and 4: hostile request shapes get a clear 4xx, never a 500 — a JSON body nested
50,000 deep, NUL characters in the path, the query or a form, a body larger than the limit (at the ASGI
server too, chunked, before Django reads it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.test import Client

from conftest import PASSWORD
from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def test_a_json_body_nested_50000_deep_is_a_400(db: Any) -> None:
    body = "[" * 50_000 + "]" * 50_000
    response = Client().post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


def test_a_json_body_nested_deeper_than_the_limit_is_a_400(db: Any) -> None:
    nested: list[Any] = []
    for _ in range(40):  # deeper than MAX_JSON_DEPTH (32), far from Python's recursion limit
        nested = [nested]
    body = json.dumps({"email": "a@b.c", "password": "x" * 12, "device": nested})
    response = Client().post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


def test_nul_characters_are_a_400_wherever_they_are(make_trader: Any, console_as: Any) -> None:
    trader = make_trader()
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    for path in ["/api/v1/api-keys/xk_a%00b/revoke", "/api/v1/orders?symbol=a%00b&status=x"]:
        method = client.post if "revoke" in path else client.get
        response = method(path, **auth)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["code"] == "VALIDATION_ERROR", path
    response = client.post(
        "/api/v1/auth/login",
        json.dumps({"email": "a\u0000@b.c", "password": "x"}),
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"

    support = console_as(Role.SUPPORT)
    assert support.get("/users/", {"q": "a\x00b"}).status_code == 400
    assert support.get("/audit/", {"actor": "a\x00b"}).status_code == 400
    assert support.get("/users/", {"q": "ab"}).status_code == 200


# "²" passes str.isdigit() and makes int() raise; "١٢" passes it and int() reads 12. Neither is a number.
NOT_ASCII_DIGITS = ["²", "١٢", "٣", "1²", "１２"]


def test_only_ascii_digits_are_whole_numbers() -> None:
    from core.text import ascii_int

    assert ascii_int("0") == 0 and ascii_int("007") == 7 and ascii_int("9" * 18) == 10**18 - 1
    for text in [*NOT_ASCII_DIGITS, "", " 1", "1 ", "1\n", "-1", "+1", "1_0", "1.0", "9" * 19, None, 12]:
        assert ascii_int(text) is None, repr(text)
    assert ascii_int("123", max_digits=2) is None


def test_digits_of_other_scripts_in_console_filters_are_not_numbers(console_as: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    for text in NOT_ASCII_DIGITS:
        for path, query in [
            ("/users/", {"q": text}),
            ("/routing/", {"before": text}),
            ("/routing/", {"user_id": text}),
            ("/venue/", {"samples-over": text}),
            ("/venue/", {"hours": text}),
        ]:
            response = admin.get(path, query)
            assert response.status_code == 200, (path, query, response.status_code)
    routing = admin.get("/routing/", {"user_id": "١٢"})
    assert "is not a user id" in routing.content.decode(), "the filter says why it matches nothing"


def test_digits_of_other_scripts_in_api_numbers_are_a_4xx(make_trader: Any) -> None:
    trader = make_trader()
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    for text in NOT_ASCII_DIGITS:
        response = client.get("/api/v1/orders", {"limit": text}, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 400, (text, response.status_code)
    # the schema says "an integer, at least 1": a huge one is the largest page (make fuzz sent
    # limit=172319697475203891200 and got a 400), zero or a sign is refused
    for text, status in (
        ("172319697475203891200", 200),
        ("9" * 5000, 200),
        ("0", 400),
        ("-1", 400),
        ("+5", 400),
    ):
        response = client.get("/api/v1/orders", {"limit": text}, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == status, (text[:30], response.status_code)
        for header in ("HTTP_X_XBIT_TIMESTAMP", "HTTP_X_XBIT_RECV_WINDOW"):
            headers = {
                "HTTP_X_XBIT_APIKEY": "xk_nobody",
                "HTTP_X_XBIT_TIMESTAMP": "1700000000000",
                "HTTP_X_XBIT_SIGNATURE": "0" * 64,
                header: text,
            }
            response = Client().get("/api/v1/me", **headers)
            assert response.status_code == 401, (header, text, response.status_code)


def test_a_body_over_the_limit_is_a_413(db: Any, settings: Any) -> None:
    big = json.dumps({"email": "a@b.c", "password": "x" * (12 * 1024 * 1024)})
    response = Client().post("/api/v1/auth/login", big, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "REQUEST_TOO_LARGE"


def _asgi(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """Drive an ASGI app with a request whose body comes in ``chunks``; returns the status, the body
    and how many chunks the app pulled."""
    sent: list[dict[str, Any]] = []
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_refuses_a_12_mib_body_before_django_reads_it() -> None:
    from xbit_admin.asgi import application

    chunk = b"x" * (1024 * 1024)
    status, body, pulled = _asgi(application, [chunk] * 12, [])  # chunked: no Content-Length
    assert status == 413 and json.loads(body)["code"] == "REQUEST_TOO_LARGE"
    assert pulled <= 2, "the body was read to its end"
    status, body, pulled = _asgi(
        application, [chunk] * 12, [(b"content-length", str(12 * len(chunk)).encode())]
    )
    assert status == 413 and pulled == 0
