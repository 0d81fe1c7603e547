"""Indexes no query reads, dropped from the tables every order writes: single-column foreign-key
indexes a composite index already leads with, and the pattern-matching copy of the unique ``cloid``
index (``unique=True`` becomes a constraint: core.db.unique_as_constraint renames the index it has)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.db import unique_as_constraint


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0008_venue_outage_waits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="fill",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="fills",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        unique_as_constraint(
            "trading",
            "order",
            "cloid",
            models.CharField(blank=True, max_length=34, null=True),
            "order_cloid_unique",
        ),
        migrations.AlterField(
            model_name="order",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="orderevent",
            name="order",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="trading.order",
            ),
        ),
        migrations.AlterField(
            model_name="position",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="positions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
