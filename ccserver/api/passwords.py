"""Password hashing with the standard library's memory-hard scrypt.

Hashes are self-describing (``scrypt$n$r$p$salt$hash``, base64) so the cost can be raised later
and old hashes still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: 2**14 * 8 * 128 bytes = 16 MiB per hash: costly for a GPU farm, ~50 ms for us.
N, R, P = 2**14, 8, 1
MAX_PASSWORD_BYTES = 1024


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P)
    return "$".join(["scrypt", str(N), str(R), str(P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)



def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode()[:MAX_PASSWORD_BYTES], salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=32)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


#: A hash of nothing in particular, verified when the user does not exist so that a log-in
#: attempt takes as long for an unknown user as for a wrong password.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
