"""Online features equal the batch features, transaction by transaction, for both stores.

The batch side is `compute_features` over the whole clean table; the online side replays every
clean transaction in (time, id) order through a store, feeding each label back once the replay
clock has passed its time plus the label delay (the bank's feedback arrives within the delay).
Redis tests use the real server on 127.0.0.1:6379 under a unique key prefix, removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from fraud_assets.batch.pipeline import clean_into_lake
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import (
    FEATURE_COLUMNS,
    LABEL_DELAY_DAYS,
    SECONDS_PER_DAY,
)
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.online_state.publish import STATE_DAYS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.online_features import (
    InMemoryFeatureStore,
    OnlineFeatureStore,
    RedisFeatureStore,
    Transaction,
)
from tests.support import HAND_ORIGIN, SMALL, hand_rows, months_of_cards_and_frauds, write_days

DAY = SECONDS_PER_DAY
DELAY = LABEL_DELAY_DAYS * DAY
REL_TOL = 1e-9
SIM_DAYS = 10
SNAPSHOT_DAYS = 6
ORIGIN = HAND_ORIGIN


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def redis_client() -> Iterator[object]:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=10)
    client.ping()  # the CI machine runs Redis: fail loudly rather than skip when it is down
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[..., OnlineFeatureStore]]:
    """Builds stores of the parametrised kind; Redis ones live under a unique prefix."""
    made: list[RedisFeatureStore] = []

    def build(**options: int) -> OnlineFeatureStore:
        if request.param == "memory":
            return InMemoryFeatureStore(**options)
        client = request.getfixturevalue("redis_client")
        made.append(RedisFeatureStore(client, prefix=f"fraud-test:{uuid.uuid4().hex}:", **options))
        return made[-1]

    try:
        yield build
    finally:
        for redis_store in made:
            redis_store.clear()
            assert not list(redis_store.redis.scan_iter(match=redis_store.prefix + "*"))


@pytest.fixture
def store(make_store: Callable[..., OnlineFeatureStore]) -> OnlineFeatureStore:
    return make_store()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """SIM_DAYS simulated days (a few dirty rows), cleaned through the lake; batch features."""
    root: Path = tmp_path_factory.mktemp("online-parity")
    summary = write_days(root / "landing", days=SIM_DAYS, dirty=0.01, seed=5)
    lake = Lake(*filesystem_for(str(root / "lake")))
    config = CleaningConfig(origin_date=SMALL["start_date"])
    pseudonymizer = Pseudonymizer(b"test-key")
    cleans = [
        clean_into_lake(lake, root / "landing" / f"{b}.txt", b, pseudonymizer, config).clean
        for b in summary.batches
    ]
    clean = pl.concat(cleans)
    return clean, compute_features(clean)


# ---------------------------------------------------------------------------------- helpers


def replay(store: OnlineFeatureStore, clean: pl.DataFrame, batch_size: int = 1) -> pl.DataFrame:
    """Score `clean` in (time, id) order; each label is fed once time + delay has passed.

    With batch_size > 1, consecutive transactions go to `features_for_many` together (as the
    batch endpoint and the stream worker send them), never across a label that falls due.
    """
    rows = clean.sort("tx_time_seconds", "transaction_id").to_dicts()
    labelled = 0
    out: list[dict] = []
    chunk: list[dict] = []

    def flush() -> None:
        if batch_size == 1:
            computed = [store.features_for(row) for row in chunk]
        else:
            computed = store.features_for_many([Transaction.from_mapping(r) for r in chunk])
        for r, f in zip(chunk, computed, strict=True):
            out.append({"transaction_id": r["transaction_id"], **f})
        chunk.clear()

    for row in rows:
        t = row["tx_time_seconds"]
        if labelled < len(rows) and rows[labelled]["tx_time_seconds"] + DELAY <= t:
            flush()
        while labelled < len(rows) and rows[labelled]["tx_time_seconds"] + DELAY <= t:
            done = rows[labelled]
            store.record_label(done["transaction_id"], bool(done["tx_fraud"]))
            labelled += 1
        chunk.append(row)
        if len(chunk) >= batch_size:
            flush()
    flush()
    return pl.DataFrame(out)


def assert_parity(online: pl.DataFrame, batch: pl.DataFrame) -> None:
    joined = online.join(
        batch.select("transaction_id", *FEATURE_COLUMNS), on="transaction_id", suffix="_batch"
    )
    assert joined.height == online.height, "some online transactions have no batch features"
    problems = []
    for name in FEATURE_COLUMNS:
        a, b = pl.col(name), pl.col(f"{name}_batch")
        if batch.schema[name].is_integer():
            bad = a.cast(pl.Int64) != b.cast(pl.Int64)
        else:
            bad = (a - b).abs() > REL_TOL * pl.max_horizontal(a.abs(), b.abs())
        wrong = joined.filter(bad)
        if wrong.height:
            sample = wrong.select("transaction_id", name, f"{name}_batch").head(3).to_dicts()
            problems.append(f"{name}: {wrong.height} differ, e.g. {sample}")
    assert not problems, "\n".join(problems)


frame = hand_rows


def tx(tid: int, seconds: int, customer: int = 1, terminal: int = 1, amount: float = 10.0):
    return Transaction(
        tid, ORIGIN + dt.timedelta(seconds=seconds), customer, terminal, amount, seconds
    )


def batch_of(rows: list[tuple]) -> dict[int, dict]:
    return {r["transaction_id"]: r for r in compute_features(frame(rows)).iter_rows(named=True)}


# ---------------------------------------------------------------------------------- parity


@pytest.mark.slow
def test_simulated_days_replayed_online_match_batch(
    store: OnlineFeatureStore, simulated: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    clean, batch = simulated
    assert clean.height > 4000 and clean["tx_fraud"].sum() > 0
    assert_parity(replay(store, clean), batch)


@pytest.mark.slow
def test_simulated_days_replayed_in_batches_match_batch(
    store: OnlineFeatureStore, simulated: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """Batches of transactions (one Redis round trip each) give the same features."""
    clean, batch = simulated
    online = replay(store, clean, batch_size=64)
    assert online.height == clean.height
    assert_parity(online, batch)


def test_snapshot_then_replay_matches_batch(
    store: OnlineFeatureStore, simulated: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """A freshly started service loads the batch clean table and continues with full history."""
    clean, batch = simulated
    cut = SMALL["start_date"] + dt.timedelta(days=SNAPSHOT_DAYS)
    before = clean.filter(pl.col("tx_datetime").dt.date() < cut)
    after = clean.filter(pl.col("tx_datetime").dt.date() >= cut)
    store.publish_snapshot(before)
    store.publish_snapshot(before)  # idempotent: loading twice changes nothing
    # Labels of the snapshot days come with it; the replay feeds only those of its own rows.
    online = replay(store, after)
    assert online.height == after.height
    assert_parity(online, batch)


LONG_RUN_DAYS = 7.2  # a run begun > 4.8 h before the delay's edge: several frauds (6 h grid)


def synthetic_months(days: int = 80, n: int = 1500) -> pl.DataFrame:
    """Transactions on a 6-hour grid (window edges hit exactly, ties in one second)."""
    rng = random.Random(3)
    rows, tid = [], 0
    for _ in range(n):
        tid += rng.randint(1, 3)
        seconds = rng.randrange(0, days * 4) * 6 * 3600 + rng.choice([0, 0, 0, 1, 59])
        rows.append(
            (tid, seconds, rng.randrange(6), rng.randrange(4), rng.randint(1, 40000) / 100,
             int(rng.random() < 0.2))
        )  # fmt: skip
    return frame(rows)


@pytest.mark.parametrize("grace", [0, DAY])
def test_synthetic_months_with_exact_window_edges_and_pruning(
    make_store: Callable[..., OnlineFeatureStore], grace: int
) -> None:
    clean = synthetic_months()
    assert_parity(replay(make_store(late_grace_seconds=grace), clean), compute_features(clean))


def card_outliers(days: int = 40, n: int = 900) -> pl.DataFrame:
    """Few cards paying small amounts with one in ten far larger (an outlier against the card's
    30-day mean), on a 6-hour grid: the prior-outlier window's edge is hit exactly, and
    several transactions share a second."""
    rng = random.Random(11)
    rows = []
    for tid in range(1, n + 1):
        seconds = rng.randrange(0, days * 4) * 6 * 3600 + rng.choice([0, 0, 1])
        amount = rng.randint(100, 5000) / 100 * (20 if rng.random() < 0.1 else 1)
        rows.append((tid, seconds, rng.randrange(8), rng.randrange(5), amount, 0))
    return frame(rows)


@pytest.mark.parametrize("grace", [0, DAY])
def test_card_outliers_online_match_batch_with_exact_window_edges(
    make_store: Callable[..., OnlineFeatureStore], grace: int
) -> None:
    clean = card_outliers()
    batch = compute_features(clean)
    assert (batch["customer_prior_outliers_7d"] >= 2).sum() > 100  # the case is exercised
    assert_parity(replay(make_store(late_grace_seconds=grace), clean), batch)


def test_card_outliers_after_a_snapshot_match_batch(store: OnlineFeatureStore) -> None:
    """A started service takes each published transaction's outlier flag from the snapshot
    (computed over the rows given, as batch does), then flags new ones as it scores them."""
    clean = card_outliers()
    batch = compute_features(clean)
    cut = 25 * DAY
    store.publish_snapshot(clean.filter(pl.col("tx_time_seconds") < cut))
    after = clean.filter(pl.col("tx_time_seconds") >= cut)
    online = replay(store, after)
    first_week = online.filter(
        pl.col("transaction_id").is_in(
            after.filter(pl.col("tx_time_seconds") < cut + 7 * DAY)["transaction_id"].implode()
        )
    )
    assert (first_week["customer_prior_outliers_7d"] > 0).sum() > 20  # read from the snapshot
    assert_parity(online, batch)


def test_a_snapshot_of_the_state_days_gives_the_runs_ratios_of_the_whole_history(
    store: OnlineFeatureStore,
) -> None:
    """Each published entry keeps its own 30-day ratio computed over every row given, before
    the snapshot keeps only the terminal retention: the oldest frauds of a run need their cards'
    30 days before them (publish.STATE_DAYS reads that much of the lake)."""
    first = (STATE_DAYS + 5) * DAY
    rows = months_of_cards_and_frauds(days=STATE_DAYS + 15, first=first, seed=4)
    clean = frame(rows)
    batch = compute_features(clean)
    store.publish_snapshot(
        clean.filter(
            (pl.col("tx_time_seconds") < first)
            & (pl.col("tx_time_seconds") >= first - STATE_DAYS * DAY)
        )
    )
    online = replay(store, clean.filter(pl.col("tx_time_seconds") >= first))
    assert (online["terminal_fraud_run_min_ratio"] > 0).sum() > 50
    assert_parity(online, batch)


def test_a_retried_outlier_keeps_one_entry_and_its_flag(store: OnlineFeatureStore) -> None:
    for i in range(4):
        store.features_for(tx(i, i * 3600, customer=1, amount=10.0))
    store.features_for(tx(10, 5 * 3600, customer=1, amount=500.0))  # ratio 500/90 > 3
    again = store.features_for(tx(10, 5 * 3600, customer=1, amount=500.0))
    assert again["customer_nb_tx_1d"] == 5  # counted once
    assert again["customer_prior_outliers_7d"] == 0  # never itself
    later = store.features_for(tx(11, 6 * 3600, customer=1, amount=10.0))
    assert later["customer_nb_tx_1d"] == 6
    assert later["customer_prior_outliers_7d"] == 1
    # A retry after the card moved on is still scored as its first version, flag kept.
    store.features_for(tx(10, 5 * 3600, customer=1, amount=500.0))
    assert store.features_for(tx(12, 7 * 3600, customer=1))["customer_prior_outliers_7d"] == 1


def test_redis_state_from_before_the_outlier_flag_is_read_as_not_outliers(redis_client) -> None:
    """A card entry written by an earlier version ("<id>:<amount>", no flag) still counts in
    the card's windows, as no outlier."""
    store = RedisFeatureStore(redis_client, prefix=f"fraud-test:{uuid.uuid4().hex}:")
    try:
        store.features_for(tx(1, 0, customer=1, amount=10.0))
        redis_client.zadd(f"{store.prefix}cust:1", {f"{2:020d}:{400.0!r}": 60})
        f = store.features_for(tx(3, 120, customer=1, amount=10.0))
        assert (f["customer_nb_tx_1d"], f["customer_avg_amount_1d"]) == (3, 140.0)
        assert f["customer_prior_outliers_7d"] == 0
    finally:
        store.clear()


def test_history_is_pruned_to_the_retention(store: OnlineFeatureStore) -> None:
    for i in range(60):  # one a day for 60 days, one customer, one terminal
        store.features_for(tx(i, i * DAY, customer=1, terminal=1))
    newest = 59 * DAY
    if isinstance(store, RedisFeatureStore):
        r, p = store.redis, store.prefix
        customer = [int(s) for _, s in r.zrange(f"{p}cust:1", 0, -1, withscores=True)]
        terminal = [int(s) for _, s in r.zrange(f"{p}term:1:tx", 0, -1, withscores=True)]
    else:
        customer = [e[0] for e in store._customers[1]]
        terminal = [e[0] for e in store._terminal_tx[1]]
    assert min(customer) > newest - store.customer_retention
    assert min(terminal) > newest - store.terminal_retention
    assert len(customer) == 31 and len(terminal) == 38  # 30 / 37 days plus the one-day grace


# ---------------------------------------------------------------------------------- ordering


def test_out_of_order_arrival_within_one_second(store: OnlineFeatureStore) -> None:
    t = 3 * DAY
    rows = [(1, t - 100, 7, 1, 5.0, 0), (2, t, 7, 1, 10.0, 0), (3, t, 7, 1, 20.0, 0)]
    rows += [(4, t, 7, 1, 60.0, 0), (5, t + 1, 7, 1, 1.0, 0)]
    expected = batch_of(rows)
    store.features_for(tx(1, t - 100, 7, amount=5.0))
    # Ids 2, 3, 4 share one second and arrive as 4, 2, 3.
    early = store.features_for(tx(4, t, 7, amount=60.0))
    late_2 = store.features_for(tx(2, t, 7, amount=10.0))
    late_3 = store.features_for(tx(3, t, 7, amount=20.0))
    # Late arrivals get exactly their batch features: id 4, stored but ordered after them, is
    # not counted.
    for got, tid in ((late_2, 2), (late_3, 3)):
        assert got["customer_nb_tx_1d"] == expected[tid]["customer_nb_tx_1d"] == tid
        assert got["customer_avg_amount_1d"] == pytest.approx(
            expected[tid]["customer_avg_amount_1d"], rel=REL_TOL
        )
    # Id 4 was scored before 2 and 3 existed (documented: returned features are not revised).
    assert early["customer_nb_tx_1d"] == 2 and expected[4]["customer_nb_tx_1d"] == 4
    # The state is right afterwards: the next transaction counts everything.
    nxt = store.features_for(tx(5, t + 1, 7, amount=1.0))
    assert nxt["customer_nb_tx_1d"] == expected[5]["customer_nb_tx_1d"] == 5
    assert nxt["customer_avg_amount_1d"] == pytest.approx(96.0 / 5, rel=REL_TOL)


def test_an_earlier_transaction_arriving_late_is_counted_by_time(
    make_store: Callable[..., OnlineFeatureStore],
) -> None:
    store = make_store(max_skew_seconds=3 * DAY)  # the next transaction comes two days later
    rows = [
        (1, 10 * DAY, 3, 1, 10.0, 0),
        (2, 12 * DAY, 3, 1, 20.0, 0),
        (3, 11 * DAY, 3, 1, 40.0, 0),
    ]
    expected = batch_of(rows)
    store.features_for(tx(1, 10 * DAY, 3, amount=10.0))
    store.features_for(tx(2, 12 * DAY, 3, amount=20.0))
    late = store.features_for(tx(3, 11 * DAY, 3, amount=40.0))  # two days late
    for name in FEATURE_COLUMNS:
        assert late[name] == pytest.approx(expected[3][name], rel=REL_TOL), name
    assert late["customer_nb_tx_7d"] == 2  # #1 and itself, not the later #2


def test_a_batch_after_redis_lost_its_scripts_loads_them_again(
    make_store: Callable[..., OnlineFeatureStore], redis_client: object
) -> None:
    """A restarted Redis has no scripts; the next pipelined batch must still be scored once."""
    store, reference = make_store(), InMemoryFeatureStore()
    first = [tx(1, DAY, amount=10.0), tx(2, DAY + 60, amount=20.0)]
    assert store.features_for_many(first) == reference.features_for_many(first)
    if isinstance(store, RedisFeatureStore):
        redis_client.script_flush()  # what a restart does to the script cache
    second = [tx(3, DAY + 120, amount=30.0), tx(4, DAY + 180, amount=40.0)]
    got = store.features_for_many(second)
    assert got == reference.features_for_many(second)
    assert got[-1]["customer_nb_tx_1d"] == 4  # each transaction recorded exactly once


def test_retried_transaction_is_not_counted_twice(store: OnlineFeatureStore) -> None:
    first = store.features_for(tx(1, DAY, amount=10.0))
    again = store.features_for(tx(1, DAY, amount=10.0))
    assert first == again
    assert store.features_for(tx(2, DAY + 5, amount=30.0))["customer_nb_tx_1d"] == 2


# ---------------------------------------------------------------------------------- labels


def test_labels_younger_than_the_delay_are_never_used_and_can_be_corrected(
    make_store: Callable[..., OnlineFeatureStore],
) -> None:
    store = make_store(max_skew_seconds=2 * DELAY)  # jumps a label delay at a time
    t0 = 5 * DAY
    store.features_for(tx(1, t0, customer=1, terminal=9))
    store.record_label(1, fraud=True)  # early feedback: stored, not yet usable
    just_before = store.features_for(tx(2, t0 + DELAY - 1, customer=2, terminal=9))
    assert (just_before["terminal_nb_tx_1d"], just_before["terminal_risk_1d"]) == (0, 0.0)
    at_delay = store.features_for(tx(3, t0 + DELAY, customer=3, terminal=9))
    assert (at_delay["terminal_nb_tx_1d"], at_delay["terminal_risk_1d"]) == (1, 1.0)
    store.record_label(1, fraud=False)  # a chargeback reversed
    corrected = store.features_for(tx(4, t0 + DELAY, customer=4, terminal=9))
    assert (corrected["terminal_nb_tx_30d"], corrected["terminal_risk_30d"]) == (1, 0.0)
    # A label for a transaction the store never saw changes nothing.
    assert store.record_label(99, fraud=True) is None
    later = store.features_for(tx(5, t0 + DELAY + 10, customer=5, terminal=9))
    assert (later["terminal_nb_tx_1d"], later["terminal_risk_1d"]) == (1, 0.0)


def test_a_transaction_later_than_the_grace_is_scored_when_its_run_outlived_the_id_index(
    make_store: Callable[..., OnlineFeatureStore],
) -> None:
    """A fraud's version leaves the id index with the retention, while an untouched terminal
    keeps its entry until that terminal is used again. A transaction far later than the grace
    (allowed up to the customer retention) can reach such an entry in its run window: it is
    scored, the run's length counts it, and its amount, no longer held, is left out."""
    store = make_store(late_grace_seconds=0, max_skew_seconds=50 * DAY)
    store.features_for(tx(1, 0, customer=1, terminal=9, amount=3.0))
    store.record_label(1, fraud=True)
    store.features_for(tx(2, 40 * DAY, customer=2, terminal=8))  # the clock moves on...
    store.features_for(tx(4, 40 * DAY + 1, customer=2, terminal=8))  # ...and id 1 is pruned
    assert store.seen(1) is None
    late = store.features_for(tx(3, 11 * DAY, customer=3, terminal=9))
    assert late["terminal_fraud_run_days"] == 11.0
    assert late["terminal_fraud_run_min_amount"] == 0.0


# ---------------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("n", [64])
def test_concurrent_requests_for_one_card_lose_no_update(
    make_store: Callable[..., OnlineFeatureStore], n: int
) -> None:
    store = make_store(max_skew_seconds=2 * DELAY)  # jumps a label delay at the end
    t = 20 * DAY
    start = threading.Barrier(min(n, 16))

    def score(i: int) -> dict:
        if i < 16:
            start.wait(timeout=10)
        return store.features_for(tx(100 + i, t + i % 3, customer=42, terminal=7, amount=1.0))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(score, range(n)))
    assert all(1 <= r["customer_nb_tx_1d"] <= n for r in results)
    final = store.features_for(tx(10_000, t + DAY - 1, customer=42, terminal=8, amount=1.0))
    assert final["customer_nb_tx_1d"] == n + 1
    assert final["customer_avg_amount_1d"] == 1.0
    later = store.features_for(tx(10_001, t + DELAY + 5, customer=43, terminal=7))
    assert later["terminal_nb_tx_1d"] == n


# ---------------------------------------------------------------------------------- imports


def test_serving_never_imports_dagster() -> None:
    code = (
        "import sys, fraud_assets.serving.online_features\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_simulated_days_exercise_every_feature(simulated) -> None:
    """Parity on constant columns would prove nothing: every feature varies in this data, the
    terminal fraud runs included (issue 20's features)."""
    _, batch = simulated
    constant = [name for name in FEATURE_COLUMNS if batch[name].n_unique() < 2]
    assert not constant, constant
    assert (batch["terminal_fraud_run_days"] > 0).sum() > 10
    run_min = batch.filter(pl.col("terminal_fraud_run_min_amount") > 0)
    assert run_min["terminal_fraud_run_min_amount"].n_unique() > 5
    assert (batch["customer_prior_outliers_7d"] > 0).sum() > 10
    assert run_min["terminal_fraud_run_min_ratio"].n_unique() > 5
    # (the synthetic months, 20 % fraud on 4 terminals, hold many runs of several frauds)
    months = compute_features(synthetic_months())
    several = months.filter(pl.col("terminal_fraud_run_days") > LONG_RUN_DAYS)
    assert several.height > 50
    assert months["terminal_fraud_run_min_amount"].n_unique() > 50
