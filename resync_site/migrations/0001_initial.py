from __future__ import annotations

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

ROLES = ("operator", "supervisor", "reviewer", "compliance", "admin")


def create_role_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    # Permissions are granted by resync_site.services.roles_sync after every migrate.


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UserPreference",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("language", models.CharField(blank=True, choices=[("pt-br", "Portuguese (Brazil)"), ("en", "English")], max_length=8, verbose_name="language")),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="preference", to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(create_role_groups, migrations.RunPython.noop),
    ]
