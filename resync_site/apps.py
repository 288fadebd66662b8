from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ResyncSiteConfig(AppConfig):
    name = "resync_site"
    verbose_name = _("Accounts and roles")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from resync_site.services import roles_sync

        # Model permissions only exist after each app's post_migrate; re-grant them to the role
        # groups every time so a new model's permissions reach the right roles.
        post_migrate.connect(lambda **kwargs: roles_sync(), dispatch_uid="resync_roles_sync", weak=False)
