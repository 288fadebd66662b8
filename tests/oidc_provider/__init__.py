"""A tiny OpenID Connect provider (django-oauth-toolkit) that the SSO tests run in a second process.

It stands in for the company identity provider: a real authorize/token/userinfo/JWKS endpoint
set signing RS256 ID tokens, with a `groups` claim that Resync maps onto its roles. Run it with
`python -m tests.oidc_provider <command>`; it needs OIDC_PROVIDER_DATA_DIR (its SQLite file and
the RSA key `signing-key.pem` live there). Never part of Resync itself.
"""
