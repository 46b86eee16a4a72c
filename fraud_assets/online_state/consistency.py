"""Online/offline consistency: replay a batch through the online computation and compare every
feature with the batch features (a Chronon-style consistency metric).

    check_batch(lake, batch_id, max_rows=20_000) -> Consistency

The online side starts from a copy of the state as it stood before the batch -- an in-process
store loaded with the state rows that precede the batch's first transaction -- and scores the
batch's transactions in (time, id) order, feeding each label once its time plus the label delay
has passed (the bank's feedback arrives within the delay). The batch side is the lake's
`features` rows of the batch. A feature matches when integers are equal and floats agree to a
relative 1e-9.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from fraud_assets.features.spec import FEATURE_COLUMNS, LABEL_DELAY_DAYS, SECONDS_PER_DAY
from fraud_assets.lake import CLEAN, FEATURES, Lake
from fraud_assets.online_state.publish import STATE_DAYS, apply_labels, labels_table
from fraud_assets.serving.online_features import InMemoryFeatureStore, Transaction

REL_TOL = 1e-9
_DELAY = LABEL_DELAY_DAYS * SECONDS_PER_DAY


@dataclass(frozen=True)
class Consistency:
    batch_id: str
    rows: int  # transactions compared
    matching_rows: int  # transactions whose every feature matched
    mismatches: dict[str, int] = field(default_factory=dict)  # column -> rows that differ
    examples: list[dict] = field(default_factory=list)  # a few differing values

    @property
    def match_rate(self) -> float:
        return self.matching_rows / self.rows if self.rows else 1.0

    @property
    def worst_columns(self) -> list[tuple[str, int]]:
        return sorted(((c, n) for c, n in self.mismatches.items() if n), key=lambda x: -x[1])


def check_batch(lake: Lake, batch_id: str, max_rows: int = 20_000) -> Consistency:
    batch = lake.read_batch(CLEAN, batch_id)
    if batch.height == 0:
        return Consistency(batch_id, 0, 0)
    batch = batch.sort("tx_time_seconds", "transaction_id").head(max_rows)
    start = int(batch["tx_time_seconds"].min())  # type: ignore[arg-type]
    first_day = batch["tx_datetime"].min().date()  # type: ignore[union-attr]
    last_day = batch["tx_datetime"].max().date()  # type: ignore[union-attr]
    history = lake.read_by_date(
        CLEAN, first_day - dt.timedelta(days=STATE_DAYS), last_day, exclude_batch=batch_id
    )
    # The labels the batch features read: the batch files', replaced by `fraud_labels`.
    labels = labels_table(lake, first_day - dt.timedelta(days=STATE_DAYS), last_day)
    store = InMemoryFeatureStore()
    if history.height:
        before = history.filter(pl.col("tx_time_seconds") < start)
        store.publish_snapshot(apply_labels(before, labels))
    online = _replay(store, apply_labels(batch, labels))
    offline = lake.read_batch(FEATURES, batch_id).select("transaction_id", *FEATURE_COLUMNS)
    return _compare(batch_id, online, offline)


def _replay(store: InMemoryFeatureStore, rows: pl.DataFrame) -> pl.DataFrame:
    records = rows.to_dicts()
    out: list[dict] = []
    labelled = 0
    for row in records:
        t = row["tx_time_seconds"]
        while labelled < len(records) and records[labelled]["tx_time_seconds"] + _DELAY <= t:
            done = records[labelled]
            store.record_label(done["transaction_id"], bool(done["tx_fraud"]))
            labelled += 1
        features = store.features_for(Transaction.from_mapping(row))
        out.append({"transaction_id": row["transaction_id"], **features})
    return pl.DataFrame(out)


def _compare(batch_id: str, online: pl.DataFrame, offline: pl.DataFrame) -> Consistency:
    joined = online.join(offline, on="transaction_id", how="left", suffix="_batch")
    bad_any = pl.lit(False)
    mismatches: dict[str, int] = {}
    examples: list[dict] = []
    for name in FEATURE_COLUMNS:
        a, b = pl.col(name).cast(pl.Float64), pl.col(f"{name}_batch").cast(pl.Float64)
        bad = b.is_null() | ((a - b).abs() > REL_TOL * pl.max_horizontal(a.abs(), b.abs()))
        flags = joined.select(bad.alias("bad"))["bad"]
        mismatches[name] = int(flags.sum())
        if mismatches[name] and len(examples) < 5:
            row = joined.filter(flags).row(0, named=True)
            examples.append(
                {
                    "transaction_id": row["transaction_id"],
                    "feature": name,
                    "online": row[name],
                    "batch": row[f"{name}_batch"],
                }
            )
        bad_any = bad_any | bad
    differing = int(joined.select(bad_any.alias("bad"))["bad"].sum())
    return Consistency(batch_id, joined.height, joined.height - differing, mismatches, examples)
