"""Formatting for console pages: numbers with their unit, right-aligned by the ``num`` class; times
with their age (console.js keeps ``.age`` elements current)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from xbit_admin.console.explorers import explorer_url
from xbit_admin.console.formats import price_text
from xbit_admin.console.runbooks import alert_runbook_key, runbook_for
from xbit_admin.console.switch_text import change_text

register = template.Library()

MODE_SHORT = {"HL_MODE": "HL", "NORMAL_MODE": "NORMAL", "BETTING_MODE": "BETTING"}


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def money(value: Any, places: int = 2) -> str:
    """1234.5 → "1,234.50"; None → "—"."""
    number = _dec(value)
    if number is None:
        return "—"
    text = f"{number:,.{int(places)}f}"
    # a small loss rounded to nothing is nothing: "-0" read as a loss
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text


@register.filter
def qty(value: Any) -> str:
    """Sizes and prices: thousands separators, no trailing zeros beyond what the value carries."""
    number = _dec(value)
    if number is None:
        return "—"
    text = f"{number:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@register.filter
def pct(value: Any, places: int = 1) -> str:
    number = _dec(value)
    if number is None:
        return "—"
    return f"{number * 100:,.{int(places)}f}%"


@register.filter
def mode_short(value: Any) -> str:
    return MODE_SHORT.get(str(value), str(value or "—"))


@register.filter
def absval(value: Any) -> Any:
    number = _dec(value)
    return abs(number) if number is not None else None


def age_text(seconds: float) -> str:
    if seconds < 0:
        seconds = 0
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


@register.simple_tag
def age(value: Any) -> str:
    """``<time>`` with the absolute UTC time as title and a relative age that console.js updates."""
    if value is None or not isinstance(value, int | float | datetime):
        return mark_safe('<span class="muted">—</span>')
    if isinstance(value, int | float):
        ts = float(value)
        when = datetime.fromtimestamp(ts, tz=UTC)
    else:
        when = value
        ts = when.timestamp()
    seconds = timezone.now().timestamp() - ts
    return format_html(
        '<time class="age" data-ts="{}" datetime="{}" title="{}">{}</time>',
        f"{ts:.3f}",
        when.isoformat(),
        when.strftime("%Y-%m-%d %H:%M:%S UTC"),
        age_text(seconds),
    )


@register.simple_tag
def at(value: Any) -> str:
    """Absolute time (UTC), for logs."""
    if not isinstance(value, datetime):
        return "—"
    return format_html(
        '<time datetime="{}">{}</time>', value.isoformat(), value.strftime("%Y-%m-%d %H:%M:%S")
    )


@register.simple_tag(takes_context=True)
def query(context: Any, **changes: Any) -> str:
    """The current query string with some parameters replaced (None/"" removes one)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def compact_json(value: Any) -> str:

    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)


@register.simple_tag
def explorer_link(chain: Any, tx: Any) -> str:
    """A transaction hash linked to its chain's explorer (``ExplorerUrl``), shortened for tables."""

    if not tx:
        return "—"
    text = str(tx)
    short = f"{text[:10]}…{text[-6:]}" if len(text) > 20 else text
    url = explorer_url(str(chain or ""), text)
    if url is None:
        return format_html('<span class="mono small" title="{}">{}</span>', text, short)
    return format_html(
        '<a class="mono small tx" href="{}" target="_blank" rel="noopener noreferrer" title="{}">{}</a>',
        url,
        text,
        short,
    )


@register.simple_tag
def runbook_link(kind: Any, key: Any) -> str:
    """A link to the runbook of a breaker kind (``kind`` "breaker") or an alert rule ("alert"); nothing
    when there is no runbook for it."""

    target = alert_runbook_key(str(key)) if kind == "alert" else (str(kind), str(key))
    if target is None or runbook_for(*target) is None:
        return ""
    return format_html(
        '<a class="runbook-link small" href="{}">runbook</a>', reverse("console:runbook", args=target)
    )


@register.filter
def kill_switch_of(breakers: Any) -> Any:
    """The kill-switch breaker among ``breakers`` (the overview's not-OK list), or None when it is off."""
    for b in breakers or ():
        if getattr(b, "kind", "") == "KILL_SWITCH" and getattr(b, "state", "OK") != "OK":
            return b
    return None


@register.filter
def canary_measured(criterion: Any) -> str:
    """A canary criterion's measured figure with its unit (bp, ms, %), never a raw float."""
    value = _dec(criterion.get("measured"))
    if value is None:
        return "n/a"
    name = criterion.get("name")
    if name == "p99":
        return f"{value:,.1f} ms"
    if name == "fill_dev":
        return f"{value:,.2f} bp"
    if name in ("errors", "recon"):
        return f"{value * 100:,.2f} %"
    return f"{value:,}"


@register.filter
def config_value(row: Any) -> str:
    """A risk-config value as the desk reads it: fractions as percentages, amounts with separators."""
    value, unit = row.get("value"), row.get("unit", "")
    number = _dec(value)
    if unit == "fraction" and number is not None:
        return f"{(number * 100).normalize():,f} %".replace(".0 %", " %")
    return qty(value)


@register.filter
def split_csv(value: Any) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


@register.simple_tag
def price(asset: Any, value: Any) -> str:
    """A price to the asset's tick: HL's rule (5 significant figures, at most 6 − szDecimals decimals),
    with thousands separators — 72,280 for BTC, 3,000.5 for ETH."""

    return price_text(str(asset or ""), value)


@register.filter
def switch_value(name: Any, value: Any) -> str:
    """A recorded value of switch ``name`` as the switches table reads it ("on", "10,000 USDC", "5 %")."""
    return change_text(str(name), value)
