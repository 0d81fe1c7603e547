"""Switch history for every path, not only the switches page. The owners' audited services (routing
page, risk config page, hedge page, ops API, the automatic mode switch…) write an audit row inside the
transaction of each change; this module listens to those rows and appends the matching
``SwitchChange`` (source DIRECT), so a rollback to an earlier time sees every change whichever page or
process made it. ``switch_set`` records its own rows and marks its keys while the owner writes, so a
change is never recorded twice."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from core.audit.models import AuditEntry
from core.errors import ApplicationError
from core.switches.models import SwitchChange
from routing.selectors import routing_snapshot_uncached
from xbit_admin.switches.adapters import routing_assets
from xbit_admin.switches.registry import REGISTRY, resolve, to_json

logger = logging.getLogger(__name__)

# keys whose change the running ``switch_set`` records itself
_recording: ContextVar[frozenset[str]] = ContextVar("switch_recording", default=frozenset())

# routing's global-row field → switch name (where they differ, the switch's spec 10 name wins)
ROUTING_GLOBAL_FIELDS = {
    "global_internalization_enabled": "global_internalization_enabled",
    "normal_threshold": "normal_threshold",
    "betting_threshold": "betting_threshold",
    "max_internal_order_notional": "max_internal_order_notional",
    "max_internal_exposure": "max_internal_exposure",
    "auto_switch_enabled": "auto_mode_switch",
}

Found = list[tuple[str, Any, Any]]  # (switch key, old, new)


@contextlib.contextmanager
def recording(key: str) -> Iterator[None]:
    """While ``switch_set`` writes ``key`` through its owner: the owner's audit row is not recorded again."""
    token = _recording.set(_recording.get() | {key})
    try:
        yield
    finally:
        _recording.reset(token)


def _fields(entry: AuditEntry, name_of: Callable[[str], str | None]) -> Found:
    before, after = entry.before or {}, entry.after or {}
    found: Found = []
    for field, new in after.items():
        name = name_of(field)
        if name is not None:
            found.append((name, before.get(field), new))
    return found


def _whitelist(entry: AuditEntry) -> Found:
    """A change of ``internalization_enabled`` (one asset, or the global default an asset inherits)
    changes the whitelist: compare the list with the row's old value against the list now."""
    field = "internalization_enabled"
    if field not in (entry.after or {}):
        return []

    now = routing_snapshot_uncached()
    then = now.with_value(entry.object_id, field, (entry.before or {}).get(field))
    assets = routing_assets()
    return [("internalization_whitelist", then.internalized(assets), now.internalized(assets))]


def changes_in(entry: AuditEntry) -> Found:
    """The switch changes an audit row describes (none for rows about anything else)."""
    action, target = entry.action, entry.object_id
    if action == "switches.core_set":
        return _fields(entry, lambda f: f if f in REGISTRY else None)
    if action == "routing.mode_switch":
        old, new = (entry.before or {}).get("mode"), (entry.after or {}).get("mode")
        return [(f"routing_mode:{target}", old, new)]
    if action == "routing.config_update":
        found = _whitelist(entry)
        if target == "*":
            found += _fields(entry, ROUTING_GLOBAL_FIELDS.get)
        return found
    if action == "risk.config_update":
        return _fields(entry, lambda f: f if f in REGISTRY and REGISTRY[f].owner == "risk" else None)
    if action == "hedge.mode_set":
        return _fields(entry, lambda f: "hedge_mode" if f == "hedge_mode" else None)
    if action == "hedge.config_update":
        return _fields(entry, lambda f: f"hedge_{f}" if f"hedge_{f}" in REGISTRY else None)
    if action == "wallets.chain_config.update":
        return _fields(
            entry, lambda f: f"withdrawals_enabled:{target}" if f == "withdrawals_enabled" else None
        )
    return []


def _normal(switch: Any, value: Any) -> Any:
    if value is None:
        return None
    try:
        return switch.clean(value)
    except ApplicationError:
        return to_json(value)


def on_audit_recorded(sender: Any, entry: AuditEntry, **kwargs: Any) -> None:
    skip = _recording.get()
    for key, old, new in changes_in(entry):
        if key in skip:
            continue
        try:
            switch, _scope = resolve(key)
        except ApplicationError:
            continue  # not a switch (a chain users cannot withdraw on, an unknown asset)
        old_n, new_n = _normal(switch, old), _normal(switch, new)
        if old_n == new_n:
            continue
        SwitchChange.objects.create(
            name=key,
            old_value=old_n,
            new_value=new_n,
            actor=entry.actor,
            reason=entry.reason or entry.action,
            source=SwitchChange.Source.DIRECT,
            at=entry.created_at,
        )
