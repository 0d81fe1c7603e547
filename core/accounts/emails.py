"""Account emails through Django's email framework (console locally, locmem in tests, SMTP by
configuration). Each message is ``templates/accounts/email/<name>_subject.txt``, ``<name>.txt`` and
``<name>.html``; it is sent only after the surrounding transaction commits (house style rule 4)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


def _send(*, to: str, template: str, context: dict[str, Any]) -> None:
    subject = " ".join(render_to_string(f"accounts/email/{template}_subject.txt", context).split())
    text = render_to_string(f"accounts/email/{template}.txt", context)
    html = render_to_string(f"accounts/email/{template}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception:  # a mail server outage must not fail the request that already committed
        logger.exception("account email %s could not be sent", template)


def email_send_on_commit(*, to: str | None, template: str, context: dict[str, Any]) -> None:
    """Queue an email for after commit. Never log the context: it carries one-time codes."""
    if not to:
        return
    transaction.on_commit(lambda: _send(to=to, template=template, context=context))
