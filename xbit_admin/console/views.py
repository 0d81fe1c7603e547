"""Console shell: sign-in (password, then TOTP — enrolment on first sign-in), sign-out. The overview
is ``pages.risk.overview_view``."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.models import SecurityEvent
from core.accounts.security_events import security_event_record
from core.accounts.services import otp_failure_record, security_change_mark, staff_password_check
from core.accounts.staff_admin import staff_session_end, staff_session_record
from core.audit.services import audit_record
from core.errors import ApplicationError
from xbit_admin.console.forms import PasswordForm, TokenForm


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("console:overview")


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.user.is_staff:
        return redirect(_safe_next(request) if request.user.is_verified() else reverse("console:otp"))
    form = PasswordForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            user = staff_password_check(
                request=request, email=form.cleaned_data["email"], password=form.cleaned_data["password"]
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session["console_next"] = _safe_next(request)
            return redirect("console:otp")
    return render(
        request, "console/login.html", {"form": form, "error": error, "next": request.GET.get("next", "")}
    )


def _qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


@require_http_methods(["GET", "POST"])
def otp_view(request: HttpRequest) -> HttpResponse:
    """Second factor. A staff member without a confirmed TOTP device enrols here first (QR code); no
    console page is reachable until a code has been verified in this session."""
    user = request.user
    if not user.is_authenticated or not user.is_staff:
        return redirect("console:login")
    if user.is_verified():
        return redirect(request.session.pop("console_next", reverse("console:overview")))
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    enrolling = device is None
    if enrolling:
        device = TOTPDevice.objects.filter(user=user, confirmed=False).first() or TOTPDevice.objects.create(
            user=user, name="console", confirmed=False
        )
    form = TokenForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        if user.is_locked:
            error = "Too many failed attempts. Try again later."
        elif device.verify_token(form.cleaned_data["token"]):
            if enrolling:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                security_change_mark(user=user)
                security_event_record(user=user, kind=SecurityEvent.Kind.OTP_ENROLLED, request=request)
                with transaction.atomic():
                    audit_record(
                        action="staff.otp_enrolled",
                        actor=user,
                        request=request,
                        object_type="user",
                        object_id=user.pk,
                    )
            otp_login(request, device)
            security_event_record(user=user, kind=SecurityEvent.Kind.LOGIN, request=request, factor="totp")
            staff_session_record(user=user, request=request)
            return redirect(request.session.pop("console_next", reverse("console:overview")))
        else:
            otp_failure_record(user=user, request=request)
            error = "That code is not valid. Check your device's clock and try again."
    context: dict[str, object] = {"form": form, "error": error, "enrolling": enrolling}
    if enrolling:
        uri = device.config_url.replace("otpauth://totp/", f"otpauth://totp/{settings.OTP_TOTP_ISSUER}:", 1)
        context["qr_svg"] = _qr_svg(uri)
        context["secret_b32"] = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(request, "console/otp.html", context)


@require_http_methods(["POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        security_event_record(user=request.user, kind=SecurityEvent.Kind.LOGOUT, request=request)
        if request.session.session_key:
            staff_session_end(session_key=request.session.session_key)
    auth_logout(request)
    return redirect("console:login")
