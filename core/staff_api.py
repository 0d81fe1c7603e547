"""Base for the ops API (staff endpoints under /api/v1/ops/): the console's session, a verified second
factor, CSRF, and the view's declared ``staff_permission`` — nothing else opens it."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from core.accounts.permissions import StaffPermission


class StaffAPIView(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [StaffPermission]
    staff_permission: str | None = None

    def get_audit_context(self) -> dict[str, Any]:
        return {"acting_user": self.request.user, "request": self.request._request}
