"""Chart series read in buckets by the database: a day of 5-second snapshots is 17,280 rows per account,
three days of 15-second latency samples 17,280; a chart is a few hundred pixels wide. The database
groups the rows into at most ``points`` time buckets and returns one figure per bucket (the worst one:
the highest latency, the lowest margin ratio), as epoch seconds — no row is loaded into Python."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Aggregate, FloatField, Func, QuerySet

POINTS = 600


class EpochBucket(Func):
    """The start of the ``width``-second bucket a timestamp falls in, as epoch seconds."""

    template = "(floor(extract(epoch from %(expressions)s) / %(width)s) * %(width)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, width: int) -> None:
        super().__init__(expression, width=int(width))


def bucket_width(since: datetime, until: datetime, points: int = POINTS) -> int:
    """Whole seconds per bucket so that ``since``–``until`` fits in ``points`` buckets (at least 1 s)."""
    return max(1, int((until - since).total_seconds() // points) + 1)


def bucketed(
    qs: QuerySet[Any],
    *,
    value: Aggregate,
    since: datetime,
    until: datetime,
    field: str = "created_at",
    points: int = POINTS,
    scale: float = 1.0,
) -> dict[str, list[Any]]:
    """``{"x": [epoch s…], "y": [figure…]}`` of ``qs`` in ``since``–``until``, one point per bucket that
    holds a non-null figure; ``value`` aggregates a bucket (``Max("latency_ms")``, ``Min("margin_ratio")``)."""
    width = bucket_width(since, until, points)
    rows = (
        qs.filter(**{f"{field}__gte": since, f"{field}__lte": until})
        .annotate(bucket=EpochBucket(field, width=width))
        .values("bucket")
        .annotate(figure=value)
        .filter(figure__isnull=False)
        .order_by("bucket")
        .values_list("bucket", "figure")
    )
    xs, ys = [], []
    for at, figure in rows:
        xs.append(int(at))
        ys.append(float(figure) * scale)
    return {"x": xs, "y": ys}
