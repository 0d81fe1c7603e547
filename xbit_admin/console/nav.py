"""Console navigation. Pages register here with the permission that reveals them; an entry whose URL
does not exist yet is skipped, so the menu grows as pages land."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    any_of: tuple[str, ...]
    key: str  # keyboard shortcut: g then key


NAV: list[NavItem] = [
    NavItem("Overview", "console:overview", ("view_console",), "o"),
    NavItem("Routing", "console:routing", ("view_risk", "manage_routing"), "r"),
    NavItem("Hedge", "console:hedge", ("view_risk", "manage_hedge"), "h"),
    NavItem("Liquidations", "console:liquidations", ("view_risk",), "l"),
    NavItem("Reconciliation", "console:reconciliation", ("view_risk",), "c"),
    NavItem("Drift", "console:drift", ("view_risk",), "d"),
    NavItem("Venue", "console:venue", ("view_risk",), "v"),
    NavItem("Client risk", "console:client_risk", ("view_risk",), "x"),
    NavItem("Liquidity", "console:liquidity", ("view_risk", "trigger_aggregation", "manage_liquidity"), "q"),
    NavItem("Withdrawals", "console:withdrawals", ("approve_withdrawals", "risk_review_withdrawals"), "w"),
    NavItem("Users", "console:users", ("view_user_data",), "u"),
    NavItem("Risk config", "console:risk_config", ("view_risk", "manage_risk_config"), "k"),
    NavItem("Switches", "console:switches", ("manage_switches", "manage_routing"), "s"),
    NavItem("Alerts", "console:alerts", ("view_console",), "a"),
    NavItem("Audit log", "console:audit", ("view_audit_log",), "g"),
    NavItem("Stress test", "console:stress", ("view_risk",), "t"),
    NavItem("Runbooks", "console:runbooks", ("view_console",), "b"),
    NavItem("Staff", "console:staff", ("manage_staff",), "f"),
    NavItem(
        "Four eyes",
        "console:proposals",
        ("reset_client_2fa", "manage_staff", "manage_risk_config", "manage_routing"),
        "e",
    ),
]


def visible_nav(user: object) -> list[dict[str, str]]:
    items = []
    for item in NAV:
        if not any(user.has_perm(f"accounts.{p}") for p in item.any_of):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        items.append({"label": item.label, "url": url, "key": item.key, "name": item.url_name})
    return items
