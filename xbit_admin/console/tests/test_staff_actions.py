"""The one shape of a staff action (``pages/actions.py``): POST only, the permission, the service's refusal
shown with its code and nothing changed, the outcome in one line, back to the page — and a "back to"
address from the form kept on this site."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages

from core.accounts.models import ClientNote
from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _said(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_action_is_post_only_and_needs_its_permission(console_as: Any, trader: Any) -> None:
    ops = console_as(Role.OPERATIONS)
    assert ops.get(f"/users/{trader.pk}/note/").status_code == 405
    analyst = console_as(Role.DATA_ANALYST)
    assert analyst.post(f"/users/{trader.pk}/note/", {"body": "x"}).status_code == 403
    assert not ClientNote.objects.filter(user=trader).exists()


def test_the_outcome_and_the_refusal_are_said_and_the_page_comes_back(console_as: Any, trader: Any) -> None:
    ops = console_as(Role.OPERATIONS)
    done = ops.post(f"/users/{trader.pk}/note/", {"body": "called about a withdrawal"})
    assert done.status_code == 302 and done["Location"] == f"/users/{trader.pk}/#journal"
    assert _said(done) == ["Note added to the client's journal."]
    refused = ops.post(f"/users/{trader.pk}/restrict/", {"kind": "no_trading", "reason": ""})
    assert refused["Location"] == f"/users/{trader.pk}/#staff-actions"
    # (the first action's line was never shown: no page was rendered in between)
    assert _said(refused)[-1] == "A reason is required. (VALIDATION_ERROR)"  # the service's words and code
    assert not trader.client_restrictions.exists()


def test_a_back_address_from_the_form_stays_on_this_site(console_as: Any) -> None:
    ops = console_as(Role.OPERATIONS)
    response = ops.post(
        "/users/restrictions/999999/lift/", {"reason": "x", "back": "https://elsewhere.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/users/"
    response = ops.post("/users/restrictions/999999/lift/", {"reason": "x", "back": "//elsewhere.example/"})
    assert response["Location"] == "/users/"
    response = ops.post("/users/restrictions/999999/lift/", {"reason": "x", "back": "/users/?q=trader"})
    assert response["Location"] == "/users/?q=trader"
