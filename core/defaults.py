"""Rows every deployment must have (configuration defaults, role groups, platform accounts).

Migrations create them once; transactional tests flush every table, so each app registers an
idempotent ``ensure`` function here and the test harness (and ``seed_demo``) re-runs them."""

from __future__ import annotations

from collections.abc import Callable

ENSURERS: list[Callable[[], None]] = []


def register(fn: Callable[[], None]) -> Callable[[], None]:
    if fn not in ENSURERS:
        ENSURERS.append(fn)
    return fn


def ensure_all() -> None:
    for fn in ENSURERS:
        fn()
