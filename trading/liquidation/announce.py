"""What follows a liquidation close: its events, the refreshed displayed liquidation prices of the
user's other positions, and the user's email after commit."""

from __future__ import annotations

import logging

from django.core.mail import EmailMessage, get_connection
from django.db import transaction

from core.accounts.models import User
from core.events.services import outbox_emit
from trading.liquidation.prices import refresh_liquidation_prices
from trading.liquidation.records import LiquidationClose, close_events
from trading.models import MarginMode

logger = logging.getLogger(__name__)


def after_close(close: LiquidationClose, *, trigger_id: str) -> None:
    """Events, the remaining positions' displayed liquidation prices, and the user's email."""
    for topic, aggregate, payload in close_events(close, trigger_id=trigger_id):
        outbox_emit(topic=topic, aggregate=aggregate, payload=payload)
    refresh_liquidation_prices(close.user_id)
    transaction.on_commit(lambda: _email(close))


def _email_message(close: LiquidationClose, email: str) -> EmailMessage:
    return EmailMessage(
        subject=f"Your {close.asset} position was liquidated",
        body=(
            f"Your {close.direction.lower()} {close.size} {close.asset} position ({close.margin_mode.lower()} "
            f"margin) was liquidated at {close.close_price} after the mark reached {close.trigger_price}.\n"
            + (
                f"Margin lost: {close.margin_zeroed} USDC (loss {close.loss} USDC, liquidation fee {close.fee} USDC)."
                if close.margin_mode == MarginMode.ISOLATED
                else f"Loss: {close.loss} USDC, liquidation fee: {close.fee} USDC."
            )
        ),
        to=[email],
    )


def _email(close: LiquidationClose) -> None:
    liquidation_emails_send([close])


def liquidation_emails_send(closes: list[LiquidationClose]) -> None:
    """The users' liquidation emails (after commit): one read of the addresses, one mail connection.
    Never raises: an email must never undo or block a liquidation."""
    try:
        emails = dict(User.objects.filter(pk__in={c.user_id for c in closes}).values_list("id", "email"))
        messages = [_email_message(c, emails[c.user_id]) for c in closes if emails.get(c.user_id)]
        if messages:
            get_connection(fail_silently=False).send_messages(messages)
    except Exception:  # an email must never undo or block a liquidation
        logger.exception("liquidation emails to users %s failed", sorted({c.user_id for c in closes}))
