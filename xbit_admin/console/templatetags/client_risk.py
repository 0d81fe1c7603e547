"""``{% client_risk_card user_id %}``: the client's routing group and markouts on the client card."""

from __future__ import annotations

from typing import Any

from django import template

from xbit_admin.console.client_risk_reads import client_card

register = template.Library()


@register.inclusion_tag("console/partials/client_risk_card.html")
def client_risk_card(user_id: int) -> dict[str, Any]:
    return {"card": client_card(user_id)}
