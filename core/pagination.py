import re
from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.request import Request

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class CursorPagination(pagination.CursorPagination):
    """Stable cursor pagination, newest first; every list endpoint uses it (spec 08)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int | None:
        # DRF ignores a malformed limit (``?limit=abc`` gave the default page): a 400 says so instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return super().get_page_size(request)
        # ASCII digits only ("²" passed isdigit() and made int() raise: a 500); any integer above the
        # maximum is the maximum (the schema says "an integer, at least 1": 10^30 is one), and digits
        # beyond the fifth are never converted (int() refuses more than 4,300 of them)
        digits = raw.lstrip("0")
        if not _DIGITS.fullmatch(raw) or not digits:
            raise exceptions.ValidationError({self.page_size_query_param: ["A positive integer."]})
        return self.max_page_size if len(digits) > 5 else min(int(digits), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
