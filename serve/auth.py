"""Optional API-key authentication of /v1/*: `Authorization: Bearer <key>`.

The key is read once, in the ingress replica, from a secret file or an environment variable (never
from the config itself, which Serve shows in its dashboard). Auth switched on without a readable key
stops the replica from starting instead of serving unprotected.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

from serve.config import AuthConfig

log = logging.getLogger(__name__)


def resolve_api_key(auth: AuthConfig) -> str | None:
    """The expected key, or None when auth is off. Raises ValueError when auth is on but no key is found."""
    if not auth.enabled:
        log.warning("API-key auth is off: /v1/* is open to anyone who can reach the service")
        return None
    if auth.api_key_file:
        try:
            key = Path(auth.api_key_file).read_text().strip()
        except OSError as e:
            raise ValueError(f"auth.api_key_file={auth.api_key_file!r} cannot be read: {e}") from e
        source = f"file {auth.api_key_file}"
    else:
        key = os.environ.get(auth.api_key_env, "").strip()
        source = f"env var {auth.api_key_env}"
    if not key:
        raise ValueError(f"auth.enabled=true but {source} gives no key; set it, or auth.enabled=false")
    return key


def key_matches(given: str, expected: str) -> bool:
    """Whether a bearer token is the expected key (constant-time comparison)."""
    return hmac.compare_digest(given.strip().encode(), expected.encode())
