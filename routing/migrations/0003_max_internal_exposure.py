"""Spec 10 ``max_internal_exposure``: per asset (null = the global value), 500,000 on the global row."""

from decimal import Decimal

from django.db import migrations, models
from django.db.models import Q


def seed(apps, schema_editor):
    RoutingConfig = apps.get_model("routing", "RoutingConfig")
    RoutingConfig.objects.filter(asset="*").update(max_internal_exposure=Decimal("500000"))


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_spec_defaults")]

    operations = [
        migrations.AddField(
            model_name="routingconfig",
            name="max_internal_exposure",
            field=models.DecimalField(blank=True, decimal_places=6, max_digits=28, null=True),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="routingconfig", name="routing_thresholds_positive"),
        migrations.RemoveConstraint(model_name="routingconfig", name="routing_global_row_complete"),
        migrations.AddConstraint(
            model_name="routingconfig",
            constraint=models.CheckConstraint(
                name="routing_thresholds_positive",
                condition=(Q(normal_threshold__isnull=True) | Q(normal_threshold__gt=0))
                & (Q(betting_threshold__isnull=True) | Q(betting_threshold__gt=0))
                & (Q(hl_mode_exposure_threshold__isnull=True) | Q(hl_mode_exposure_threshold__gt=0))
                & (
                    Q(betting_mode_exposure_threshold__isnull=True)
                    | Q(betting_mode_exposure_threshold__gte=0)
                )
                & (Q(max_internal_order_notional__isnull=True) | Q(max_internal_order_notional__gt=0))
                & (Q(max_internal_exposure__isnull=True) | Q(max_internal_exposure__gt=0))
                & (Q(hl_exit_factor__isnull=True) | Q(hl_exit_factor__gt=0, hl_exit_factor__lte=1))
                & (Q(betting_exit_factor__isnull=True) | Q(betting_exit_factor__gte=1)),
            ),
        ),
        migrations.AddConstraint(
            model_name="routingconfig",
            constraint=models.CheckConstraint(
                name="routing_global_row_complete",
                condition=~Q(asset="*")
                | Q(
                    routing_mode__isnull=False,
                    normal_threshold__isnull=False,
                    betting_threshold__isnull=False,
                    hl_mode_exposure_threshold__isnull=False,
                    betting_mode_exposure_threshold__isnull=False,
                    hl_exit_factor__isnull=False,
                    betting_exit_factor__isnull=False,
                    auto_switch_enabled__isnull=False,
                    internalization_enabled__isnull=False,
                    max_internal_order_notional__isnull=False,
                    max_internal_exposure__isnull=False,
                    global_internalization_enabled__isnull=False,
                    degraded__isnull=False,
                ),
            ),
        ),
    ]
