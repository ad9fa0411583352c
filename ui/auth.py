"""Optional password for the UI: a salted scrypt hash, compared in constant time.

The hash (from ``slm ui --set-password``) goes in ``SLM_UI_PASSWORD_HASH``; the
password itself is never stored. Format: ``scrypt:N:r:p:<salt hex>:<hash hex>``
(no ``$``, so it survives shell quoting and .env files).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password`` to put in ``SLM_UI_PASSWORD_HASH``."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=_MAXMEM)
    return f"scrypt:{_N}:{_R}:{_P}:{salt.hex()}:{digest.hex()}"


def is_valid_hash(stored: str) -> bool:
    """True when ``stored`` has the shape :func:`hash_password` produces."""
    return _parse(stored) is not None


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.strip().split(":")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return None
    # bounds keep a hostile config from making every login burn memory/CPU
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        return None
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a stored hash; False for a malformed hash."""
    parsed = _parse(stored)
    if parsed is None or not password:
        return False
    n, r, p, salt, digest = parsed
    try:
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest),
                                   maxmem=max(_MAXMEM, 256 * n * r))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest)
