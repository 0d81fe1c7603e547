"""Helpers shared by console pages: permission checks inside a view, service errors shown to the
operator, keyset pagination, time filters and CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.accounts.roles import perm
from core.audit.services import audit_record
from core.errors import ApplicationError
from core.text import ascii_int
from xbit_admin.console.tables import Column, TableView, csv_rows

PAGE_SIZE = 50


def acting(request: HttpRequest) -> Any:
    """The signed-in staff member (the decorator guarantees one) as services expect it."""
    return request.user


def can(user: Any, codename: str) -> bool:
    return bool(user.is_staff and user.has_perm(perm(codename)))


def require(user: Any, *all_of: str) -> None:
    """403 unless the user holds every listed permission (the decorator checks "any of")."""
    if not all(can(user, codename) for codename in all_of):
        raise PermissionDenied


def flash_error(request: HttpRequest, exc: ApplicationError) -> None:
    messages.error(request, f"{exc.message} ({exc.code})")


def csrf_input(request: HttpRequest) -> SafeString:
    """The hidden CSRF field that ``{% csrf_token %}`` renders, built once for a page that repeats it
    in every row's forms."""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request))


# --- keyset pagination ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_before: int | None
    is_first: bool


def keyset_page(qs: QuerySet[Any], request: HttpRequest, *, size: int = PAGE_SIZE) -> Page:
    """Newest first by id; ``?before=<id>`` continues after the last row seen (stable while rows are
    appended, unlike offsets)."""
    before = request.GET.get("before", "")
    before_id = ascii_int(before)  # anything else ("²", "١٢", "x") is ignored: the first page
    if before_id is not None:
        qs = qs.filter(pk__lt=before_id)
    rows = list(qs.order_by("-pk")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, next_before=rows[-1].pk if more and rows else None, is_first=not before)


# --- time filters ----------------------------------------------------------------------------------

RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _parse_when(value: str, *, end: bool) -> datetime | None:
    if not value:
        return None
    try:  # both raise ValueError on a well-formed but impossible value ("2026-13-45")
        parsed = parse_datetime(value)
        day = parse_date(value) if parsed is None else None
    except ValueError:
        return None
    if parsed is None:
        if day is None:
            return None
        parsed = datetime.combine(day, datetime.max.time() if end else datetime.min.time())
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


@dataclass(frozen=True)
class TimeWindow:
    since: datetime | None
    until: datetime | None
    range_key: str
    # ``since`` / ``until`` values that were typed but could not be read (and so were not applied)
    errors: dict[str, str] = field(default_factory=dict)

    def apply(self, qs: QuerySet[Any], field: str = "created_at") -> QuerySet[Any]:
        if self.since is not None:
            qs = qs.filter(**{f"{field}__gte": self.since})
        if self.until is not None:
            qs = qs.filter(**{f"{field}__lte": self.until})
        return qs


def time_window(request: HttpRequest, *, default: str = "all") -> TimeWindow:
    """``?range=1h|24h|7d|30d|all`` or explicit ``?since=`` / ``?until=`` (date or datetime, UTC)."""
    raw = {name: request.GET.get(name, "").strip() for name in ("since", "until")}
    since = _parse_when(raw["since"], end=False)
    until = _parse_when(raw["until"], end=True)
    errors = {
        name: f"{value!r} is not a date (YYYY-MM-DD) or date-time: not applied."
        for name, value, parsed in (("since", raw["since"], since), ("until", raw["until"], until))
        if value and parsed is None
    }
    key = request.GET.get("range", "" if (since or until) else default)
    if key in RANGES and since is None:
        since = timezone.now() - RANGES[key]
    return TimeWindow(
        since=since, until=until, range_key=key if key in RANGES or key == "all" else "", errors=errors
    )


# --- CSV -------------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    # Spreadsheet formula injection: a cell starting with = + - @ (or a tab/CR) is made literal.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):  # JSON, not Python's repr (the audit log's before/after)
        return _cell(json.dumps(value, sort_keys=True, cls=DjangoJSONEncoder))
    return "" if value is None else value


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Iterable[Any]]) -> Any:
    """A streamed CSV download (typed Any: views are declared to return HttpResponse)."""
    writer = csv.writer(_Echo())

    def stream() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(v) for v in row])

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def export_csv(
    request: HttpRequest, filename: str, header: Sequence[str], rows: Iterable[Iterable[Any]], *, what: str
) -> Any:
    """A table's CSV (``?format=csv``): needs export_data, and the export is audit-logged with the
    filters it was taken with (CSV on every desk table)."""

    require(request.user, "export_data")
    with transaction.atomic():
        audit_record(
            action="console.export",
            actor=request.user,
            request=request,
            object_type=what,
            after={k: v for k, v in request.GET.items() if k != "format"},
        )
    return csv_response(filename, header, rows)


def table_csv(request: HttpRequest, table: TableView, filename: str, *, what: str) -> Any:
    """A desk table's every filtered row in its sort order, as CSV (the columns' keys as header);
    needs export_data and is audit-logged like every export."""
    return export_csv(request, filename, [c.key for c in table.columns], table.csv_rows(), what=what)


def rows_csv(
    request: HttpRequest, filename: str, columns: list[Column], rows: Iterable[Any], *, what: str
) -> Any:
    """A page's small table (every row already on the page) as CSV through the columns' declarations."""
    return export_csv(request, filename, [c.key for c in columns], csv_rows(columns, rows), what=what)
