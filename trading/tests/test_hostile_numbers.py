"""Issue #17, finding 3: hostile numbers get a clear 400 with a stable code, never a 500. Prices, sizes
and amounts are read by one strict parser (``core.money.decimal_from_text``): plain ASCII decimal
notation, bounded digits and decimal places per field, the sign only where it means something."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from conftest import PASSWORD
from core.errors import ApplicationError
from core.money import MONEY_INPUT, PRICE_INPUT, DecimalInputError, decimal_from_text
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place

pytestmark = pytest.mark.django_db

HOSTILE = [
    "1e20",  # exponent (was a numeric field overflow in the database)
    "1e309",  # was decimal.InvalidOperation in trading/netting.py
    "1E+2",
    "1_0",  # Decimal() reads it as 10
    "١٢",  # Arabic-Indic digits: Decimal() reads them as 12
    "１",  # a full-width digit
    " 1",
    "1 ",
    "\t1",
    "NaN",
    "Infinity",
    "-Infinity",
    "sNaN",
    "+1",
    ".5",
    "5.",
    "0x10",
    "1,5",
    "",
    "-0",
    "123456789012345678901234567890",  # 30 digits
    "1." + "1" * 30,
    "9" * 11,  # beyond the input bound (10 integer digits for prices and sizes)
    "0.000000001",  # beyond the column's 8 decimals
]


@pytest.fixture
def api(trader: Any) -> Client:
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def _order(api: Client, **changes: Any) -> Any:
    body = {
        "symbol": "BTC",
        "side": "BUY",
        "type": "LIMIT",
        "size": "0.01",
        "limit_price": "70000",
        **changes,
    }
    return api.post("/api/v1/orders", body, content_type="application/json")


@pytest.mark.usefixtures("internalization_on")
@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_limit_price_is_a_400_invalid_price(api: Client, set_quote: Any, text: str) -> None:
    set_quote("BTC", "80000")
    response = _order(api, limit_price=text)
    assert response.status_code == 400, (text, response.content)
    assert response.json()["code"] == "INVALID_PRICE", (text, response.json())
    assert response.json()["details"]["field"] == "limit_price"


@pytest.mark.usefixtures("internalization_on")
@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_size_is_a_400_invalid_size(api: Client, set_quote: Any, text: str) -> None:
    set_quote("BTC", "80000")
    response = _order(api, size=text, type="MARKET", limit_price=None)
    assert response.status_code == 400, (text, response.content)
    assert response.json()["code"] == "INVALID_SIZE", (text, response.json())


@pytest.mark.usefixtures("internalization_on")
def test_a_price_as_a_json_number_is_refused_by_type(api: Client, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    response = _order(api, limit_price=1e20)
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.usefixtures("internalization_on")
@pytest.mark.parametrize("text", ["1e309", "1" + "0" * 29, "-0", "1_0", "١", " 5", "NaN", "0.0000001"])
def test_a_hostile_margin_amount_is_a_400_invalid_amount(
    api: Client, trader: Any, set_quote: Any, text: str
) -> None:
    set_quote("BTC", "80000")
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC", side="BUY", order_type="MARKET", size="0.01", leverage=10, margin_mode="ISOLATED"
        ),
    )
    position = Position.objects.get(user=trader, status=Position.Status.OPEN)
    response = api.post(
        f"/api/v1/positions/{position.pk}/margin",
        {"amount": text, "idempotency_key": "k1"},
        content_type="application/json",
    )
    assert response.status_code == 400, (text, response.content)
    assert response.json()["code"] == "INVALID_AMOUNT", (text, response.json())
    assert api.post(
        f"/api/v1/positions/{position.pk}/margin",
        {"amount": "-1.5", "idempotency_key": "k2"},
        content_type="application/json",
    ).status_code in (200, 400)  # a negative amount removes margin: the sign is meaningful here


@pytest.mark.usefixtures("internalization_on")
def test_a_hostile_close_size_is_a_400(api: Client, trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    order_place(user=trader, inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size="0.01"))
    position = Position.objects.get(user=trader, status=Position.Status.OPEN)
    for text in ["1e309", "1_0", "-0.005", "NaN"]:
        response = api.post(
            f"/api/v1/positions/{position.pk}/close", {"size": text}, content_type="application/json"
        )
        assert response.status_code == 400 and response.json()["code"] == "INVALID_SIZE", (
            text,
            response.content,
        )


def test_the_parser_accepts_plain_decimals_within_the_shape() -> None:
    assert decimal_from_text("70000.5", PRICE_INPUT) == Decimal("70000.5")
    assert decimal_from_text("0.00000001", PRICE_INPUT) == Decimal("0.00000001")
    assert decimal_from_text("9999999999.99999999", PRICE_INPUT) == Decimal("9999999999.99999999")
    assert decimal_from_text("-2.5", MONEY_INPUT, signed=True) == Decimal("-2.5")
    assert decimal_from_text("0", MONEY_INPUT, allow_zero=True) == 0
    for text, reason in [
        ("-0", "negative"),
        ("0", "zero"),
        ("1e3", "format"),
        ("1.0000001", "too_many_decimals"),
    ]:
        with pytest.raises(DecimalInputError) as exc:
            decimal_from_text(text, MONEY_INPUT)
        assert exc.value.reason == reason, text
    with pytest.raises(DecimalInputError) as exc:
        decimal_from_text("-0", MONEY_INPUT, signed=True)
    assert exc.value.reason == "zero"


def test_money_services_refuse_hostile_amounts(trader: Any) -> None:
    from wallets.services.withdrawal_addresses import clean_amount

    for text in ["1e3", "1_000", "١٠٠", "NaN", "100 ", "1" * 20]:
        with pytest.raises(ApplicationError) as exc:
            clean_amount(text)
        assert exc.value.code == "INVALID_AMOUNT", text
    assert clean_amount("100.5") == Decimal("100.5")


@pytest.mark.parametrize("suffix", ["²", "١٢", "12", ""])
def test_a_client_chosen_replacement_id_with_unicode_digits_names_no_order(suffix: str) -> None:
    from trading.models import Order
    from trading.orders.modify import REPLACEMENT_PREFIX, replaced_order_id

    order = Order(client_order_id=f"{REPLACEMENT_PREFIX}{suffix}")
    assert replaced_order_id(order) == (12 if suffix == "12" else None)  # int("²") raised: a 500
