"""Spec 01 / spec 10 defaults, shared by the data migration and ``routing_defaults_ensure``."""

from decimal import Decimal

GLOBAL_DEFAULTS = {
    "routing_mode": "NORMAL_MODE",
    "normal_threshold": Decimal("10000"),
    "betting_threshold": Decimal("50000"),
    "hl_mode_exposure_threshold": Decimal("800000"),
    "betting_mode_exposure_threshold": Decimal("50000"),
    "hl_exit_factor": Decimal("0.8"),
    "betting_exit_factor": Decimal("1.2"),
    "auto_switch_enabled": False,
    "internalization_enabled": False,
    "max_internal_order_notional": Decimal("10000"),
    "max_internal_exposure": Decimal("500000"),
    "global_internalization_enabled": False,  # spec 10: off at first launch; an operator turns it on
    "degraded": False,
}
LAUNCH_WHITELIST = ("BTC", "ETH")
