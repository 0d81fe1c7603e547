"""Indexes no query reads, dropped from the ledger's tables: single-column foreign-key indexes a
composite index already leads with, and the pattern-matching copies of the unique key indexes
(``unique=True`` becomes a constraint: core.db.unique_as_constraint renames the index each has)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.db import unique_as_constraint


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0006_tron_fee_limit_and_expiry"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="balancelog",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="balance_logs",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        unique_as_constraint(
            "wallets", "ledgeraccount", "key", models.CharField(max_length=160), "ledger_account_key_unique"
        ),
        migrations.AlterField(
            model_name="ledgeraccount",
            name="user",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_accounts",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        unique_as_constraint(
            "wallets", "ledgerbatch", "key", models.CharField(max_length=200), "ledger_batch_key_unique"
        ),
        unique_as_constraint(
            "wallets",
            "ledgertransfer",
            "idempotency_key",
            models.CharField(max_length=210),
            "ledger_transfer_key_unique",
        ),
    ]
