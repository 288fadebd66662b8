"""Pages of the site itself: home, health, metrics, and the account pages (sign-in, 2FA, language)."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_prometheus import exports

from audit.models import AuditAction
from audit.services import audit_record
from resync_site.health import readiness
from resync_site.services import backup_codes_regenerate, totp_enroll, totp_pending_device, user_set_language


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "alive"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    ready, checks = readiness()
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and secrets.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return HttpResponseForbidden("metrics: a valid bearer token or an allowed network is required\n")
    return exports.ExportToDjangoView(request)


class SignInView(auth_views.LoginView):
    template_name = "registration/signin.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(action=AuditAction.PASSWORD_CHANGED, request=self.request, target_type="user",
                     target_id=self.request.user.pk, target_label=self.request.user.get_username())
        return response


class TokenForm(forms.Form):
    token = forms.CharField(label=_("Code from your authenticator app"), max_length=8,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


@login_required
@never_cache
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Second-factor enrollment: scan the QR code, type a code, keep the backup codes."""
    enrolled = request.user.totpdevice_set.filter(confirmed=True).exists()
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = totp_enroll(user=request.user, token=form.cleaned_data["token"], request=request)
        if codes is None:
            form.add_error("token", _("That code is not right. Check the time on your phone and try again."))
        else:
            return render(request, "registration/otp_backup_codes.html", {"codes": codes})
    device = totp_pending_device(user=request.user)
    qr_svg = segno.make(device.config_url, error="m").svg_data_uri(scale=5)
    return render(request, "registration/otp_setup.html",
                  {"form": form, "qr_svg": qr_svg, "secret": _base32(device.bin_key), "enrolled": enrolled})


@login_required
@require_POST
def otp_backup_codes(request: HttpRequest) -> HttpResponse:
    if not request.user.is_verified():
        messages.error(request, _("Confirm your authenticator first: new backup codes need a verified session."))
        return redirect("otp_setup")
    codes = backup_codes_regenerate(user=request.user, request=request)
    return render(request, "registration/otp_backup_codes.html", {"codes": codes})


def _base32(key: bytes) -> str:
    import base64

    return base64.b32encode(key).decode().rstrip("=")


@login_required
@require_POST
def language(request: HttpRequest) -> HttpResponse:
    code = request.POST.get("language", "")
    if code not in dict(settings.LANGUAGES):
        messages.error(request, _("Unknown language."))
    else:
        user_set_language(user=request.user, language=code, request=request)
    next_url = request.POST.get("next") or "/"
    from django.utils.http import url_has_allowed_host_and_scheme

    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    response = redirect(next_url)
    if code in dict(settings.LANGUAGES):
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, samesite="Lax", secure=request.is_secure())
    return response
