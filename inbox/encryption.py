"""Encryption of secrets stored in the database (channel access tokens) with Fernet.

Keys come from `INBOX_ENCRYPTION_KEY`: a comma-separated list of Fernet keys where the first
encrypts and every one decrypts (MultiFernet), so a key is rotated by putting a new one first and
re-saving the tokens (`rotate`). When it is unset, a single key is derived from SECRET_KEY with
HKDF-SHA256, so a newcomer's install still encrypts; rotating SECRET_KEY then makes the stored
tokens unreadable, unless INBOX_ENCRYPTION_KEY is first set to the derived key, which
`SECRET_KEY=… python -m inbox.encryption` prints (it needs no app, so it runs with a key the
app now refuses).
Imports: cryptography, stdlib.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Fixed, public HKDF inputs: they separate this key from anything else derived from SECRET_KEY.
_HKDF_SALT = b"inbox.encryption.v1"
_HKDF_INFO = b"channel access tokens"


class DecryptionError(RuntimeError):
    """Stored ciphertext cannot be read with the configured keys (wrong or rotated-out key)."""


def derive_key(secret_key: str) -> bytes:
    """A Fernet key derived from SECRET_KEY (used when INBOX_ENCRYPTION_KEY is unset)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


def _fernet(config: Mapping[str, Any]) -> MultiFernet:
    configured = [k.strip() for k in config.get("INBOX_ENCRYPTION_KEY", "").split(",") if k.strip()]
    if configured:
        try:
            return MultiFernet([Fernet(key) for key in configured])
        except ValueError:
            # Do not echo the value: it is a secret.
            raise ValueError(
                "INBOX_ENCRYPTION_KEY must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each)"
            ) from None
    secret = config.get("SECRET_KEY")
    if not secret:
        raise ValueError("set INBOX_ENCRYPTION_KEY or SECRET_KEY to store access tokens")
    return MultiFernet([Fernet(derive_key(secret))])


def encrypt(config: Mapping[str, Any], plaintext: str) -> bytes:
    return _fernet(config).encrypt(plaintext.encode("utf-8"))


def decrypt(config: Mapping[str, Any], ciphertext: bytes) -> str:
    try:
        return _fernet(config).decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken:
        raise DecryptionError(
            "a stored token cannot be decrypted with the configured INBOX_ENCRYPTION_KEY; "
            "enter the channel's access token again"
        ) from None


def rotate(config: Mapping[str, Any], ciphertext: bytes) -> bytes:
    """Re-encrypt with the first configured key (after a new key was put first)."""
    try:
        return _fernet(config).rotate(bytes(ciphertext))
    except InvalidToken:
        raise DecryptionError("a stored token cannot be decrypted to rotate it") from None


if __name__ == "__main__":
    import os
    import sys

    if not os.environ.get("SECRET_KEY"):
        sys.exit("Set SECRET_KEY (the current one) to print the encryption key derived from it.")
    print(derive_key(os.environ["SECRET_KEY"]).decode())
