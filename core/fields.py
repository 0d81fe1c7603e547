"""Model fields for money, prices and sizes: the column shapes of ``core.money``, in one place."""

from __future__ import annotations

from django.db import models

from core.money import (
    MONEY_DECIMAL_PLACES,
    MONEY_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    SIZE_DECIMAL_PLACES,
    SIZE_MAX_DIGITS,
)


def money_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


def price_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


def size_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=SIZE_MAX_DIGITS, decimal_places=SIZE_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]
