from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.request import Request

from core.text import ascii_int


class CursorPagination(pagination.CursorPagination):
    """Stable cursor pagination, newest first; every list endpoint uses it (spec 08)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int | None:
        # DRF ignores a malformed limit (``?limit=abc`` gave the default page): a 400 says so instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (ascii_int(raw, max_digits=9) or 0) > 0:  # "²" made int() raise: a 500
            raise exceptions.ValidationError({self.page_size_query_param: ["A positive integer."]})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
