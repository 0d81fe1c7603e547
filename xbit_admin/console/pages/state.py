"""Platform state for every page (the banner's JSON) and the runbooks."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.text import ascii_int
from xbit_admin.console import desk_tables as dt
from xbit_admin.console import runbooks
from xbit_admin.console.access import staff_required
from xbit_admin.console.models import VenueLatencySample
from xbit_admin.console.pages.common import can, table_csv
from xbit_admin.console.platform_banner import platform_state
from xbit_admin.console.tables import table_view, wants_csv
from xbit_admin.console.venue import venue_health


@staff_required("view_console")
@require_GET
def platform_state_view(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(platform_state())
    response["Cache-Control"] = "no-store"
    return response


def _links(book: runbooks.Runbook) -> list[tuple[str, str]]:
    out = []
    for label, name in book.links:
        try:
            out.append((label, reverse(name)))
        except NoReverseMatch:
            continue
    return out


@staff_required("view_console")
@require_GET
def runbooks_view(request: HttpRequest) -> HttpResponse:
    def listing(kind: str, books: dict[str, runbooks.Runbook]) -> list[tuple[str, str, str]]:
        return [
            (key, book.title, reverse("console:runbook", args=[kind, key])) for key, book in books.items()
        ]

    return render(
        request,
        "console/runbooks.html",
        {
            "page": "runbooks",
            "groups": [
                ("Circuit breakers", listing("breaker", runbooks.BREAKERS)),
                ("Alert rules", listing("alert", runbooks.ALERTS)),
                ("Platform switches", listing("switch", runbooks.SWITCHES)),
            ],
        },
    )


@staff_required("view_console")
@require_GET
def runbook_view(request: HttpRequest, kind: str, key: str) -> HttpResponse:
    book = runbooks.runbook_for(kind, key)
    if book is None:
        raise Http404("no runbook")
    return render(
        request,
        "console/runbook.html",
        {"page": "runbooks", "book": book, "kind": kind, "key": key, "links": _links(book)},
    )


@staff_required("view_risk")
@require_GET
def venue_view(request: HttpRequest) -> HttpResponse:
    """Venue health: HL market-data latency, order round trip, reject rate, both HL accounts' margin ratio,
    each now and over the last hours (charts)."""

    hours = ascii_int(request.GET.get("hours", "6"), max_digits=2) or 6
    hours = hours if hours in (1, 6, 24, 72) else 6
    # the latency samples behind the chart, in the chosen window: sortable, filterable, as CSV
    samples, _ = table_view(
        request,
        VenueLatencySample.objects.filter(created_at__gte=timezone.now() - timedelta(hours=hours)),
        columns=dt.VENUE_SAMPLE_COLUMNS,
        filters=dt.VENUE_SAMPLE_FILTERS,
        default_sort="-created_at",
        default_per=25,
        name="samples",
    )
    if wants_csv(request, "samples"):
        return table_csv(request, samples, f"venue-latency-{hours}h.csv", what="venue_samples")
    return render(
        request,
        "console/venue.html",
        {
            "page": "venue",
            "v": venue_health(hours=hours),
            "hours_choices": (1, 6, 24, 72),
            "samples": samples,
            "can_export": can(request.user, "export_data"),
        },
    )
