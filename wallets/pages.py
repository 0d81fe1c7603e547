"""The withdrawal email's link (``/withdrawals/confirm?token=…``): the page shows
the withdrawal and a button; opening the link confirms nothing (mail scanners open links), the button
confirms, once. The single-use token is the credential, as for ``POST /api/v1/withdrawals/confirm``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from core.errors import ApplicationError
from wallets.selectors import withdrawal_awaiting_confirmation
from wallets.services import withdrawal_confirm


@require_http_methods(["GET", "POST"])
def withdrawal_confirm_view(request: HttpRequest) -> HttpResponse:
    token = (request.POST if request.method == "POST" else request.GET).get("token", "")
    context: dict[str, object] = {"token": token}
    status = 200
    if request.method == "POST":
        try:
            context["done"] = withdrawal_confirm(token=token)
        except ApplicationError as exc:
            context["error"], status = exc.message, 400
    else:
        withdrawal = withdrawal_awaiting_confirmation(token=token)
        if withdrawal is None:
            context["error"], status = "This confirmation link is not valid or was already used.", 400
        context["withdrawal"] = withdrawal
    return render(request, "public/withdrawal_confirm.html", context, status=status)
