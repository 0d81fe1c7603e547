"""Issue #17, finding 6: the withdrawal email's link opens a page (it was a 404). Opening the link
confirms nothing (mail scanners open links); the page's button does, once."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from wallets.models import Withdrawal
from wallets.services import withdrawal_request
from wallets.tests.conftest import fund, outside_address, totp_for

pytestmark = pytest.mark.django_db


def test_the_emailed_link_opens_a_page_whose_button_confirms_once(
    trader: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(trader, "500")
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = withdrawal_request(
            user=trader,
            chain="ETH",
            asset="USDT",
            address=outside_address("ETH", "page"),
            amount="100",
            totp_code=totp_for(trader),
        )
    link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    parts = urlsplit(link)
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200, page.status_code
    assert b"<form" in page.content and b"100" in page.content
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.AWAITING_CONFIRMATION, "opening the link confirmed it"

    token = re.search(r"token=([\w\-]+)", parts.query).group(1)  # type: ignore[union-attr]
    csrf = client.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=False):
        done = client.post(parts.path, {"token": token, "csrfmiddlewaretoken": csrf})
    assert done.status_code == 200 and b"confirmed" in done.content.lower()
    withdrawal.refresh_from_db()
    assert withdrawal.status != Withdrawal.Status.AWAITING_CONFIRMATION
    again = client.post(parts.path, {"token": token, "csrfmiddlewaretoken": csrf})
    assert again.status_code == 400 and b"already used" in again.content
