"""Feedback features: online (FeedbackState, as the scorer feeds it) = batch
(features.feedback), for any interleaving of transactions and labels, corrections and late
transactions included; and no label is used before the moment it became known."""

from __future__ import annotations

import datetime as dt
import tempfile

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.features.feedback import (
    FEEDBACK_FEATURES,
    batch_feedback_features,
    feedback_features,
    label_events,
)
from fraud_assets.features.spec import SECONDS_PER_DAY
from fraud_assets.serving.feedback_state import FeedbackState
from fraud_assets.serving.labels import LabelLog, read_label_log

HOUR = 3600

# An event is ("tx", card, terminal, step, late) or ("label", which earlier tx, fraud).
tx_event = st.tuples(
    st.just("tx"),
    st.integers(0, 3),  # card
    st.integers(0, 3),  # terminal
    st.integers(0, 30 * HOUR),  # how far the clock moves
    st.integers(0, 3 * SECONDS_PER_DAY),  # how late this transaction is (time guard: < 30 d)
)
label_event = st.tuples(st.just("label"), st.integers(0, 10_000), st.booleans())
events = st.lists(st.one_of(tx_event, tx_event, label_event), min_size=1, max_size=80)


def play(evts: list[tuple], state=None) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, int]]]:
    """Feed the events to the online state as the scorer does (a new FeedbackState unless one
    is given); return the transactions, the label events (with known_at = the data clock when
    recorded) and the online features."""
    state = FeedbackState() if state is None else state
    clock = 10 * SECONDS_PER_DAY
    txs: list[dict] = []
    labels: list[dict] = []
    online: list[dict[str, int]] = []
    for e in evts:
        if e[0] == "tx":
            _, card, terminal, step, late = e
            clock += step
            t = clock - late
            row = {"transaction_id": len(txs), "customer_id": card, "terminal_id": terminal,
                   "tx_time_seconds": t}  # fmt: skip
            txs.append(row)
            online.append(state.features_for(card, terminal, t))
        elif txs:
            _, which, fraud = e
            row = txs[which % len(txs)]
            state.record(row["transaction_id"], row["customer_id"], row["terminal_id"],
                         row["tx_time_seconds"], fraud, clock)  # fmt: skip
            labels.append({**row, "fraud": fraud, "known_at_seconds": clock})
    schema = {"transaction_id": pl.Int64, "customer_id": pl.Int64, "terminal_id": pl.Int64,
              "tx_time_seconds": pl.Int64}  # fmt: skip
    label_schema = schema | {"fraud": pl.Boolean, "known_at_seconds": pl.Int64}
    return pl.DataFrame(txs, schema=schema), pl.DataFrame(labels, schema=label_schema), online


@settings(max_examples=300, deadline=None)
@given(evts=events)
def test_online_equals_batch(evts) -> None:
    txs, labels, online = play(evts)
    if txs.height == 0:
        return
    batch = feedback_features(txs, labels)
    assert batch.columns == FEEDBACK_FEATURES
    assert batch.to_dicts() == online


@settings(max_examples=200, deadline=None)
@given(evts=events, extra=st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=10))
def test_no_label_is_used_before_it_is_known(evts, extra) -> None:
    """Adding labels known at or after a transaction's time never changes its features."""
    txs, labels, _ = play(evts)
    if txs.height == 0:
        return
    before = feedback_features(txs, labels)
    rows = txs.to_dicts()
    late = []
    for which, fraud in extra:
        row = rows[which % len(rows)]
        late.append(
            {**row, "fraud": fraud, "known_at_seconds": max(r["tx_time_seconds"] for r in rows)}
        )
    more = pl.concat([labels, pl.DataFrame(late, schema=labels.schema)]) if late else labels
    after = feedback_features(txs, more)
    newest = max(r["tx_time_seconds"] for r in rows)
    # Every transaction is at or before the newest time, so every added label is unknown to it.
    assert all(r["tx_time_seconds"] <= newest for r in rows)
    assert after.equals(before)


def test_a_correction_counts_from_when_it_is_known() -> None:
    txs = pl.DataFrame(
        {
            "transaction_id": [1, 2, 3],
            "customer_id": [7, 7, 7],
            "terminal_id": [5, 5, 5],
            "tx_time_seconds": [1000, 5000, 9000],
        }  # fmt: skip
    )
    labels = pl.DataFrame(
        {
            "transaction_id": [1, 1],
            "customer_id": [7, 7],
            "terminal_id": [5, 5],
            "tx_time_seconds": [1000, 1000],
            "fraud": [True, False],
            "known_at_seconds": [2000, 6000],
        }  # fmt: skip
    )
    out = feedback_features(txs, labels)
    # tx 1: nothing known yet; tx 2: the fraud verdict; tx 3: corrected to genuine.
    assert out["card_confirmed_fraud_1d"].to_list() == [0, 1, 0]
    assert out["terminal_confirmed_fraud_7d"].to_list() == [0, 1, 0]


ORIGIN = dt.datetime(2018, 4, 1)


@settings(max_examples=100, deadline=None)
@given(evts=events)
def test_the_batch_asset_path_equals_online(evts) -> None:
    """What the `feedback_features` asset computes -- the label log as written by the service
    (LabelLog, known_at with every record), read back, and the clean rows' times counted from
    the service's origin -- equals the online features for the same label sequence."""
    txs, labels, online = play(evts)
    if txs.height == 0:
        return
    with tempfile.TemporaryDirectory() as folder:
        log = LabelLog(folder)
        stamp = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for i, row in enumerate(labels.to_dicts()):
            when = ORIGIN + dt.timedelta(seconds=row["tx_time_seconds"])
            log.append({**row, "tx_datetime": when.isoformat(), "source": "desk:ana",
                        "labelled_at": (stamp + dt.timedelta(seconds=i)).isoformat()})  # fmt: skip
        log.append(
            {
                "transaction_id": 0,
                "customer_id": 0,
                "terminal_id": 0,
                "fraud": True,
                "tx_time_seconds": 0,
                "tx_datetime": ORIGIN.isoformat(),
                "source": "api",
                "labelled_at": (stamp + dt.timedelta(days=1)).isoformat(),
            }
        )  # no known_at
        events_ = label_events(read_label_log(folder))
    assert events_.height == labels.height
    clean = txs.with_columns(
        tx_datetime=pl.lit(ORIGIN) + pl.duration(seconds=pl.col("tx_time_seconds"))
    ).drop("tx_time_seconds")
    batch = batch_feedback_features(clean, events_, ORIGIN)
    assert batch["transaction_id"].to_list() == txs["transaction_id"].to_list()
    assert batch.select(FEEDBACK_FEATURES).to_dicts() == online


def test_an_in_process_service_gets_its_labels_back_at_start(tmp_path, monkeypatch) -> None:
    """Without Redis the feedback state is rebuilt from the label log when the service starts
    (build_scorer with warm start), so a restart forgets no decision."""
    from fraud_assets.serving.settings import ServiceSettings
    from fraud_assets.serving.wiring import build_scorer

    log = LabelLog(tmp_path / "labels")
    for i, fraud in ((1, True), (2, True), (2, False)):  # tx 2 corrected to genuine
        log.append({"transaction_id": i, "customer_id": 7, "terminal_id": 5,
                    "tx_time_seconds": 1000 * i, "tx_datetime": ORIGIN.isoformat(),
                    "fraud": fraud, "labelled_at": "2026-01-01T00:00:00+00:00",
                    "source": "desk:ana", "known_at_seconds": 3000})  # fmt: skip
    settings_ = ServiceSettings(label_log_dir=tmp_path / "labels", lake_url=str(tmp_path / "lk"),
                                mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db")  # fmt: skip
    lines: list[str] = []
    scorer = build_scorer(settings_, warm=True, emit=lines.append)
    assert scorer.feedback_state is not None
    assert scorer.feedback_state.features_for(7, 5, 3001)["card_confirmed_fraud_1d"] == 1
    assert scorer.feedback_state.features_for(7, 5, 3000)["card_confirmed_fraud_1d"] == 0
    assert "feedback state: 3 labels from the label log" in lines
