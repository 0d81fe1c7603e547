"""Writes for control switches (spec 10): set one switch, roll one back to its value at a time, and
the one-click degradation levels. Each goes through the owning app's audited service and appends a
``SwitchChange`` row in the same transaction; the owners' caches drop in every process on commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from core import live_config
from core.accounts.roles import perm
from core.errors import ApplicationError, ErrorCode
from core.switches import store
from core.switches.models import SwitchChange
from xbit_admin.switches.adapters import routing_assets
from xbit_admin.switches.history import recording
from xbit_admin.switches.registry import REGISTRY, Switch, display, resolve


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {display(self.old)} → {display(self.new)}"


@dataclass
class SwitchResult:
    changes: list[Change] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def message(self) -> str:
        parts = [str(c) for c in self.changes] or ["nothing changed"]
        if self.skipped:
            parts.append("skipped: " + "; ".join(self.skipped))
        return ". ".join(parts) + "."


def may_change(user: Any, switch: Switch) -> bool:
    """Staff with the switch's permission. ``None`` is the platform itself (auto-rollback)."""
    if user is None:
        return True
    return bool(getattr(user, "is_staff", False) and user.has_perm(perm(switch.permission)))


def _authorise(user: Any, switch: Switch) -> None:
    if not may_change(user, switch):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            f"Changing {switch.label} needs the {switch.permission} permission.",
            {"switch": switch.name},
        )


def switch_set(
    *,
    name: str,
    value: Any,
    acting_user: Any,
    reason: str,
    request: HttpRequest | None = None,
    source: str = SwitchChange.Source.SET,
) -> SwitchResult:
    """Set one switch (``name`` or ``name:scope``) through its owner's audited service. Setting the
    value already in force changes nothing and says so. Side effects: the owner's write + audit row,
    a ``SwitchChange`` row, the owner's cache dropped in every process on commit."""
    switch, scope = resolve(name)
    _authorise(acting_user, switch)
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    if not switch.is_available():
        raise ApplicationError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"{switch.label} cannot be changed now: its owner ({switch.owner}) does not answer.",
            {"switch": name},
        )
    new = switch.clean(value)
    key = switch.key(scope)
    with transaction.atomic():
        old = switch.read(scope)
        if old == new:
            return SwitchResult()
        with recording(key):
            switch.set(scope, new, acting_user, reason)
        SwitchChange.objects.create(
            name=key,
            old_value=old,
            new_value=new,
            actor=acting_user if getattr(acting_user, "is_authenticated", False) else None,
            reason=reason,
            source=source,
        )
    return SwitchResult(changes=[Change(key, old, new)])


def switch_value_at(key: str, when: datetime) -> tuple[bool, Any]:
    """(known, value) of a switch at ``when`` from its history: the last change at or before it, else
    the old value of the first change after it; unknown if it never changed (the value then is the
    current one)."""
    before = SwitchChange.objects.filter(name=key, at__lte=when).order_by("-at", "-id").first()
    if before is not None:
        return True, before.new_value
    after = SwitchChange.objects.filter(name=key, at__gt=when).order_by("at", "id").first()
    if after is not None:
        return True, after.old_value
    return False, None


def switch_rollback(
    *, name: str, to: datetime, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> SwitchResult:
    """Set a switch back to the value it had at ``to``, in one action (recorded as a ROLLBACK)."""
    switch, scope = resolve(name)
    _authorise(acting_user, switch)
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    known, value = switch_value_at(switch.key(scope), to)
    if not known:
        return SwitchResult(skipped=[f"{name} has not changed since then"])
    return switch_set(
        name=name,
        value=value,
        acting_user=acting_user,
        reason=f"rollback to {to.isoformat(timespec='seconds')}: {reason}",
        request=request,
        source=SwitchChange.Source.ROLLBACK,
    )


def switch_values_served(keys: list[str]) -> dict[str, Any]:
    """What this process serves for ``keys`` (``["*"]`` = every available switch), read through the same
    caches its own code reads. Answers the console's probe (``live_config.probe``)."""

    if keys == ["*"]:
        keys = [
            switch.key(scope)
            for switch in REGISTRY.values()
            if switch.is_available()
            for scope in switch.scopes()
        ]
    served: dict[str, Any] = {}
    for key in keys:
        try:
            switch, scope = resolve(key)
            served[key] = switch.read(scope)
        except ApplicationError:
            served[key] = None
    return served


def switches_applied(keys: list[str], *, wait_s: float = 0.5) -> dict[str, Any]:
    """Ask every running process what it serves for ``keys`` and compare with the values in force.
    Returns ``{"expected": {...}, "processes": [...answers with "stale": [keys]]}``."""

    live_config.reload_local()
    expected = switch_values_served(keys)
    answers = live_config.probe(list(expected), wait_s=wait_s)
    for answer in answers:
        answer["stale"] = sorted(k for k, v in expected.items() if answer["values"].get(k) != v)
    return {"expected": expected, "processes": answers}


# --- degradation levels ---------------------------------------------------------------------------

LEVELS: dict[int, tuple[str, str]] = {
    0: ("normal", "everything back to the values before degradation"),
    1: ("partial", "query, withdraw, open on HL, close"),
    2: ("read-only + limited", "query, withdraw, close at market"),
    3: ("maintenance", "nothing: the trader API answers 503 with the message"),
}


def degradation_targets(level: int) -> dict[str, Any]:
    """The switch values of a level (spec 10). ``routing_mode:*`` expands to every asset."""

    every_asset = routing_assets()
    if level == 1:
        return {
            "global_internalization_enabled": False,
            "hedge_mode": "SHADOW",
            **{f"routing_mode:{a}": "NORMAL_MODE" for a in every_asset},
        }
    if level == 2:
        return {
            "global_internalization_enabled": False,
            **{f"routing_mode:{a}": "HL_MODE" for a in every_asset},
            "api_mode": store.API_REDUCE_ONLY,
        }
    if level == 3:
        return {"api_mode": store.API_MAINTENANCE}
    return {}


def degradation_set(
    *, level: int, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> SwitchResult:
    """One action per level: set the level's switches (saving the values they replace the first time
    the platform leaves normal), restore the saved values of switches the new level does not touch,
    and say what changed. Level 0 restores everything saved. All or nothing (one transaction)."""
    if level not in LEVELS:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Degradation levels are 0–3.", {"field": "level"})
    if acting_user is not None and not (
        getattr(acting_user, "is_staff", False) and acting_user.has_perm(perm("manage_switches"))
    ):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, "Degradation levels need manage_switches.")
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    result = SwitchResult()
    label = f"degradation level {level} ({LEVELS[level][0]}): {reason}"
    with transaction.atomic():
        saved: dict[str, Any] = dict(store.core_value("degradation_saved") or {})
        targets = degradation_targets(level)
        for key in targets:
            if key in saved:
                continue
            switch, scope = resolve(key)
            if switch.is_available():
                saved[key] = switch.read(scope)
        wanted = {**{k: v for k, v in saved.items() if k not in targets}, **targets}
        for key, value in wanted.items():
            switch, _scope = resolve(key)
            if not switch.is_available():
                result.skipped.append(f"{key} unavailable")
                continue
            step = switch_set(
                name=key,
                value=value,
                acting_user=acting_user,
                reason=label,
                request=request,
                source=SwitchChange.Source.DEGRADATION,
            )
            result.changes.extend(step.changes)
        previous = store.core_value("degradation_level")
        store.core_value_set(
            name="degradation_saved", value={} if level == 0 else saved, acting_user=acting_user, reason=label
        )
        if previous != level:
            store.core_value_set(name="degradation_level", value=level, acting_user=acting_user, reason=label)
            SwitchChange.objects.create(
                name="degradation_level",
                old_value=previous,
                new_value=level,
                actor=acting_user if getattr(acting_user, "is_authenticated", False) else None,
                reason=reason,
                source=SwitchChange.Source.DEGRADATION,
            )
            result.changes.insert(0, Change("degradation_level", previous, level))
    return result
