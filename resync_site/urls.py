from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from resync_site import views

# The admin is the reviewers' and compliance officers' workplace: it always asks for a second factor.
admin.site.__class__ = OTPAdminSite
admin.site.site_header = "Resync"
admin.site.site_title = "Resync"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("account/signin/", views.SignInView.as_view(), name="signin"),
    path("account/signout/", auth_views.LogoutView.as_view(), name="signout"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/",
         auth_views.PasswordChangeDoneView.as_view(template_name="registration/password_change_done.html"),
         name="password_change_done"),
    path("account/2fa/", views.otp_setup, name="otp_setup"),
    path("account/2fa/backup-codes/", views.otp_backup_codes, name="otp_backup_codes"),
    path("account/language/", views.language, name="language"),
    path("admin/", admin.site.urls),
    path("chat/", include("chat.urls")),
    path("audit/", include("audit.urls")),
    path("", include("knowledge.urls")),
    path("", include("jobs.urls")),
    path("api/", include("chat.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

if settings.OIDC_ENABLED:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
