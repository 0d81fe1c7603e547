"""Email accounts: sign-up with an emailed code, password reset and change, email change (or linking
an email to a wallet account).

Enumeration safety: sign-up, resend and reset answer the same whether or not the address has an
account; what differs is only what arrives in that inbox (a code, or a notice that an account
already exists). Codes are checked by ``codes.code_check`` (expiry, attempt limit, single use)."""

from __future__ import annotations

import hashlib

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts import tokens
from core.accounts.codes import Purpose, code_check, code_issue, in_cooldown, latest_code
from core.accounts.emails import email_send_on_commit
from core.accounts.lockout import locks_lift
from core.accounts.models import WALLET_EMAIL_DOMAIN, SecurityEvent, User
from core.accounts.security_events import client_ip, security_event_record
from core.accounts.services import password_reauthenticate, security_change_mark
from core.accounts.sessions import sign_in_complete
from core.accounts.throttle import throttle_hit
from core.errors import ApplicationError, ErrorCode


def _clean_email(email: str) -> str:
    email = email.strip().lower()
    if email.endswith(WALLET_EMAIL_DOMAIN):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "Use a real email address.", {"fields": {"email": []}}
        )
    return email


def password_validate(password: str, *, user: User) -> None:
    """Django's validators (length, similarity to the email, the common-password list, all-numeric)
    as a VALIDATION_ERROR on the ``password`` field. No network lookups."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "The password is not acceptable.",
            {"fields": {"password": exc.messages}},
        ) from None


def _notice_once(*, email: str, attempted: str) -> None:
    """Tell an existing account's owner that someone tried to use their address — at most hourly, so
    the endpoint cannot be used to flood an inbox."""
    # hashed: no address in the cache's keys, and no space (a key memcached would refuse)
    digest = hashlib.sha256(f"{email}\n{attempted}".encode()).hexdigest()[:32]
    if cache.add(f"account-exists-notice:{digest}", 1, timeout=3600):
        email_send_on_commit(to=email, template="account_exists", context={"attempted": attempted})


# --- sign-up -----------------------------------------------------------------------------------------


def account_register(*, email: str, password: str, request: HttpRequest | None = None) -> None:
    """Start a sign-up. Always answers the same (the caller returns 202).

    New address: an unverified user with no usable password, and a code emailed after commit that
    carries the chosen password's hash (applied on verification). Unverified existing address: a new
    code (subject to the resend cooldown) for this registration. Verified address: a notice to its
    owner, no code."""
    throttle_hit("register:ip", client_ip(request))
    email = _clean_email(email)
    password_validate(password, user=User(email=email))
    hashed = make_password(password)  # computed on every path, so timing does not tell them apart
    existing = User.objects.filter(email__iexact=email).first()
    with transaction.atomic():
        if existing is None:
            try:
                with transaction.atomic():
                    user = User(email=email, email_verified_at=None)
                    user.set_unusable_password()
                    user.save()
            except IntegrityError:  # a concurrent registration of the same address won the race
                return
            security_event_record(user=user, kind=SecurityEvent.Kind.SIGNUP, request=request, method="email")
            code_issue(user=user, purpose=Purpose.SIGNUP, email=email, pending_password=hashed)
        elif existing.email_verified_at is None and not existing.is_staff:
            if not in_cooldown(user=existing, purpose=Purpose.SIGNUP):
                code_issue(user=existing, purpose=Purpose.SIGNUP, email=email, pending_password=hashed)
        else:
            _notice_once(email=email, attempted="create an account")


def account_register_resend(*, email: str, request: HttpRequest | None = None) -> None:
    """Send a fresh sign-up code for the pending registration (same password). Same answer always."""
    throttle_hit("code:ip", client_ip(request))
    user = User.objects.filter(email__iexact=_clean_email(email), email_verified_at__isnull=True).first()
    if user is None or in_cooldown(user=user, purpose=Purpose.SIGNUP):
        return
    last = latest_code(user=user, purpose=Purpose.SIGNUP)
    if last is None or not last.pending_password:
        return
    with transaction.atomic():
        code_issue(
            user=user, purpose=Purpose.SIGNUP, email=user.email, pending_password=last.pending_password
        )


def account_verify_email(
    *, email: str, code: str, password: str, request: HttpRequest | None = None, device: str = ""
) -> dict[str, str]:
    """Finish a sign-up: the emailed code AND the password chosen with that registration (so that a
    code triggered by somebody else's registration of this address cannot activate their password).
    Signs the user in. Errors: INVALID_CODE / CODE_EXPIRED, nothing that reveals the account."""
    throttle_hit("code:ip", client_ip(request))
    email = _clean_email(email)
    throttle_hit("code:account", email)
    user = User.objects.filter(email__iexact=email, email_verified_at__isnull=True, is_staff=False).first()
    row = code_check(
        user=user,
        purpose=Purpose.SIGNUP,
        code=code,
        also=lambda r: check_password(password, r.pending_password),
    )
    assert user is not None
    with transaction.atomic():
        user.password = row.pending_password
        user.email_verified_at = timezone.now()
        user.save(update_fields=["password", "email_verified_at"])
        security_event_record(user=user, kind=SecurityEvent.Kind.EMAIL_VERIFIED, request=request)
    return sign_in_complete(user=user, request=request, method="signup", device=device)


# --- passwords ---------------------------------------------------------------------------------------


def password_reset_request(*, email: str, request: HttpRequest | None = None) -> None:
    """Email a reset code to a verified trader account. Same answer whether or not it exists."""
    throttle_hit("reset:ip", client_ip(request))
    user = User.objects.filter(
        email__iexact=_clean_email(email), email_verified_at__isnull=False, is_staff=False, is_active=True
    ).first()
    if user is None or in_cooldown(user=user, purpose=Purpose.PASSWORD_RESET):
        return
    with transaction.atomic():
        code_issue(user=user, purpose=Purpose.PASSWORD_RESET, email=user.email)
        security_event_record(user=user, kind=SecurityEvent.Kind.PASSWORD_RESET_REQUESTED, request=request)


def _password_set(
    user: User, password: str, *, request: HttpRequest | None, how: str, keep: str | None
) -> None:
    """Inside the caller's transaction: new password, sessions ended (all, or all but ``keep``),
    lockout cleared, event, 24-hour withdrawal lock, notice email."""

    user.set_password(password)
    user.failed_login_count = 0
    user.locked_until = None
    locks_lift(email=user.email)  # every address's sign-in lock too
    fields = ["password", "failed_login_count", "locked_until"]
    if keep is None:
        user.tokens_valid_after = timezone.now()
        fields.append("tokens_valid_after")
    user.save(update_fields=fields)
    tokens.refresh_tokens_revoke_all(user=user, keep_family=keep)
    security_event_record(user=user, kind=SecurityEvent.Kind.PASSWORD_CHANGED, request=request, how=how)
    security_change_mark(user=user)
    email_send_on_commit(
        to=user.email if user.email_verified else None,
        template="security_change",
        context={"change": "Your password was changed", "at": timezone.now()},
    )


def password_reset_confirm(
    *, email: str, code: str, new_password: str, request: HttpRequest | None = None
) -> None:
    """Set a new password with the emailed code. Ends every session. INVALID_CODE for anything that
    does not match (including an unknown address)."""
    throttle_hit("code:ip", client_ip(request))
    email = _clean_email(email)
    throttle_hit("code:account", email)
    user = User.objects.filter(email__iexact=email, email_verified_at__isnull=False, is_staff=False).first()
    password_validate(new_password, user=user or User(email=email))
    code_check(user=user, purpose=Purpose.PASSWORD_RESET, code=code)
    assert user is not None
    with transaction.atomic():
        _password_set(user, new_password, request=request, how="reset", keep=None)


def password_change(
    *,
    user: User,
    current_password: str,
    new_password: str,
    session_id: str | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Change the password of a signed-in user. Other sessions end; the calling one stays."""
    password_reauthenticate(user=user, password=current_password, request=request)
    password_validate(new_password, user=user)
    with transaction.atomic():
        _password_set(user, new_password, request=request, how="change", keep=session_id)


# --- email change / link -----------------------------------------------------------------------------


def email_change_start(
    *, user: User, new_email: str, password: str = "", request: HttpRequest | None = None
) -> None:
    """Send a code to ``new_email``. Accounts with a password confirm with it; a wallet-only account
    (no password) is linking its first email. If the address belongs to another account its owner
    gets a notice instead of a code and confirmation then fails like a wrong code: the answer here
    never says whether an address is taken."""
    new_email = _clean_email(new_email)
    if user.has_usable_password():
        password_reauthenticate(user=user, password=password, request=request)
    if user.email.lower() == new_email:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "That is already your email address.")
    wait = in_cooldown(user=user, purpose=Purpose.EMAIL_CHANGE)
    if wait:
        raise ApplicationError(
            ErrorCode.RATE_LIMITED, "A code was sent moments ago. Try again shortly.", {"retry_after": wait}
        )
    taken = User.objects.filter(email__iexact=new_email).exclude(pk=user.pk).exists()
    with transaction.atomic():
        code_issue(user=user, purpose=Purpose.EMAIL_CHANGE, email=new_email, send=not taken)
        if taken:
            _notice_once(email=new_email, attempted="add it to another account")


def email_change_confirm(*, user: User, code: str, request: HttpRequest | None = None) -> User:
    """Apply the new (now verified) email. Side effects: EMAIL_CHANGED event, 24-hour withdrawal lock,
    notices to the old and the new address."""
    throttle_hit("code:account", str(user.pk))
    row = code_check(user=user, purpose=Purpose.EMAIL_CHANGE, code=code)
    old = user.contact_email if user.email_verified else None
    with transaction.atomic():
        if User.objects.filter(email__iexact=row.email).exclude(pk=user.pk).exists():
            raise ApplicationError(ErrorCode.INVALID_CODE, "The code is wrong or was already used.")
        user.email = row.email
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email", "email_verified_at"])
        security_event_record(
            user=user, kind=SecurityEvent.Kind.EMAIL_CHANGED, request=request, linked=old is None
        )
        security_change_mark(user=user)
        context = {"change": f"Your account email was set to {row.email}", "at": timezone.now()}
        for address in {old, row.email} - {None}:
            email_send_on_commit(to=address, template="security_change", context=context)
    return user
