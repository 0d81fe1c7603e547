"""The general API rate limit's budgets, scopes and defaults, and the strict reading of
``API_RATE_LIMITS`` the settings do at start-up (no DRF here: the settings import it). The limiter itself
is ``core.rate_limit``."""

from __future__ import annotations

import json

from django.core.exceptions import ImproperlyConfigured

BUDGETS = ("orders", "reads", "writes")
SCOPES = ("key", "user", "ip")

# (limit, period seconds): a burst of `limit`, refilled over `period`.
DEFAULT_LIMITS: dict[str, dict[str, tuple[int, float]]] = {
    "orders": {"key": (100, 10), "user": (200, 10), "ip": (400, 10)},
    "reads": {"key": (600, 60), "user": (1200, 60), "ip": (2400, 60)},
    "writes": {"key": (120, 60), "user": (240, 60), "ip": (480, 60)},
}


def parse_limits(raw: str) -> dict[str, dict[str, tuple[int, float]]]:
    """``API_RATE_LIMITS`` from the environment: ``{"orders": {"key": [100, 10]}, …}`` merged over the
    defaults. Anything malformed stops the process (ImproperlyConfigured), as the env helper does."""
    merged = {budget: dict(scopes) for budget, scopes in DEFAULT_LIMITS.items()}
    if not raw.strip():
        return merged
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"API_RATE_LIMITS is not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise ImproperlyConfigured("API_RATE_LIMITS must be an object of budgets")
    for budget, scopes in given.items():
        if budget not in BUDGETS or not isinstance(scopes, dict):
            raise ImproperlyConfigured(f"API_RATE_LIMITS: unknown budget {budget!r} (one of {BUDGETS})")
        for scope, rule in scopes.items():
            if scope not in SCOPES:
                raise ImproperlyConfigured(f"API_RATE_LIMITS: unknown scope {scope!r} (one of {SCOPES})")
            if (
                not isinstance(rule, list)
                or len(rule) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rule)
                or rule[0] < 1
                or rule[1] <= 0
                or int(rule[0]) != rule[0]
            ):
                raise ImproperlyConfigured(
                    f"API_RATE_LIMITS {budget}.{scope}: expected [limit ≥ 1, seconds > 0]"
                )
            merged[budget][scope] = (int(rule[0]), float(rule[1]))
    return merged
