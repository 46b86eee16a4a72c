"""The restricted zone: the quarantine's raw lines, which still carry real card and terminal ids.

They live under their own prefix, `{root}/restricted/`, so access can be granted apart from the
pseudonymised tables (an S3 bucket policy or IAM condition on the prefix, HDFS or POSIX
permissions on the folder). With `FRAUD_QUARANTINE_KEY` set (a Fernet key: `fraud lake new-key`),
their files are also encrypted, with a key of their own, not the pseudonymisation key.
"""

from __future__ import annotations

from fraud_assets.settings import secret_settings

KEY_ENV = "FRAUD_QUARANTINE_KEY"
RESTRICTED = "restricted"


class RestrictedKeyError(RuntimeError):
    """The restricted zone's key is missing or not a Fernet key."""


def quarantine_key() -> bytes | None:
    """The restricted zone's key from the environment; None when encryption is off."""
    secret = secret_settings().quarantine_key
    key = secret.get_secret_value().strip() if secret is not None else ""
    return key.encode("ascii") if key else None


def _fernet(key: bytes):  # noqa: ANN202 - cryptography's Fernet
    from cryptography.fernet import Fernet

    try:
        return Fernet(key)
    except (ValueError, TypeError) as e:
        raise RestrictedKeyError(
            f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes); "
            "make one with `fraud lake new-key`"
        ) from e


def encrypt(data: bytes, key: bytes) -> bytes:
    return _fernet(key).encrypt(data)


def decrypt(token: bytes, key: bytes | None, path: str) -> bytes:
    from cryptography.fernet import InvalidToken

    if key is None:
        raise RestrictedKeyError(f"{path} is encrypted: set {KEY_ENV} to read it")
    try:
        return _fernet(key).decrypt(token)
    except InvalidToken as e:
        raise RestrictedKeyError(f"{path}: {KEY_ENV} is not the key it was written with") from e


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def env_key_set() -> bool:
    return quarantine_key() is not None
