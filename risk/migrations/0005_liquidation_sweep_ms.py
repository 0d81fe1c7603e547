"""The liquidation sweep interval is in milliseconds (spec 10: 500–2,000 ms, default 1,000); it was a
whole number of seconds. Existing values are converted and clamped into the allowed range."""

import django.core.validators
from django.db import migrations, models


def seconds_to_ms(apps, schema_editor):
    RiskConfig = apps.get_model("risk", "RiskConfig")
    for row in RiskConfig.objects.all():
        row.liquidation_sweep_ms = min(2000, max(500, row.liquidation_sweep_ms * 1000))
        row.save(update_fields=["liquidation_sweep_ms"])


def ms_to_seconds(apps, schema_editor):
    RiskConfig = apps.get_model("risk", "RiskConfig")
    for row in RiskConfig.objects.all():
        row.liquidation_sweep_ms = max(1, round(row.liquidation_sweep_ms / 1000))
        row.save(update_fields=["liquidation_sweep_ms"])


class Migration(migrations.Migration):
    dependencies = [("risk", "0004_trigger_shadow_status")]

    operations = [
        migrations.RenameField("riskconfig", "liquidation_sweep_seconds", "liquidation_sweep_ms"),
        migrations.AlterField(
            model_name="riskconfig",
            name="liquidation_sweep_ms",
            field=models.PositiveIntegerField(
                default=1000,
                help_text="periodic safety sweep interval (spec 10: 500–2,000 ms)",
                validators=[
                    django.core.validators.MinValueValidator(500),
                    django.core.validators.MaxValueValidator(2000),
                ],
            ),
        ),
        migrations.RunPython(seconds_to_ms, ms_to_seconds),
        migrations.AddConstraint(
            model_name="riskconfig",
            constraint=models.CheckConstraint(
                name="risk_config_sweep_range",
                condition=models.Q(liquidation_sweep_ms__gte=500, liquidation_sweep_ms__lte=2000),
            ),
        ),
    ]
