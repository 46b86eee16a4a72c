"""Pseudonymised customer and terminal ids: a keyed HMAC, the same in batch and in serving.

An id maps to a positive int64 (the first 63 bits of HMAC-SHA256(key, kind:id)): compact and
fast to group and join on, useless without the key. Customers and terminals live in separate
namespaces, so equal raw ids do not collide.
"""

from __future__ import annotations

import hmac
import logging
import warnings

import numpy as np
import polars as pl

KEY_ENV = "FRAUD_PSEUDONYM_KEY"
DEVELOPMENT_KEY = "development-only-pseudonym-key-do-not-use-in-production"
_MASK = (1 << 63) - 1
_DENSE_MIN_SPAN = 1 << 20  # ids spread wider than this and 4x the rows: hash join

log = logging.getLogger(__name__)
_warned = False


class DevelopmentKeyWarning(UserWarning):
    """The pseudonymisation key is the public development default."""


def key_from_env() -> bytes:
    from fraud_assets.settings import secret_settings

    key = secret_settings().pseudonym_key
    if key is not None:
        return key.get_secret_value().encode()
    message = (
        f"{KEY_ENV} is not set: pseudonymising ids with the PUBLIC DEVELOPMENT KEY. Anyone can "
        f"reverse these pseudonyms. Set {KEY_ENV} to a secret before processing real card data."
    )
    global _warned
    if not _warned:  # loud, but once per process rather than once per batch
        warnings.warn(message, DevelopmentKeyWarning, stacklevel=2)
        log.warning(message)
        _warned = True
    return DEVELOPMENT_KEY.encode()


class Pseudonymizer:
    # Ids remembered per kind: a range of daily batches sees the same cards again and again.
    CACHE_LIMIT = 2_000_000

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else key_from_env()
        self._known: dict[str, dict[int, int]] = {}

    def one(self, kind: str, raw_id: int) -> int:
        # hmac.digest: one C call, about twice as fast as hmac.new(...).digest().
        digest = hmac.digest(self._key, f"{kind}:{raw_id}".encode(), "sha256")
        return int.from_bytes(digest[:8], "big") & _MASK

    def _remembered(self, kind: str, raw_id: int) -> int:
        known = self._known.setdefault(kind, {})
        pseudonym = known.get(raw_id)
        if pseudonym is None:
            pseudonym = self.one(kind, raw_id)
            if len(known) < self.CACHE_LIMIT:
                known[raw_id] = pseudonym
        return pseudonym

    def column(self, values: pl.Series, kind: str) -> pl.Series:
        """Pseudonymise a column, hashing each distinct id once (a batch repeats ids a lot, and
        the batches of a range share most of their ids)."""
        distinct = values.unique().drop_nulls()
        hashed = np.fromiter(
            (self._remembered(kind, int(v)) for v in distinct),
            dtype=np.int64,
            count=len(distinct),
        )
        if values.null_count() == 0 and len(distinct):
            raw = values.to_numpy()
            low, high = int(raw.min()), int(raw.max())
            if high - low < max(_DENSE_MIN_SPAN, 4 * len(raw)):
                # Ids are usually small numbers: a lookup table beats a hash join several times.
                table = np.zeros(high - low + 1, dtype=np.int64)
                table[distinct.to_numpy() - low] = hashed
                return pl.Series(values.name, table[raw - low])
        mapping = pl.DataFrame({"raw": distinct, "pseudonym": hashed})
        return (
            values.to_frame("raw")
            .join(mapping, on="raw", how="left", maintain_order="left")["pseudonym"]
            .alias(values.name)
        )
