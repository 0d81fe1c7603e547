from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable cursor pagination, newest first; every list endpoint uses it (spec 08)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
