"""The one shape of a staff action in the console: a POST from a signed-in, second-factor-verified staff
member holding the action's permission; one service call (the service checks what only it can — four
eyes, the reason, the state — and writes the audit row in the same transaction); the service's refusal
or the outcome said in one line; back to the page the action was taken from.

A view is then a few lines::

    @staff_action("annotate_clients")
    def client_note_view(request, user_id):
        return perform(
            request,
            lambda: client_note_add(user_id=user_id, body=..., acting_user=request.user, request=request),
            done="Note added to the client's journal.",
            back=card_url(user_id, "journal"),
        )
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from core.errors import ApplicationError
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.common import flash_error

T = TypeVar("T")

# What an action says when it went through: one line (a success), or the line with its level
# (``messages.info`` for "nothing changed", ``messages.warning``, ``messages.error`` for an order the
# venue refused after the action itself was accepted).
Said = str | tuple[Callable[..., Any], str]


def staff_action(*any_of: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """POST only, and the console guard for the permissions (any of them; the view narrows further with
    ``require`` where one of several roles may act)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        return staff_required(*any_of)(require_POST(view))

    return decorator


def reason(request: HttpRequest) -> str:
    """The reason typed in the action's confirmation (every service decides whether it is required)."""
    return request.POST.get("reason", "")


def say(request: HttpRequest, said: Said) -> None:
    if isinstance(said, tuple):
        level, text = said
        level(request, text)
    else:
        messages.success(request, said)


def perform(
    request: HttpRequest,
    run: Callable[[], T],
    *,
    done: Said | Callable[[T], Said],
    back: str | Callable[[T], str],
    refused_back: str | Callable[[], str] | None = None,
) -> HttpResponse:
    """Run the action; on the service's refusal (``ApplicationError``) show its message and code and go
    back to ``refused_back`` (or ``back`` when it does not depend on the result); otherwise say ``done``
    and go ``back``."""
    try:
        result = run()
    except ApplicationError as exc:
        flash_error(request, exc)
        if refused_back is not None:
            return redirect(refused_back() if callable(refused_back) else refused_back)
        if callable(back):
            raise TypeError("perform: a back that depends on the result needs refused_back") from exc
        return redirect(back)
    say(request, done(result) if callable(done) else done)
    return redirect(back(result) if callable(back) else back)


def local_url(raw: str, default: str) -> str:
    """A "back to" address from a form, kept on this site (a path, never ``//host`` or a full URL)."""
    return raw if raw.startswith("/") and not raw.startswith("//") else default
