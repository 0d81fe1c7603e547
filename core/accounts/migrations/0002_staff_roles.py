"""Create the staff roles of spec 07 as groups with explicit permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from core.accounts.roles import ROLE_PERMISSIONS

    # permissions are normally created after all migrations; the groups need them now
    from django.apps import apps as global_apps

    create_permissions(global_apps.get_app_config("accounts"), verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=str(role))
        perms = list(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=sorted(codenames))
        )
        # permissions added by later migrations (0005: the client card's) are assigned there
        group.permissions.set(perms)


def drop_roles(apps, schema_editor):
    from core.accounts.roles import ROLE_PERMISSIONS

    apps.get_model("auth", "Group").objects.filter(name__in=[str(r) for r in ROLE_PERMISSIONS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, drop_roles)]
