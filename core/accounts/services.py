"""Writes for accounts: security events, login throttling, API keys."""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import check_password
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from core.accounts import lockout
from core.accounts.models import SecurityEvent, User, VerificationCode
from core.accounts.roles import ROLE_PERMISSIONS
from core.accounts.security_events import client_ip, security_event_record
from core.accounts.tasks import lockout_notice_task
from core.accounts.throttle import throttle_hit
from core.defaults import register
from core.errors import ApplicationError, ErrorCode


def _locked_pair_refuse(*, user: User | None, email: str, password: str, request: HttpRequest) -> None:
    """While (email, address) is locked: the same work and the same answer whether the account exists
    or not (a locked account answered in ~9 ms, an unknown one after the hasher)."""
    seconds = lockout.seconds_locked(email=email, ip=client_ip(request) or "")
    if not seconds:
        return
    lockout.password_work(password)
    security_event_record(
        user=user, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request, reason="locked", email=email
    )
    raise lockout.locked_error(seconds)


def _wrong_password(*, user: User | None, email: str, request: HttpRequest) -> None:
    """A wrong password for (email, address), known account or not: the same rows and the same queued
    task either way (the task finds no owner to tell for an unknown email)."""

    ip = client_ip(request) or ""
    security_event_record(user=user, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request, email=email)
    seconds = lockout.failure_record(email=email, ip=ip)
    if seconds:
        security_event_record(
            user=user, kind=SecurityEvent.Kind.LOCKED, request=request, email=email, seconds=seconds
        )
        at = timezone.now().isoformat()
        transaction.on_commit(lambda: lockout_notice_task.delay(email, ip, seconds, at))


def staff_password_check(*, request: HttpRequest, email: str, password: str) -> User:
    """First factor for staff. Wrong passwords lock the (email, address) pair for a while, growing
    (``lockout``), and every attempt is a security event support can read. The message never says which
    part was wrong, and a locked pair answers alike whether the account exists."""
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    _locked_pair_refuse(user=user, email=email, password=password, request=request)
    authenticated = authenticate(request, username=email, password=password)
    if authenticated is None or not authenticated.is_staff:
        _wrong_password(user=user, email=email, request=request)
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    if authenticated.is_locked:  # a durable lock (wrong second factors): told only with the password
        raise ApplicationError(ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts. Try again later.")
    lockout.success_record(email=email, ip=client_ip(request) or "")
    return authenticated


def _register_failure(user: User, request: HttpRequest | None) -> None:
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(failed_login_count=F("failed_login_count") + 1)
        user.refresh_from_db(fields=["failed_login_count"])
        security_event_record(user=user, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request)
        if user.failed_login_count >= settings.LOGIN_MAX_FAILURES:
            until = timezone.now() + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
            User.objects.filter(pk=user.pk).update(locked_until=until, failed_login_count=0)
            security_event_record(
                user=user, kind=SecurityEvent.Kind.LOCKED, request=request, until=until.isoformat()
            )


def otp_failure_record(*, user: User, request: HttpRequest | None) -> None:
    """A wrong second factor counts toward the same lockout as a wrong password."""
    _register_failure(user, request)
    security_event_record(user=user, kind=SecurityEvent.Kind.OTP_FAILED, request=request)


def trader_password_check(*, request: HttpRequest, email: str, password: str) -> User:
    """First factor for traders (the API sign-in). Throttled per IP and per (account, IP), so a stranger's
    attempts never refuse the owner elsewhere; wrong passwords lock the (email, address) pair, known
    account or not (``lockout``: growing locks, the owner emailed a
    link that lifts them); a locked pair and an unknown account answer alike, in the same time. An
    unverified account is refused with EMAIL_NOT_VERIFIED, but only to someone who knows the password
    it was registered with."""

    email = email.strip().lower()
    ip = client_ip(request)
    throttle_hit("login:ip", ip)
    throttle_hit("login:account_ip", f"{email} {ip or '-'}")  # not the account alone: see ``RATES``
    user = User.objects.filter(email__iexact=email, is_staff=False).first()
    if user is not None and not user.contact_email:
        # A wallet account's placeholder address has no password to guess: it signs in with SIWE.
        user = None
    _locked_pair_refuse(user=user, email=email, password=password, request=request)
    authenticated = authenticate(request, username=email, password=password)
    if authenticated is None or authenticated.is_staff:
        # Staff accounts are refused here like unknown ones (the trader sign-in never accepts them).
        if (
            user is not None
            and user.email_verified_at is None
            and _pending_signup_password_matches(user, password)
        ):
            raise ApplicationError(
                ErrorCode.EMAIL_NOT_VERIFIED, "Confirm your email address with the code we sent first."
            )
        _wrong_password(user=user, email=email, request=request)
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    if authenticated.is_locked:  # a durable lock (wrong second factors): told only with the password
        raise ApplicationError(ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts. Try again later.")
    lockout.success_record(email=email, ip=client_ip(request) or "")
    if not authenticated.email_verified:
        raise ApplicationError(
            ErrorCode.EMAIL_NOT_VERIFIED, "Confirm your email address with the code we sent first."
        )
    return authenticated


def _pending_signup_password_matches(user: User, password: str) -> bool:

    row = (
        VerificationCode.objects.filter(user=user, purpose=VerificationCode.Purpose.SIGNUP)
        .exclude(pending_password="")
        .order_by("-created_at", "-id")
        .first()
    )
    return row is not None and check_password(password, row.pending_password)


def password_reauthenticate(*, user: User, password: str, request: HttpRequest | None) -> None:
    """A signed-in user confirms a sensitive change with their password. Wrong passwords count toward
    the lockout (a stolen session must not become a password oracle); the error is 403, not 401, so
    clients do not mistake it for an expired session."""

    throttle_hit("reauth:account", str(user.pk))
    if not user.has_usable_password():
        raise ApplicationError(
            ErrorCode.INVALID_CREDENTIALS,
            "This account has no password yet: set one with a password reset first.",
            http_status=403,
        )
    if not user.check_password(password):
        _register_failure(user, request)
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "The password is wrong.", http_status=403)


def security_change_mark(*, user: User) -> None:
    """Password / 2FA / email / wallet changes start the 24-hour withdrawal lock that withdrawal
    review reads."""
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(last_security_change_at=now)
    user.last_security_change_at = now


@register
def roles_sync() -> None:
    """Make the role groups match ``ROLE_PERMISSIONS`` (the migration does this once; tests whose
    transactional flush empties the tables, and ``seed_demo``, call it again)."""

    ContentType.objects.clear_cache()  # a flush re-created content types behind the cache's back
    create_permissions(global_apps.get_app_config("accounts"), verbosity=0)
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=str(role))
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )
