"""Sign-In with Ethereum (EIP-4361): the message format as pure functions, and the services that
verify a signed message (domain, chain, version, times, a server-issued single-use nonce, then the
signer recovered with eth-account), sign a wallet in, or link a wallet to a signed-in account."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address, to_checksum_address

from core.accounts.emails import email_send_on_commit
from core.accounts.models import SecurityEvent, SiweNonce, User, wallet_placeholder_email
from core.accounts.security_events import client_ip, security_event_record
from core.accounts.services import security_change_mark
from core.accounts.sessions import sign_in_complete
from core.accounts.throttle import throttle_hit
from core.errors import ApplicationError, ErrorCode
from core.text import ascii_int

CLOCK_SKEW = timedelta(seconds=60)
STATEMENT = "Sign in to XBIT."
LINK_STATEMENT = "Link this wallet to my XBIT account."

_HEADER = re.compile(
    r"^(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+\-.]*)://)?(?P<domain>[^\s/?#]+) wants you to sign in with your "
    r"Ethereum account:$"
)
_ADDRESS = re.compile(r"^0x[a-fA-F0-9]{40}$")
_NONCE = re.compile(r"^[a-zA-Z0-9]{8,64}$")


class SiweParseError(ValueError):
    pass


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    scheme: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())

    def text(self) -> str:
        """The exact EIP-4361 text a wallet shows and signs."""
        prefix = f"{self.scheme}://" if self.scheme else ""
        lines = [f"{prefix}{self.domain} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines.append("")
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_rfc3339(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_rfc3339(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_rfc3339(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _parse_time(raw: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise SiweParseError(f"{name} is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        raise SiweParseError(f"{name} needs a time zone")
    return value


def siwe_parse(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly (line by line, fields in the standard's order)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) < 8:
        raise SiweParseError("message too short")
    header = _HEADER.match(lines[0])
    if not header:
        raise SiweParseError("first line is not a Sign-In with Ethereum header")
    address = lines[1]
    if not _ADDRESS.match(address):
        raise SiweParseError("second line is not an Ethereum address")
    if not is_checksum_address(address):
        raise SiweParseError("the address must be EIP-55 checksummed")
    if lines[2] != "":
        raise SiweParseError("expected a blank line after the address")
    index = 3
    statement = None
    if lines[index] != "":
        statement = lines[index]
        index += 1
        if index >= len(lines) or lines[index] != "":
            raise SiweParseError("expected a blank line after the statement")
    index += 1
    fields: dict[str, str] = {}
    resources: list[str] = []
    order = [
        "URI",
        "Version",
        "Chain ID",
        "Nonce",
        "Issued At",
        "Expiration Time",
        "Not Before",
        "Request ID",
    ]
    required = {"URI", "Version", "Chain ID", "Nonce", "Issued At"}
    position = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line == "Resources:":
            resources = [r[2:] for r in lines[index:] if r.startswith("- ")]
            if len(resources) != len(lines[index:]):
                raise SiweParseError("malformed resources list")
            break
        tag, sep, value = line.partition(": ")
        if not sep or tag not in order[position:]:
            raise SiweParseError(f"unexpected line {line[:40]!r}")
        position = order.index(tag) + 1
        fields[tag] = value
    missing = required - fields.keys()
    if missing:
        raise SiweParseError(f"missing {', '.join(sorted(missing))}")
    chain_id = ascii_int(fields["Chain ID"])  # "²" passed isdigit() and made int() raise: a 500
    if chain_id is None:
        raise SiweParseError("Chain ID must be an integer")
    if not _NONCE.match(fields["Nonce"]):
        raise SiweParseError("Nonce must be 8+ alphanumeric characters")
    return SiweMessage(
        scheme=header.group("scheme"),
        domain=header.group("domain"),
        address=address,
        statement=statement,
        uri=fields["URI"],
        version=fields["Version"],
        chain_id=chain_id,
        nonce=fields["Nonce"],
        issued_at=_parse_time(fields["Issued At"], "Issued At"),
        expiration_time=_parse_time(fields["Expiration Time"], "Expiration Time")
        if "Expiration Time" in fields
        else None,
        not_before=_parse_time(fields["Not Before"], "Not Before") if "Not Before" in fields else None,
        request_id=fields.get("Request ID"),
        resources=tuple(resources),
    )


def siwe_chain_ids() -> list[int]:
    return [int(c) for c in settings.SIWE_CHAIN_IDS]


# --- services ----------------------------------------------------------------------------------------


def siwe_nonce_issue(*, user: User | None = None, request: HttpRequest | None = None) -> SiweNonce:
    """A fresh nonce for one signature. ``user`` set: it can only link a wallet to that user."""
    throttle_hit("siwe:ip", client_ip(request))
    now = timezone.now()
    return SiweNonce.objects.create(
        nonce=secrets.token_hex(16),
        user=user,
        expires_at=now + timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS),
    )


def siwe_template(*, nonce: SiweNonce, address: str | None, chain_id: int | None, statement: str) -> dict:
    """What a client needs to build the message (and, given an address, the message itself)."""
    now = timezone.now().replace(microsecond=0)
    domain = settings.SIWE_DOMAIN
    chain = chain_id or siwe_chain_ids()[0]
    body: dict = {
        "nonce": nonce.nonce,
        "domain": domain,
        "uri": f"https://{domain}",
        "version": "1",
        "chain_ids": siwe_chain_ids(),
        "statement": statement,
        "issued_at": _rfc3339(now),
        "expiration_time": _rfc3339(nonce.expires_at.replace(microsecond=0)),
        "message": None,
    }
    if address and _ADDRESS.match(address):
        body["message"] = SiweMessage(
            domain=domain,
            address=to_checksum_address(address),
            statement=statement,
            uri=body["uri"],
            version="1",
            chain_id=chain,
            nonce=nonce.nonce,
            issued_at=now,
            expiration_time=nonce.expires_at.replace(microsecond=0),
        ).text()
    return body


def siwe_verify(*, message: str, signature: str, user: User | None) -> str:
    """Check a signed EIP-4361 message and return the signer's address (lowercase).

    Order: parse → domain → version and chain → times → nonce consumed (single use; the UPDATE
    commits on its own, so a failing signature still burns it) → signature recovery. ``user`` is the
    signed-in user for a wallet link (the nonce must have been issued to them), None for sign-in."""
    try:
        parsed = siwe_parse(message)
    except SiweParseError as exc:
        raise ApplicationError(
            ErrorCode.SIWE_INVALID, f"Not a valid Sign-In with Ethereum message: {exc}."
        ) from None
    if parsed.domain.lower() != settings.SIWE_DOMAIN.lower():
        raise ApplicationError(
            ErrorCode.SIWE_DOMAIN_MISMATCH,
            "The message was written for another site.",
            {"expected": settings.SIWE_DOMAIN},
        )
    if parsed.version != "1" or parsed.chain_id not in siwe_chain_ids():
        raise ApplicationError(
            ErrorCode.SIWE_INVALID, "Unsupported version or chain.", {"chain_ids": siwe_chain_ids()}
        )
    now = timezone.now()
    if parsed.issued_at > now + CLOCK_SKEW:
        raise ApplicationError(ErrorCode.SIWE_INVALID, "The message is issued in the future.")
    if parsed.issued_at < now - timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS) - CLOCK_SKEW:
        raise ApplicationError(ErrorCode.SIWE_EXPIRED, "The message is too old. Sign a new one.")
    if parsed.expiration_time is not None and parsed.expiration_time <= now:
        raise ApplicationError(ErrorCode.SIWE_EXPIRED, "The message has expired. Sign a new one.")
    if parsed.not_before is not None and parsed.not_before > now + CLOCK_SKEW:
        raise ApplicationError(ErrorCode.SIWE_INVALID, "The message is not valid yet.")
    nonces = SiweNonce.objects.filter(nonce=parsed.nonce, used_at__isnull=True, expires_at__gt=now)
    nonces = nonces.filter(user=user) if user is not None else nonces.filter(user__isnull=True)
    if nonces.update(used_at=now) != 1:
        raise ApplicationError(ErrorCode.SIWE_NONCE_INVALID, "The nonce is unknown, expired or already used.")
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # eth-account raises several types for malformed signatures
        raise ApplicationError(ErrorCode.SIWE_INVALID, "The signature is malformed.") from None
    if signer.lower() != parsed.address.lower():
        raise ApplicationError(ErrorCode.SIWE_INVALID, "The signature is not from the message's address.")
    return parsed.address.lower()


def siwe_sign_in(
    *,
    message: str,
    signature: str,
    otp_code: str | None = None,
    device: str = "",
    request: HttpRequest | None = None,
) -> dict[str, str]:
    """Sign a wallet in, creating a wallet-only account (no email, no password) on first use."""
    throttle_hit("siwe:ip", client_ip(request))
    address = siwe_verify(message=message, signature=signature, user=None)
    user = User.objects.filter(wallet_address=address).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User(
                    wallet_address=address, email=wallet_placeholder_email(address), email_verified_at=None
                )
                user.set_unusable_password()
                user.save()
                security_event_record(
                    user=user, kind=SecurityEvent.Kind.SIGNUP, request=request, method="siwe"
                )
        except IntegrityError:  # the same wallet's first sign-in, twice at once
            user = User.objects.get(wallet_address=address)
    if user.is_staff:
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "This account cannot sign in here.")
    if user.is_locked:
        raise ApplicationError(ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts. Try again later.")
    return sign_in_complete(user=user, request=request, method="siwe", otp_code=otp_code, device=device)


def wallet_link(*, user: User, message: str, signature: str, request: HttpRequest | None = None) -> User:
    """Link the signing wallet to the signed-in account (a signed proof with a nonce issued to this
    user). Side effects: WALLET_LINKED event, 24-hour withdrawal lock, notice email."""
    throttle_hit("siwe:ip", client_ip(request))
    address = siwe_verify(message=message, signature=signature, user=user)
    if user.wallet_address == address:
        return user
    if User.objects.filter(wallet_address=address).exclude(pk=user.pk).exists():
        raise ApplicationError(ErrorCode.WALLET_IN_USE, "This wallet is linked to another account.")
    with transaction.atomic():
        previous = user.wallet_address
        user.wallet_address = address
        try:
            with transaction.atomic():
                user.save(update_fields=["wallet_address"])
        except IntegrityError:
            raise ApplicationError(
                ErrorCode.WALLET_IN_USE, "This wallet is linked to another account."
            ) from None
        security_event_record(
            user=user,
            kind=SecurityEvent.Kind.WALLET_LINKED,
            request=request,
            address=address,
            replaced=previous,
        )
        security_change_mark(user=user)
        email_send_on_commit(
            to=user.email if user.email_verified else None,
            template="security_change",
            context={"change": f"Wallet {address} was linked to your account", "at": timezone.now()},
        )
    return user
