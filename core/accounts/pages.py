"""Pages an emailed link opens (no sign-in: the link's token is the credential). Opening a link changes
nothing — mail scanners and previews open links — its page's button does."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from core.accounts.lockout import account_unlock
from core.errors import ApplicationError


@require_http_methods(["GET", "POST"])
def account_unlock_view(request: HttpRequest) -> HttpResponse:
    """The lockout email's link: lifts every lock of the account, once."""
    token = (request.POST if request.method == "POST" else request.GET).get("token", "")
    context: dict[str, object] = {"token": token}
    status = 200
    if request.method == "POST":
        try:
            account_unlock(token=token, request=request)
            context["unlocked"] = True
        except ApplicationError as exc:
            context["error"], status = exc.message, 400
    elif not token:
        context["error"], status = "This link has no token.", 400
    return render(request, "public/account_unlock.html", context, status=status)
