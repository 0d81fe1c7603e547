from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.dispatch import Signal
from django.utils import timezone

from core.accounts.roles import PERMISSIONS

WALLET_EMAIL_DOMAIN = "@wallet.invalid"


def wallet_placeholder_email(address: str) -> str:
    return f"{address.lower()}{WALLET_EMAIL_DOMAIN}"


# Sent after ``User.objects.….update(...)`` with the ids of the rows it may have changed (an update sends
# no post_save): what keeps copies of user rows elsewhere (``core.accounts.user_cache``) honest.
users_updated = Signal()


class UserQuerySet(models.QuerySet["User"]):
    def update(self, **kwargs: Any) -> int:
        ids = list(self.values_list("pk", flat=True))
        count = super().update(**kwargs)
        if ids:
            users_updated.send(sender=User, ids=ids)
        return count

    update.alters_data = True  # type: ignore[attr-defined]


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("email is required")
        # Accounts made by operators, seeds and tests are verified; self-service sign-up passes
        # ``email_verified_at=None`` and verifies through the emailed code.
        extra.setdefault("email_verified_at", timezone.now())
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    class KycStatus(models.TextChoices):
        NONE = "NONE", "None"
        PENDING = "PENDING", "Pending"
        VERIFIED = "VERIFIED", "Verified"
        REJECTED = "REJECTED", "Rejected"

    # Accounts created by Sign-In with Ethereum hold ``<address>@wallet.invalid`` (RFC 2606: never
    # deliverable) until they link and verify a real address; ``email_verified_at`` tells them apart.
    email = models.EmailField(unique=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    wallet_address = models.CharField(max_length=64, null=True, blank=True, unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    kyc_status = models.CharField(max_length=10, choices=KycStatus.choices, default=KycStatus.NONE)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # Restrictions set by risk/support; the order and withdrawal paths read them as data.
    trading_restricted = models.BooleanField(default=False)  # reduce-only: closing orders still pass
    trading_blocked = models.BooleanField(default=False)  # no order at all, closing included
    withdrawals_restricted = models.BooleanField(default=False)
    blacklisted = models.BooleanField(default=False)
    restriction_reason = models.CharField(max_length=200, blank=True)
    # Security state (login throttling and the 24-hour post-change withdrawal lock).
    failed_login_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_security_change_at = models.DateTimeField(null=True, blank=True)
    # Access tokens issued before this instant are refused ("log out everywhere", password reset).
    tokens_valid_after = models.DateTimeField(null=True, blank=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(wallet_address__isnull=True)
                | models.Q(wallet_address=Lower("wallet_address")),
                name="user_wallet_address_lowercase",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None and not self.email.endswith(WALLET_EMAIL_DOMAIN)

    @property
    def contact_email(self) -> str | None:
        """The address to show and to write to: None for a wallet account without a real email."""
        return None if self.email.endswith(WALLET_EMAIL_DOMAIN) else self.email

    @property
    def is_locked(self) -> bool:
        return self.locked_until is not None and self.locked_until > timezone.now()

    @property
    def role_names(self) -> list[str]:
        return sorted(group.name for group in self.groups.all())


class StaffPermission(models.Model):
    """Holds the console permissions of spec 07 (no rows; permissions only)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = list(PERMISSIONS.items())

    def __str__(self) -> str:
        return "staff permissions"


class SecurityEvent(models.Model):
    class Kind(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOCKED = "locked", "Account locked"
        UNLOCKED = "unlocked", "Account unlocked by the emailed link"
        LOGOUT = "logout", "Logout"
        OTP_ENROLLED = "otp_enrolled", "2FA enrolled"
        OTP_FAILED = "otp_failed", "Wrong 2FA code"
        OTP_DISABLED = "otp_disabled", "2FA disabled"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        EMAIL_CHANGED = "email_changed", "Email changed"
        API_KEY_CREATED = "api_key_created", "API key created"
        API_KEY_REVOKED = "api_key_revoked", "API key revoked"
        WITHDRAWAL_ADDRESS_CHANGED = "withdrawal_address_changed", "Withdrawal address changed"
        TOKEN_REUSE = "token_reuse", "Refresh token reused"
        SIGNUP = "signup", "Signed up"
        EMAIL_VERIFIED = "email_verified", "Email verified"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
        WALLET_LINKED = "wallet_linked", "Wallet linked"
        SESSION_REVOKED = "session_revoked", "Session revoked"
        LOGOUT_ALL = "logout_all", "Logged out everywhere"
        RECOVERY_CODES_GENERATED = "recovery_codes_generated", "Recovery codes generated"
        RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"
        KYC_STATUS_CHANGED = "kyc_status_changed", "KYC status changed"

    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, related_name="security_events")
    kind = models.CharField(max_length=40, choices=Kind.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.user_id} {self.created_at:%Y-%m-%d %H:%M:%S}"


class ApiKey(models.Model):
    """A program's credential. The HMAC secret must be recoverable to verify signatures, so it is
    encrypted at rest (Fernet) and shown to its owner exactly once."""

    class Permission(models.TextChoices):
        READ = "read", "Read"
        TRADE = "trade", "Trade"
        WITHDRAW = "withdraw", "Withdraw"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    key_id = models.CharField(max_length=40, unique=True)
    secret_encrypted = models.TextField()
    label = models.CharField(max_length=80, blank=True)
    permissions = ArrayField(models.CharField(max_length=10, choices=Permission.choices), default=list)
    ip_allowlist = ArrayField(models.GenericIPAddressField(), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key_id} ({self.label or 'unlabelled'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RefreshToken(models.Model):
    """Refresh tokens are single use: each refresh rotates to a new token in the same family; presenting
    a used one again means it leaked, and the whole family is revoked."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    jti = models.CharField(max_length=64, unique=True)
    family = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # A name the client gave its device at sign-in ("iPhone 15"), carried across rotations.
    device = models.CharField(max_length=80, blank=True)

    class Meta:
        indexes = [  # the revocations copied to Redis after a restart (tokens.revoked_sessions_reload)
            models.Index(
                fields=["revoked_at"], condition=models.Q(revoked_at__isnull=False), name="refresh_revoked_at"
            )
        ]

    def __str__(self) -> str:
        return f"refresh {self.jti[:8]}… of user {self.user_id}"


class VerificationCode(models.Model):
    """A 6-digit code sent by email. Only an HMAC of it is stored; it expires, allows a few attempts,
    and is consumed once. Issuing a new code for the same (user, purpose) supersedes the old one."""

    class Purpose(models.TextChoices):
        SIGNUP = "signup", "Sign-up verification"
        PASSWORD_RESET = "password_reset", "Password reset"
        EMAIL_CHANGE = "email_change", "Email change or link"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="verification_codes")
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    code_hash = models.CharField(max_length=64)
    # The address the code was sent to (the new address for an email change).
    email = models.EmailField()
    # Sign-up only: the password chosen with this registration, applied when the code is verified, so
    # whoever controls the inbox activates their own registration and never someone else's password.
    pending_password = models.CharField(max_length=256, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.purpose} code for user {self.user_id}"


class SiweNonce(models.Model):
    """A Sign-In with Ethereum nonce: issued by the server, accepted once, for a short time. A nonce
    issued to a signed-in user (``user`` set) can only link a wallet to that user."""

    nonce = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"siwe nonce {self.nonce[:8]}…"


def _limit_field(default: Decimal) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6, default=default)


class KycLimit(models.Model):
    """Per-KYC-status limits that withdrawal review and order placement read through
    ``selectors.kyc_limits_for``. One row per status; edits are audited."""

    status = models.CharField(max_length=10, choices=User.KycStatus.choices, unique=True)
    daily_withdrawal_limit = _limit_field(Decimal(0))
    max_order_notional = _limit_field(Decimal(0))
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(daily_withdrawal_limit__gte=0, max_order_notional__gte=0),
                name="kyc_limit_non_negative",
            )
        ]

    def __str__(self) -> str:
        return f"KYC {self.status} limits"


# --- the desk's client card and staff tools ------------------------------------------------


class ClientNote(models.Model):
    """A staff note on a client's card (append-only in the service: a correction is a new note)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="client_notes")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"note on {self.user_id} by {self.author_id}"


class ClientTag(models.Model):
    """A short label on a client ("vip", "watch", "market-maker") that staff search and filter by."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="client_tags")
    tag = models.CharField(max_length=32)
    added_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tag"], name="client_tag_once")]

    def __str__(self) -> str:
        return f"{self.tag} on {self.user_id}"


class ClientRestriction(models.Model):
    """A restriction staff put on a client, with an optional expiry. The order and withdrawal paths read
    the user's flags (``trading_restricted`` = reduce-only, ``trading_blocked``, ``withdrawals_restricted``);
    these rows say who set them, why, and until when — the expiry sweep lifts them."""

    class Kind(models.TextChoices):
        REDUCE_ONLY = "reduce_only", "Reduce-only (may close, may not open)"
        NO_TRADING = "no_trading", "No trading at all"
        NO_WITHDRAWALS = "no_withdrawals", "No withdrawals"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="client_restrictions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=300)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    lift_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            # one active restriction per kind and client: a new one replaces (lifts) the old
            models.UniqueConstraint(
                fields=["user", "kind"],
                condition=models.Q(lifted_at__isnull=True),
                name="client_restriction_once",
            )
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=models.Q(lifted_at__isnull=True),
                name="client_restriction_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.user_id}"


class StaffProposal(models.Model):
    """Four eyes for actions that touch money or security: one staff member proposes (with a reason),
    another approves, and only then is the action applied — in the approving transaction. The proposer
    can never decide (enforced here and by a CHECK constraint)."""

    class Kind(models.TextChoices):
        CLIENT_2FA_RESET = "client_2fa_reset", "Reset a client's 2FA"
        STAFF_TOTP_RESET = "staff_totp_reset", "Reset a staff member's TOTP"
        RISK_CONFIG = "risk_config", "Change risk configuration"
        ROUTING_CONFIG = "routing_config", "Change routing thresholds"

    class Status(models.TextChoices):
        PROPOSED = "PROPOSED", "Waiting for a second person"
        APPLIED = "APPLIED", "Approved and applied"
        REJECTED = "REJECTED", "Rejected"
        FAILED = "FAILED", "Approved but the change was refused"
        CANCELLED = "CANCELLED", "Withdrawn by the proposer"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    target_user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    subject = models.CharField(max_length=80, blank=True)  # e.g. the asset of a routing change
    payload = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    proposed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("proposed_by")),
                name="staff_proposal_four_eyes",
            )
        ]
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} proposal {self.pk} ({self.status})"


class StaffSession(models.Model):
    """A console sign-in: the Django session it opened, from where, and whether it was revoked (the
    session row is deleted on revocation; this row stays as the record)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="staff_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"console session of {self.user_id}"
