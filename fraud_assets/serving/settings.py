"""The scoring service's settings: declared with every other FRAUD_* variable in
`fraud_assets.settings` (docs/settings.md lists them all)."""

from fraud_assets.settings import DEFAULT_ORIGIN, ServiceSettings, Settings

__all__ = ["DEFAULT_ORIGIN", "ServiceSettings", "Settings"]
