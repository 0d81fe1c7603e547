"""Encryption at rest for secrets the platform must be able to read back (API-key HMAC secrets)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(material: str) -> Fernet:
    # A dedicated key in production; locally derived from SECRET_KEY so a fresh checkout works.
    digest = hashlib.sha256(("xbit-secrets:" + material).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _key_material() -> str:
    return settings.SECRETS_ENCRYPTION_KEY or settings.SECRET_KEY


def encrypt(plaintext: str) -> str:
    return _fernet(_key_material()).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(_key_material()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("secret cannot be decrypted with the configured key") from None


def mask(secret: str, keep: int = 4) -> str:
    return "*" * max(0, len(secret) - keep) + secret[-keep:] if secret else ""
