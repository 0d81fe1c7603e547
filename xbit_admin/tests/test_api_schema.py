"""The OpenAPI schema documents every error the API answers (issue #10): one Error body, and on each
operation the statuses it can return with their codes. The last tests send real requests and check
that the answer is a documented status, with the documented body and code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from core.accounts.roles import Role
from core.accounts.tokens import access_token_for
from core.errors import ErrorCode
from xbit_admin.switches.services import switch_set

ERROR_REF = "#/components/schemas/Error"
OPS = "/api/v1/ops/"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/v1/")
    ]


def documented_codes(response: dict[str, Any]) -> set[str]:
    return set(re.findall(r"`([A-Z_]+)`", response["description"]))


def test_the_error_component_is_the_handlers_body_with_the_code_enum(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    error = components["Error"]
    assert error["required"] == ["code", "message", "details"]
    assert error["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}
    assert components["ErrorCode"]["enum"] == [code.value for code in ErrorCode]


def test_every_trader_operation_documents_its_error_responses_with_the_error_body(
    schema: dict[str, Any],
) -> None:
    ops = operations(schema)
    assert len(ops) > 50
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        errors = {int(status): r for status, r in responses.items() if int(status) >= 400}
        for status, response in errors.items():
            assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, where
            codes = documented_codes(response)
            assert codes and codes <= {c.value for c in ErrorCode}, (where, status)
        parameters = op.get("parameters", [])
        if not path.startswith(OPS):  # api_mode MAINTENANCE answers every trader operation
            assert "MAINTENANCE" in documented_codes(errors[503]), where
            assert "Retry-After" in errors[503]["headers"], where
        if any(requirement for requirement in op.get("security", [{}])):  # an authenticated operation
            assert {401, 403} <= set(errors), where
        if any(p["in"] == "path" for p in parameters):
            assert "NOT_FOUND" in documented_codes(errors[404]), where
        if "requestBody" in op or any(p["in"] == "query" for p in parameters):
            assert "VALIDATION_ERROR" in documented_codes(errors[400]), where


def test_operations_document_their_own_business_errors(schema: dict[str, Any]) -> None:
    def codes(path: str, method: str, status: int) -> set[str]:
        return documented_codes(schema["paths"][path][method]["responses"][str(status)])

    place = "/api/v1/orders"
    assert {"REDUCE_ONLY", "USER_RESTRICTED", "KYC_LIMIT_EXCEEDED"} <= codes(place, "post", 403)
    assert codes(place, "post", 409) == {"IDEMPOTENCY_CONFLICT"}
    assert {"SERVICE_UNAVAILABLE", "MARKET_HALTED", "NO_ROUTE", "STALE_PRICE"} <= codes(place, "post", 503)
    assert codes(place, "post", 429) == {"RATE_LIMITED"}
    assert codes("/api/v1/orders/{order_id}/cancel", "post", 409) == {"INVALID_STATE"}
    assert codes("/api/v1/auth/login", "post", 423) == {"ACCOUNT_LOCKED"}
    assert "WALLET_IN_USE" in codes("/api/v1/account/security/wallet", "post", 409)
    assert "DUPLICATE_WITHDRAWAL" in codes("/api/v1/withdrawals", "post", 409)
    assert "UNKNOWN_SYMBOL" in codes("/api/v1/markets/{asset}", "get", 404)
    assert "INVALID_CREDENTIALS" in codes("/api/v1/account/security/password", "post", 403)


def test_the_schema_generates_without_warnings(tmp_path: Path) -> None:
    """Found by `make fuzz`: nine views' nested ``InputSerializer`` classes shared one component name,
    so the schema gave /leverage, /withdrawals, … the body of /deposit-addresses."""
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))


# --- real answers ---------------------------------------------------------------------------------------


@pytest.fixture
def api(make_trader: Any) -> Client:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {access_token_for(make_trader())}"
    return client


def assert_documented(schema: dict[str, Any], path: str, method: str, response: Any, code: str) -> None:
    """The answer's status is documented for the operation, with this code, and the body is an Error."""
    documented = schema["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (path, response.status_code, response.content)
    body = response.json()
    assert body["code"] == code, body
    assert code in documented_codes(documented[str(response.status_code)])
    jsonschema.validate(body, {"$ref": ERROR_REF, "components": schema["components"]})


def test_rejections_are_documented_statuses_with_the_error_body(schema: dict[str, Any], api: Client) -> None:
    assert api.post("/api/v1/account/kyc/submit").status_code == 200  # asks once: PENDING
    cases = [
        ("/api/v1/orders/{order_id}", "get", api.get("/api/v1/orders/987654"), "NOT_FOUND"),
        # the <int:> route does not match: JSON from handler404, not Django's HTML page
        ("/api/v1/orders/{order_id}", "get", api.get("/api/v1/orders/abc"), "NOT_FOUND"),
        (
            "/api/v1/orders",
            "post",
            api.post("/api/v1/orders", {}, content_type="application/json"),
            "VALIDATION_ERROR",
        ),
        ("/api/v1/me", "get", Client().get("/api/v1/me"), "NOT_AUTHENTICATED"),
        ("/api/v1/markets/{asset}", "get", api.get("/api/v1/markets/NOPE"), "UNKNOWN_SYMBOL"),
        ("/api/v1/account/kyc/submit", "post", api.post("/api/v1/account/kyc/submit"), "INVALID_STATE"),
    ]
    for path, method, response, code in cases:
        assert_documented(schema, path, method, response, code)


def test_inputs_are_read_as_the_schema_says(schema: dict[str, Any], api: Client) -> None:
    """Found by `make fuzz`: DRF coerced JSON types ("20" → 20, 0 → "0"), ignored a malformed page
    size, took the last of a repeated filter and dropped an empty one."""
    leverage = api.post(
        "/api/v1/leverage",
        {"symbol": "BTC", "margin_mode": "CROSS", "leverage": "20"},
        content_type="application/json",
    )
    assert_documented(schema, "/api/v1/leverage", "post", leverage, "VALIDATION_ERROR")
    assert leverage.json()["details"]["fields"] == {"leverage": ["Must be an integer."]}
    code = api.post(
        "/api/v1/api-keys", {"permissions": ["read"], "otp_code": 0}, content_type="application/json"
    )
    assert code.json()["details"]["fields"] == {"otp_code": ["Must be a string."]}
    for path, query in (
        ("/api/v1/fills", "order_id=1&order_id=2"),
        ("/api/v1/fills", "limit=abc"),
        ("/api/v1/orders", "until="),
        ("/api/v1/orders", "since=yesterday"),
        ("/api/v1/markets", "include_delisted=maybe"),
    ):
        assert_documented(schema, path, "get", api.get(f"{path}?{query}"), "VALIDATION_ERROR")
    assert api.get("/api/v1/fills?order_id=-1&limit=10").json()["results"] == []
    assert api.get("/api/v1/orders?since=2026-01-01T00:00:00Z").status_code == 200


def test_maintenance_is_the_documented_503(schema: dict[str, Any], api: Client, make_staff: Any) -> None:
    admin = make_staff(Role.SUPER_ADMIN)
    switch_set(name="api_mode", value="MAINTENANCE", acting_user=admin, reason="drill")
    try:
        for path, method, response in (
            ("/api/v1/account", "get", api.get("/api/v1/account")),
            ("/api/v1/withdrawals/confirm", "post", Client().post("/api/v1/withdrawals/confirm", {})),
        ):
            assert_documented(schema, path, method, response, "MAINTENANCE")
            assert response["Retry-After"] == "60"
    finally:
        switch_set(name="api_mode", value="OPEN", acting_user=admin, reason="done")
