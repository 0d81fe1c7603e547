"""The overview's live region rendered for one staff member (pushed by ``ConsoleTopicsConsumer`` on
the ``overview`` topic; the page swaps it in place)."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from xbit_admin.console.pages.common import can
from xbit_admin.console.risk_reads import overview_live


def overview_fragment(user: Any) -> str:
    context = {**overview_live(risk=can(user, "view_risk")), "can_export": can(user, "export_data")}
    return render_to_string("console/partials/overview_live.html", context)
