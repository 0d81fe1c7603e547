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
    """The start of the ``width``-second bucket a timestamp falls in, as epoch seconds (``date_bin`` works
    on timestamps; ``extract(epoch …)`` would divide numerics, several times slower over 50,000 rows)."""

    template = "date_part('epoch', date_bin('%(width)s seconds', %(expressions)s, timestamptz 'epoch'))"
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
    return bucketed_by(
        qs, group=None, value=value, since=since, until=until, field=field, points=points, scale=scale
    ).get(None, {"x": [], "y": []})


def bucketed_by(
    qs: QuerySet[Any],
    *,
    group: str | None,
    value: Aggregate,
    since: datetime,
    until: datetime,
    field: str = "created_at",
    points: int = POINTS,
    scale: float = 1.0,
) -> dict[Any, dict[str, list[Any]]]:
    """As :func:`bucketed`, one series per value of ``group`` (both HL accounts in one read)."""
    width = bucket_width(since, until, points)
    keys = [group, "bucket"] if group else ["bucket"]
    rows = (
        qs.filter(**{f"{field}__gte": since, f"{field}__lte": until})
        .annotate(bucket=EpochBucket(field, width=width))
        .values(*keys)
        .annotate(figure=value)
        .filter(figure__isnull=False)
        .order_by(*keys)
        .values_list(*keys, "figure")
    )
    out: dict[Any, dict[str, list[Any]]] = {}
    for row in rows:
        name, at, figure = row if group else (None, *row)
        series = out.setdefault(name, {"x": [], "y": []})
        series["x"].append(int(at))
        series["y"].append(float(figure) * scale)
    return out


def bucketed_many(
    qs: QuerySet[Any],
    *,
    values: dict[str, Aggregate],
    since: datetime,
    until: datetime,
    field: str = "created_at",
    points: int = POINTS,
) -> dict[str, dict[str, list[Any]]]:
    """Several figures of the same rows bucketed in one read: ``{name: {"x": …, "y": …}}``, each series
    holding only the buckets where its figure is not null."""
    width = bucket_width(since, until, points)
    rows = (
        qs.filter(**{f"{field}__gte": since, f"{field}__lte": until})
        .annotate(bucket=EpochBucket(field, width=width))
        .values("bucket")
        .annotate(**values)
        .order_by("bucket")
        .values_list("bucket", *values)
    )
    out: dict[str, dict[str, list[Any]]] = {name: {"x": [], "y": []} for name in values}
    for at, *figures in rows:
        for name, figure in zip(values, figures, strict=True):
            if figure is not None:
                out[name]["x"].append(int(at))
                out[name]["y"].append(float(figure))
    return out


def scaled(series: dict[str, list[Any]], factor: float) -> dict[str, list[Any]]:
    return {"x": series["x"], "y": [y * factor for y in series["y"]]}
