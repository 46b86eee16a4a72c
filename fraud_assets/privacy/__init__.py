"""Pseudonymised customer and terminal ids, the same in batch and in serving."""

from fraud_assets.privacy.pseudonyms import (
    DEVELOPMENT_KEY,
    KEY_ENV,
    DevelopmentKeyWarning,
    Pseudonymizer,
    key_from_env,
)

__all__ = ["DEVELOPMENT_KEY", "KEY_ENV", "DevelopmentKeyWarning", "Pseudonymizer", "key_from_env"]
