"""Desk-grade tables: sorting, filters and pagination kept in the URL (a link reproduces the
view), and the same rows as CSV with ``?format=csv``. A page declares its columns (which may sort, on which
field) and its filters (which field, which choices); the helper parses the query string, refuses nothing
silently (an unknown sort falls back to the default and says so), and returns one page of rows.

The rows come from a queryset (filtered, sorted and paged by the database) or from a list the page has
already computed (per-asset figures, per-chain wallets: filtered and sorted in memory). A page with several
tables gives each a ``name``: its parameters are then prefixed (``orders-sort``, ``orders-page``) so one
table's state does not reset another's, and its CSV is ``?format=csv&table=<name>``."""

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
    sort: str = ""  # the ORM field (or, for a list, the row's key) it sorts on ("" = not sortable)
    num: bool = False  # right-aligned figure
    csv: Callable[[Any], Any] | None = None  # the CSV cell (default: the attribute or key ``key``)


@dataclass(frozen=True)
class Filter:
    key: str
    label: str
    # (queryset or list, value) -> the same kind, filtered
    apply: Callable[[Any, str], Any]
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
    base_query: dict[str, str] = field(default_factory=dict)  # this table's state, unprefixed
    name: str = ""
    others: dict[str, str] = field(default_factory=dict)  # the rest of the page's query string
    ordered: Any = None  # every filtered row in order (the CSV's rows): a queryset or a list

    @property
    def prefix(self) -> str:
        return f"{self.name}-" if self.name else ""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per))

    def url(self, **changes: Any) -> str:
        own = {**self.base_query, **{k: str(v) for k, v in changes.items()}}
        params = {**self.others, **{self.prefix + k: v for k, v in own.items()}}
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
        params = {**self.others, **{self.prefix + k: v for k, v in self.base_query.items()}}
        params["format"] = "csv"
        if self.name:
            params["table"] = self.name
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    @property
    def hidden(self) -> list[tuple[str, str]]:
        """The other tables' state, kept by this table's filter form."""
        return sorted(self.others.items())

    @property
    def header(self) -> list[dict[str, Any]]:
        return [
            {"column": c, "url": self.sort_url(c), "mark": self.sort_mark(c), "num": c.num}
            for c in self.columns
        ]

    def csv_rows(self) -> Iterable[list[Any]]:
        rows = self.ordered.iterator(chunk_size=2000) if isinstance(self.ordered, QuerySet) else self.ordered
        return csv_rows(self.columns, rows)


def _value(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, dict) else getattr(row, key, None)


def _sorted(rows: list[Any], key: str, descending: bool) -> list[Any]:
    """Sorted on ``key``; rows without a value last, whichever the direction."""
    present = [r for r in rows if _value(r, key) is not None]
    absent = [r for r in rows if _value(r, key) is None]
    return sorted(present, key=lambda r: _value(r, key), reverse=descending) + absent


def wants_csv(request: HttpRequest, name: str = "") -> bool:
    return request.GET.get("format") == "csv" and request.GET.get("table", "") == name


def table_view(
    request: HttpRequest,
    source: QuerySet[Any] | list[Any],
    *,
    columns: list[Column],
    filters: Iterable[Filter] = (),
    default_sort: str,
    default_per: int = 50,
    name: str = "",
) -> tuple[TableView, Any]:
    """The page of ``source`` the query string asks for, and every filtered, sorted row (for the CSV)."""
    prefix = f"{name}-" if name else ""
    params = request.GET

    def get(key: str, default: str = "") -> str:
        return params.get(prefix + key, default)

    notes: list[str] = []
    query: dict[str, str] = {}
    state = []
    own: set[str] = {prefix + k for k in ("sort", "per", "page")}
    rows: Any = source
    for f in filters:
        own.add(prefix + f.key)
        value = get(f.key).strip()
        if value and f.choices and value not in {v for v, _ in f.choices}:
            notes.append(f"{f.label}: {value!r} is not one of the choices; not applied.")
            value = ""
        if value:
            rows = f.apply(rows, value)
            query[f.key] = value
        state.append({"filter": f, "value": value})
    sortable = {c.key: c.sort for c in columns if c.sort}
    sort = get("sort") or default_sort
    key = sort.removeprefix("-")
    if key not in sortable:
        if get("sort"):
            notes.append(f"Cannot sort by {get('sort')!r}; sorted by {default_sort}.")
        sort, key = default_sort, default_sort.removeprefix("-")
    field_name = sortable[key]
    descending = sort.startswith("-")
    if isinstance(rows, QuerySet):
        rows = rows.order_by(f"-{field_name}" if descending else field_name, "-pk" if descending else "pk")
    else:
        rows = _sorted(list(rows), field_name, descending)
    query["sort"] = sort
    try:
        per = int(get("per", str(default_per)))
    except ValueError:
        per = default_per
    per = per if per in PER_PAGE_CHOICES else default_per
    query["per"] = str(per)
    total = rows.count() if isinstance(rows, QuerySet) else len(rows)
    pages = max(1, -(-total // per))
    try:
        page = min(max(1, int(get("page", "1"))), pages)
    except ValueError:
        page = 1
    view = TableView(
        rows=list(rows[(page - 1) * per : page * per]),
        columns=columns,
        filters=state,
        sort=sort,
        page=page,
        per=per,
        total=total,
        notes=notes,
        base_query=query,
        name=name,
        others={k: v for k, v in params.items() if k not in own and k not in ("format", "table")},
        ordered=rows,
    )
    return view, rows


def csv_rows(columns: list[Column], rows: Iterable[Any]) -> Iterable[list[Any]]:
    for row in rows:
        yield [c.csv(row) if c.csv is not None else _value(row, c.key) for c in columns]
