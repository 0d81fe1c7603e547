from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):
    TradingConfig = apps.get_model("trading", "TradingConfig")
    FeeSchedule = apps.get_model("trading", "FeeSchedule")
    TradingConfig.objects.get_or_create(key="default")
    FeeSchedule.objects.get_or_create(
        route="INTERNAL",
        defaults={
            "taker_rate": Decimal("0.00045"),
            "maker_rate": Decimal("0.00015"),
            "markup_rate": Decimal(0),
        },
    )
    FeeSchedule.objects.get_or_create(
        route="HYPERLIQUID",
        defaults={
            "taker_rate": Decimal("0.00045"),
            "maker_rate": Decimal("0.00015"),
            "markup_rate": Decimal("0.0002"),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("trading", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
