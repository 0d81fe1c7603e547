"""Solana deposits and withdrawals count at finality: the adapter reports confirmations past the
finalized slot (0 until finalized), so the required number becomes 1 where it was still the old 32."""

from django.db import migrations


def finalized(apps, schema_editor):
    ChainConfig = apps.get_model("wallets", "ChainConfig")
    ChainConfig.objects.filter(chain="SOL", confirmations=32).update(confirmations=1)


def back(apps, schema_editor):
    ChainConfig = apps.get_model("wallets", "ChainConfig")
    ChainConfig.objects.filter(chain="SOL", confirmations=1).update(confirmations=32)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0004_evm_chains")]
    operations = [migrations.RunPython(finalized, back)]
