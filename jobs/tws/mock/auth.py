"""The mock's accounts. Synthetic credentials for a local test stand-in, never real ones."""

from __future__ import annotations

MOCK_USERNAME = "resync"
MOCK_PASSWORD = "resync-mock-password"  # noqa: S105 (the mock's published test account)
MOCK_API_KEY = "mock-api-key-0123456789"
READONLY_USERNAME = "viewer"
READONLY_PASSWORD = "viewer-mock-password"  # noqa: S105 (the mock's published read-only account)
READONLY_API_KEY = "mock-readonly-key-0123456789"

# user -> (password, may act)
USERS: dict[str, tuple[str, bool]] = {
    MOCK_USERNAME: (MOCK_PASSWORD, True),
    READONLY_USERNAME: (READONLY_PASSWORD, False),
}
API_KEYS: dict[str, str] = {MOCK_API_KEY: MOCK_USERNAME, READONLY_API_KEY: READONLY_USERNAME}
