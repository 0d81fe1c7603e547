"""Staff roles (spec 07) as groups with explicit permissions — the single source of truth used by
the data migration, the console navigation and the permission-matrix tests."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPER_ADMIN = "Super Admin"
    RISK_MANAGER = "Risk Manager"
    OPERATIONS = "Operations"
    DATA_ANALYST = "Data Analyst"
    SUPPORT = "Support"


# codename → human description. All live on accounts.StaffPermission (a permissions-only model).
PERMISSIONS: dict[str, str] = {
    "view_console": "Sign in to the operator console",
    "view_risk": "See exposure, hedge, liquidations, reconciliation, drift and stress views",
    "manage_routing": "Switch routing modes and edit routing thresholds and auto-switch",
    "manage_hedge": "Edit hedge parameters and place manual hedges",
    "manage_risk_config": "Edit risk thresholds, reserve settings and drift levels",
    "manage_breakers": "Trip and reset circuit breakers",
    "manage_reserve": "Move money into or out of the risk reserve",
    "view_user_data": "Look users up and read their timelines",
    "approve_withdrawals": "Approve or reject withdrawals",
    "risk_review_withdrawals": "Give the risk review of withdrawals above 100,000",
    "trigger_aggregation": "Trigger deposit aggregation and hot/cold transfers",
    "manage_liquidity": "Approve cold-wallet top-ups",
    "acknowledge_alerts": "Acknowledge and resolve alerts",
    "view_reports": "Read reports",
    "export_data": "Export tables as CSV",
    "view_audit_log": "Read the audit log",
    "request_adjustment": "Request a manual balance adjustment",
    "approve_adjustment": "Approve a manual balance adjustment requested by someone else",
    "manage_switches": "Change platform control switches (internalization, API mode, liquidation mode)",
    "manage_staff": "Manage staff users and their roles",
    "annotate_clients": "Write notes and tags on a client",
    "restrict_clients": "Restrict a client (reduce-only, no trading, no withdrawals) and lift restrictions",
    "reset_client_2fa": "Propose or approve a reset of a client's two-factor authentication",
    "review_kyc": "Review a client's submitted KYC and set its status",
    "close_client_positions": "Close a client's position at market (dealer tool)",
}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.SUPER_ADMIN: frozenset(PERMISSIONS),
    Role.RISK_MANAGER: frozenset(
        {
            "view_console",
            "view_risk",
            "manage_routing",
            "manage_hedge",
            "manage_risk_config",
            "manage_breakers",
            "manage_reserve",
            "risk_review_withdrawals",
            "manage_liquidity",
            "acknowledge_alerts",
            "view_reports",
            "export_data",
            "view_audit_log",
        }
    ),
    Role.OPERATIONS: frozenset(
        {
            "view_console",
            "view_user_data",
            "approve_withdrawals",
            "trigger_aggregation",
            "acknowledge_alerts",
            "request_adjustment",
            "view_reports",
            "export_data",
            "annotate_clients",
            "restrict_clients",
            "reset_client_2fa",
            "review_kyc",
            "close_client_positions",
        }
    ),
    Role.DATA_ANALYST: frozenset(
        {"view_console", "view_risk", "view_reports", "export_data", "view_audit_log"}
    ),
    Role.SUPPORT: frozenset(
        {"view_console", "view_user_data", "annotate_clients", "reset_client_2fa", "review_kyc"}
    ),
}


def perm(codename: str) -> str:
    """Full permission name for ``user.has_perm``."""
    if codename not in PERMISSIONS:
        raise KeyError(f"unknown staff permission {codename!r}")
    return f"accounts.{codename}"
