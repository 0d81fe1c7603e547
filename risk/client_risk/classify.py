"""The client-group classifier: from a client's markouts to A (always Hyperliquid), B (internal) or
HYBRID (the size rules), with a minimum sample, hysteresis and a reason a person can read.

:func:`classify` is the rule, pure; :func:`client_groups_classify` runs it over every client with
metrics and writes the changes through routing's store (a manual override stands). It runs while the
groups' mode is SHADOW or LIVE (the markout loop, once a minute) or on demand
(``manage.py client_groups_classify``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from risk.client_risk.models import ClientMetrics
from routing.client_groups import client_group_assign, client_group_config
from routing.decision import ClientGroup
from routing.models import ClientGroupAssignment, ClientGroupConfig


@dataclass(frozen=True, slots=True)
class Rules:
    horizon_s: int
    min_fills: int
    toxic_bp: Decimal
    benign_bp: Decimal
    hysteresis_bp: Decimal

    @classmethod
    def of(cls, config: ClientGroupConfig) -> Rules:
        return cls(
            int(config.horizon_s),
            int(config.min_fills),
            Decimal(config.toxic_bp),
            Decimal(config.benign_bp),
            Decimal(config.hysteresis_bp),
        )


def _fresh(markout: Decimal, rules: Rules) -> ClientGroup:
    if markout >= rules.toxic_bp:
        return ClientGroup.A
    if markout <= rules.benign_bp:
        return ClientGroup.B
    return ClientGroup.HYBRID


def classify(
    *, markout_bp: Decimal | None, measured: int, current: ClientGroup, rules: Rules
) -> tuple[ClientGroup, str]:
    """The group for a client whose average markout at the rules' horizon is ``markout_bp`` over
    ``measured`` fills, and why. Below the minimum sample the client keeps its group. A client leaves A
    only below ``toxic − hysteresis`` and leaves B only above ``benign + hysteresis``."""
    figure = (
        f"{rules.horizon_s} s markout {markout_bp:+.1f} bp over {measured} fills"
        if markout_bp is not None
        else f"no {rules.horizon_s} s markout yet"
    )
    if markout_bp is None or measured < rules.min_fills:
        return current, f"{figure}: below the minimum sample of {rules.min_fills}, stays {current.value}"
    if current is ClientGroup.A and markout_bp >= rules.toxic_bp - rules.hysteresis_bp:
        return ClientGroup.A, f"{figure} ≥ {rules.toxic_bp - rules.hysteresis_bp} bp (A's exit level)"
    if current is ClientGroup.B and markout_bp <= rules.benign_bp + rules.hysteresis_bp:
        return ClientGroup.B, f"{figure} ≤ {rules.benign_bp + rules.hysteresis_bp} bp (B's exit level)"
    group = _fresh(markout_bp, rules)
    if group is ClientGroup.A:
        return group, f"{figure} ≥ {rules.toxic_bp} bp"
    if group is ClientGroup.B:
        return group, f"{figure} ≤ {rules.benign_bp} bp"
    return group, f"{figure}, between {rules.benign_bp} and {rules.toxic_bp} bp"


def client_groups_classify(*, force: bool = False) -> dict[str, int]:
    """Classify every client with metrics (nothing while the mode is OFF unless ``force``). Returns
    counts: clients looked at, groups changed, manual overrides left alone."""
    config = client_group_config()
    if config.mode == ClientGroupConfig.Mode.OFF and not force:
        return {"clients": 0, "changed": 0, "manual": 0}
    rules = Rules.of(config)
    column = f"mo_{rules.horizon_s}_bp"
    assigned = {
        row.user_id: row
        for row in ClientGroupAssignment.objects.all().only("user_id", "group", "source", "reason")
    }
    counts = {"clients": 0, "changed": 0, "manual": 0}
    for metrics in ClientMetrics.objects.all().order_by("user_id").iterator():
        counts["clients"] += 1
        row = assigned.get(metrics.user_id)
        if row is not None and row.source == ClientGroupAssignment.Source.MANUAL:
            counts["manual"] += 1
            continue
        current = ClientGroup(row.group) if row else ClientGroup.HYBRID
        group, reason = classify(
            markout_bp=getattr(metrics, column),
            measured=int(metrics.measured),  # computed at the configured horizon
            current=current,
            rules=rules,
        )
        if row is not None and group is current and row.reason == reason:
            continue
        counts["changed"] += client_group_assign(user_id=metrics.user_id, group=group, reason=reason)
    return counts
