"""Model fields of risk's own column shapes (money, prices and sizes are ``core.fields``): shared by
``risk.models`` and ``risk.hedge_models``."""

from __future__ import annotations

from django.db import models


def rate_field(**kwargs: object) -> models.DecimalField:
    """A rate or ratio (0.01 = 1 %): 8 decimal places."""
    return models.DecimalField(max_digits=12, decimal_places=8, **kwargs)  # type: ignore[arg-type]
