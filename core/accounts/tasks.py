"""Celery tasks of the accounts app: thin, arguments in, safe to run twice (a second notice within the
hour is dropped by ``lockout.notice_due``)."""

from __future__ import annotations

from celery import shared_task

from core.accounts.lockout import lockout_notice_send


@shared_task(name="accounts.lockout_notice", ignore_result=True)
def lockout_notice_task(email: str, ip: str, seconds: int, at: str) -> None:
    """Email the owner of ``email`` that sign-ins from ``ip`` are paused, with the unlock link; nothing
    when there is no such account (the sign-in that locked the pair queued this either way)."""

    lockout_notice_send(email=email, ip=ip, seconds=seconds, at=at)
