"""Org API keys: random, shown once, stored as SHA-256 (a leaked table leaks no key)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

PREFIX = "vx_"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly minted key: `secret` goes to the user once, the rest to the database."""

    secret: str
    prefix: str
    key_hash: str


def mint_api_key() -> NewApiKey:
    """A new key with 256 bits of randomness."""
    secret = PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(secret=secret, prefix=secret[:10], key_hash=hash_api_key(secret))


def hash_api_key(secret: str) -> str:
    """The stored form of a key. A plain hash suffices: the key itself is high-entropy."""
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(token: str) -> bool:
    """Whether a bearer token is an org API key rather than a JWT."""
    return token.startswith(PREFIX)
