from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("switches", "0002_append_only")]

    operations = [
        migrations.AlterField(
            model_name="switchchange",
            name="source",
            field=models.CharField(
                choices=[
                    ("SET", "Set"),
                    ("ROLLBACK", "Rollback"),
                    ("DEGRADATION", "Degradation level"),
                    ("CANARY", "Canary stage"),
                    ("DIRECT", "Changed on its own page, API or automatically"),
                ],
                default="SET",
                max_length=12,
            ),
        ),
    ]
