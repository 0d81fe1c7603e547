"""Errors raised by the client."""

from __future__ import annotations

from typing import Any


class XbitError(Exception):
    """Base of every error the client raises."""


class XbitApiError(XbitError):
    """The API refused the request: its stable error body ``{"code", "message", "details"}``.

    ``code`` is one of the server's error codes (``INVALID_PRICE``, ``INSUFFICIENT_MARGIN``, …) so a
    program switches on it; a response without that body (a proxy's page) gets ``HTTP_<status>``."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None


class XbitTransportError(XbitError):
    """The request did not get an answer (connection refused, timeout, reset) after the retries."""


class XbitStreamError(XbitError):
    """The stream refused us for good (authentication failed, a bad subscription)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
