"""OIDC sign-in that maps the identity provider's groups/roles claim onto Resync's roles."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from resync_site.lib.env import env_list
from resync_site.models import ExternalIdentity
from resync_site.roles import Role
from resync_site.services import user_set_roles

logger = logging.getLogger(__name__)


def role_map() -> dict[str, str]:
    """`OIDC_ROLE_MAP="ops-team=operator,batch-leads=supervisor"`; Resync's own role names always map to themselves."""
    mapping = {role.value: role.value for role in Role}
    for pair in env_list("OIDC_ROLE_MAP"):
        claim_value, _, role = pair.partition("=")
        if role.strip() in mapping:
            mapping[claim_value.strip()] = role.strip()
        else:
            # A typo here silently takes a team's access away: say so in the log at every sign-in.
            logger.warning("OIDC_ROLE_MAP entry %r names no Resync role (roles: %s)", pair, ", ".join(Role.values))
    return mapping


def roles_from_claims(claims: dict[str, Any]) -> set[str]:
    raw = claims.get(getattr(settings, "OIDC_ROLES_CLAIM", "groups"), [])
    values = [raw] if isinstance(raw, str) else list(raw or [])
    mapping = role_map()
    return {mapping[str(value)] for value in values if str(value) in mapping}


def _issuer() -> str:
    # The token endpoint identifies the provider well enough for linking accounts.
    return str(settings.OIDC_OP_TOKEN_ENDPOINT)[:255]


class RoleMappingOIDCBackend(OIDCAuthenticationBackend):
    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        subject = str(claims.get("sub") or "")
        if not subject:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(external_identities__issuer=_issuer(),
                                             external_identities__subject=subject[:255])

    def get_username(self, claims: dict[str, Any]) -> str:
        # A readable name in the audit trail and the admin; the library's email hash only when the
        # name is missing or already taken by another account.
        preferred = str(claims.get("preferred_username") or "").strip()[:150]
        if preferred and not self.UserModel.objects.filter(username__iexact=preferred).exists():
            return preferred
        return super().get_username(claims)

    def create_user(self, claims: dict[str, Any]) -> Any:
        subject = str(claims.get("sub") or "")[:255]
        if not subject:
            raise SuspiciousOperation("the identity provider sent no 'sub' claim")
        user = super().create_user(claims)
        ExternalIdentity.objects.create(user=user, issuer=_issuer(), subject=subject)
        user.first_name = str(claims.get("given_name", ""))[:150]
        user.last_name = str(claims.get("family_name", ""))[:150]
        user.save(update_fields=["first_name", "last_name"])
        user_set_roles(user=user, roles=roles_from_claims(claims), reason="OIDC sign-in (new user)")
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        # The identity provider is the source of truth for roles at every sign-in.
        user_set_roles(user=user, roles=roles_from_claims(claims), reason="OIDC sign-in")
        return user
