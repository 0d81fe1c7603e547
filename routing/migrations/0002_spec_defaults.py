"""Spec 01 / 10 defaults: the global row, and the launch whitelist (BTC, ETH)."""

from django.db import migrations

from routing.defaults import GLOBAL_DEFAULTS, LAUNCH_WHITELIST


def seed(apps, schema_editor):
    RoutingConfig = apps.get_model("routing", "RoutingConfig")
    # only the fields this migration's model has (later migrations add and seed their own)
    fields = {f.name for f in RoutingConfig._meta.get_fields()}
    RoutingConfig.objects.get_or_create(
        asset="*", defaults={k: v for k, v in GLOBAL_DEFAULTS.items() if k in fields}
    )
    for asset in LAUNCH_WHITELIST:
        RoutingConfig.objects.get_or_create(asset=asset, defaults={"internalization_enabled": True})


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
