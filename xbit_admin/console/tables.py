"""Desk-grade tables: sorting, filters and pagination kept in the URL (a link reproduces the
view), and the same rows as CSV with ``?format=csv``. A page declares its columns (which may sort, on which
field) and its filters (which field, which choices); the helper parses the query string, refuses nothing
silently (an unknown sort falls back to the default and says so), and returns one page of rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import HttpRequest

PER_PAGE_CHOICES = (25, 50, 100, 200)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort: str = ""  # the ORM field it sorts on ("" = not sortable)
    num: bool = False  # right-aligned figure
    csv: Callable[[Any], Any] | None = None  # the CSV cell (default: the attribute ``key``)


@dataclass(frozen=True)
class Filter:
    key: str
    label: str
    apply: Callable[[QuerySet[Any], str], QuerySet[Any]]
    choices: tuple[tuple[str, str], ...] = ()  # (value, label); empty = free text


@dataclass
class TableView:
    rows: list[Any]
    columns: list[Column]
    filters: list[dict[str, Any]]
    sort: str
    page: int
    per: int
    total: int
    notes: list[str] = field(default_factory=list)
    base_query: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per))

    def url(self, **changes: Any) -> str:
        params = {**self.base_query, **{k: str(v) for k, v in changes.items()}}
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    def sort_url(self, column: Column) -> str:
        if not column.sort:
            return ""
        target = f"-{column.key}" if self.sort == column.key else column.key
        return self.url(sort=target, page=1)

    def sort_mark(self, column: Column) -> str:
        if self.sort == column.key:
            return "▲"
        if self.sort == f"-{column.key}":
            return "▼"
        return ""

    @property
    def prev_url(self) -> str:
        return self.url(page=self.page - 1) if self.page > 1 else ""

    @property
    def next_url(self) -> str:
        return self.url(page=self.page + 1) if self.page < self.pages else ""

    @property
    def csv_url(self) -> str:
        return self.url(format="csv", page="")

    @property
    def header(self) -> list[dict[str, Any]]:
        return [
            {"column": c, "url": self.sort_url(c), "mark": self.sort_mark(c), "num": c.num}
            for c in self.columns
        ]


def table_view(
    request: HttpRequest,
    qs: QuerySet[Any],
    *,
    columns: list[Column],
    filters: Iterable[Filter] = (),
    default_sort: str,
    default_per: int = 50,
) -> tuple[TableView, QuerySet[Any]]:
    """The page of ``qs`` the query string asks for, and the filtered, sorted queryset (for the CSV)."""
    notes: list[str] = []
    query: dict[str, str] = {}
    state = []
    for f in filters:
        value = request.GET.get(f.key, "").strip()
        if value and f.choices and value not in {v for v, _ in f.choices}:
            notes.append(f"{f.label}: {value!r} is not one of the choices; not applied.")
            value = ""
        if value:
            qs = f.apply(qs, value)
            query[f.key] = value
        state.append({"filter": f, "value": value})
    sortable = {c.key: c.sort for c in columns if c.sort}
    sort = request.GET.get("sort", "") or default_sort
    key = sort.removeprefix("-")
    if key not in sortable:
        if request.GET.get("sort"):
            notes.append(f"Cannot sort by {request.GET['sort']!r}; sorted by {default_sort}.")
        sort, key = default_sort, default_sort.removeprefix("-")
    field_name = sortable[key]
    descending = sort.startswith("-")
    qs = qs.order_by(f"-{field_name}" if descending else field_name, "-pk" if descending else "pk")
    query["sort"] = sort
    try:
        per = int(request.GET.get("per", default_per))
    except ValueError:
        per = default_per
    per = per if per in PER_PAGE_CHOICES else default_per
    query["per"] = str(per)
    total = qs.count()
    pages = max(1, -(-total // per))
    try:
        page = min(max(1, int(request.GET.get("page", "1"))), pages)
    except ValueError:
        page = 1
    rows = list(qs[(page - 1) * per : page * per])
    view = TableView(
        rows=rows,
        columns=columns,
        filters=state,
        sort=sort,
        page=page,
        per=per,
        total=total,
        notes=notes,
        base_query=query,
    )
    return view, qs


def csv_rows(columns: list[Column], rows: Iterable[Any]) -> Iterable[list[Any]]:
    for row in rows:
        yield [c.csv(row) if c.csv is not None else getattr(row, c.key, "") for c in columns]
