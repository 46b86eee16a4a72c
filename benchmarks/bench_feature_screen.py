"""Screening candidate features on the backtest before building them into every engine.

Each candidate is computed here in batch only, with plain Polars on the cached feature table of
`bench_backtest.py` (benchmarks/out/backtest/seed<N>), and added to the model inputs; the
backtest (the handbook's protocol, as `bench_backtest.py`) is run with it. Only a candidate that
helps is then defined in `features/spec.py` and built into the Polars and Spark engines and the
online stores (with parity tests). These screening definitions are close to, not exactly, what a
kept feature becomes (e.g. the screening run minimum is not cut at the window's start).

Candidates (for the transaction at t, card c, terminal m; d = 7-day label delay):
    card_prev_gap_days         days since c's previous transaction (30 when none in 30 days)
    card_terminal_seen         1 when c paid at m before (in the data), else 0
    terminal_nb_cards_{1,7}d   distinct cards at m in the last 1 / 7 days (no delay: no labels)
    customer_nb_terminals_{1,7}d  distinct terminals of c in the last 1 / 7 days
    terminal_avg_amount_7d, terminal_amount_ratio_7d   m's mean amount over 7 days, amount / it
    terminal_fraud_run_max_days   days since the last genuine row before m's newest known run
    terminal_run_min_amount    smallest amount of m's newest known fraud run (0 when none)
    terminal_run_max_amount    largest amount of that run
    terminal_run_min_ratio     smallest customer_amount_ratio_30d of that run (batch-only idea:
                               online it would need each fraud's ratio at its own time)
    terminal_run_min_ratio7    the same with the 7-day ratio
    terminal_run_frauds        number of frauds in that run
    cust_known_gen_avg_30d     mean amount of c's genuine transactions with time in
                               (t - 30 - d, t - d] (labels known, as the terminal windows; 0 when
                               none): the card's usual amount, not inflated by its frauds
    cust_known_gen_ratio_30d   tx_amount / cust_known_gen_avg_30d (0 when none)
    cust_delayed_ratio_30d     tx_amount / mean amount of all c's transactions in
                               (t - 30 - d, t - d]
    cust_median_ratio_30d      tx_amount / median amount of c's transactions in (t - 30, t]
    cust_prev_max_ratio_{7,14}d  largest amount of c's transactions in [t - w, t) (the current
                               second left out) over customer_avg_amount_30d (a compromised
                               card's earlier x 5 amounts); 0 when none
    cust_prev_outliers_{7,14}d   how many of those had customer_amount_ratio_30d > 3
    cph_*                      card-history candidates over the card's *earlier* rows in (time,
                               id) order with time in (t - w, t] (exact, as customer_prior_
                               outliers_7d: cph_out_7d_r3 equals it): counts, shares, maxima of
                               the earlier rows' own ratios, days since an outlier, a clean
                               (outliers left out) 30-day mean ratio; see `_card_history`

    .venv/bin/python benchmarks/bench_feature_screen.py --seeds 0 \
        --sets "terminal_run_min_amount;card_prev_gap_days" [--set k=v ...]

A set is a comma-separated list of candidates added to the model's inputs (`-name` drops a
shipped feature; write `--sets=-name,...` then); sets are separated by ';'.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_backtest  # noqa: E402

DAY = 86_400
D = 7 * DAY
R = 30 * DAY


def _run_max_days(f: pl.DataFrame) -> pl.Series:
    t, fraud = pl.col("tx_time_seconds"), pl.col("tx_fraud")
    rows = (
        f.select("terminal_id", "tx_time_seconds", "transaction_id", "tx_fraud")
        .with_row_index("_row")
        .sort("terminal_id", "tx_time_seconds", "transaction_id")
    )
    prev_t = t.shift(1).over("terminal_id")
    starts = fraud.cast(pl.Boolean) & ~fraud.shift(1).over("terminal_id").fill_null(0).cast(
        pl.Boolean
    )
    known = (
        rows.with_columns(_g=pl.when(starts).then(prev_t.fill_null(-(10**12))))
        .with_columns(_g=pl.when(starts).then(pl.col("_g")).forward_fill().over("terminal_id"))
        .with_columns(_g=pl.when(fraud == 1).then(pl.col("_g")))
        .group_by("terminal_id", "tx_time_seconds", maintain_order=True)
        .last()
        .select("terminal_id", pl.col("tx_time_seconds").alias("_known_t"), "_g")
        .sort("_known_t")
    )
    out = (
        rows.with_columns(_upto=t - D)
        .sort("_upto")
        .join_asof(
            known, left_on="_upto", right_on="_known_t", by="terminal_id", check_sortedness=False
        )
        .with_columns(
            _s=pl.when(pl.col("_g").is_not_null() & (pl.col("_known_t") > t - D - R))
            .then(t - pl.max_horizontal("_g", t - D - R))
            .otherwise(0)
        )
        .sort("_row")
    )
    return pl.Series("terminal_fraud_run_max_days", out["_s"].cast(pl.Int64).to_numpy() / DAY)


def _run_amounts(f: pl.DataFrame) -> pl.DataFrame:
    t, fraud = pl.col("tx_time_seconds"), pl.col("tx_fraud")
    cols = ["tx_amount", "customer_amount_ratio_30d", "customer_amount_ratio_7d"]
    rows = (
        f.select("terminal_id", "tx_time_seconds", "transaction_id", "tx_fraud", *cols)
        .with_row_index("_row")
        .sort("terminal_id", "tx_time_seconds", "transaction_id")
    )
    starts = fraud.cast(pl.Boolean) & ~fraud.shift(1).over("terminal_id").fill_null(0).cast(
        pl.Boolean
    )
    rows = rows.with_columns(_rid=starts.cast(pl.Int32).cum_sum().over("terminal_id"))
    run = ("terminal_id", "_rid")
    stats = {
        "_minamt": pl.col("tx_amount").cum_min().over(*run),
        "_maxamt": pl.col("tx_amount").cum_max().over(*run),
        "_minratio": pl.col("customer_amount_ratio_30d").cum_min().over(*run),
        "_minratio7": pl.col("customer_amount_ratio_7d").cum_min().over(*run),
        "_n": pl.col("tx_amount").cum_count().over(*run),
    }
    known = (
        rows.with_columns(**stats)
        .with_columns([pl.when(fraud == 1).then(pl.col(c)).alias(c) for c in stats])
        .group_by("terminal_id", "tx_time_seconds", maintain_order=True)
        .last()
        .select("terminal_id", pl.col("tx_time_seconds").alias("_known_t"), *stats)
        .sort("_known_t")
    )
    out = (
        rows.select("_row", "terminal_id", "tx_time_seconds")
        .with_columns(_upto=t - D)
        .sort("_upto")
        .join_asof(
            known, left_on="_upto", right_on="_known_t", by="terminal_id", check_sortedness=False
        )
        .sort("_row")
    )
    ok = (pl.col("_known_t") > t - D - R) & pl.col("_n").is_not_null()
    return out.select(
        terminal_run_min_amount=pl.when(ok).then(pl.col("_minamt")).otherwise(0.0),
        terminal_run_max_amount=pl.when(ok).then(pl.col("_maxamt")).otherwise(0.0),
        terminal_run_min_ratio=pl.when(ok).then(pl.col("_minratio")).otherwise(0.0),
        terminal_run_min_ratio7=pl.when(ok).then(pl.col("_minratio7")).otherwise(0.0),
        terminal_run_frauds=pl.when(ok).then(pl.col("_n")).otherwise(0),
    )


def _window_sums(f: pl.DataFrame, key: str, values: list[str], lo: int, hi: int) -> pl.DataFrame:
    """transaction_id and the sums of `values` over key's rows with time in (t - lo, t - hi]."""
    cum = (
        f.select(key, "tx_time_seconds", "transaction_id", *values)
        .sort(key, "tx_time_seconds", "transaction_id")
        .with_columns([pl.col(v).cum_sum().over(key).alias(f"_c{v}") for v in values])
        .group_by(key, "tx_time_seconds", maintain_order=True)
        .last()
        .select(key, pl.col("tx_time_seconds").alias("_kt"), *[f"_c{v}" for v in values])
        .sort("_kt")
    )
    rows = f.select("transaction_id", key, "tx_time_seconds").with_columns(
        _hi=pl.col("tx_time_seconds") - hi, _lo=pl.col("tx_time_seconds") - lo
    )
    upto = rows.sort("_hi").join_asof(
        cum, left_on="_hi", right_on="_kt", by=key, check_sortedness=False
    )
    before = rows.sort("_lo").join_asof(
        cum, left_on="_lo", right_on="_kt", by=key, check_sortedness=False
    )
    both = upto.select("transaction_id", *[f"_c{v}" for v in values]).join(
        before.select("transaction_id", *[f"_c{v}" for v in values]),
        on="transaction_id",
        suffix="_lo",
    )
    return both.select(
        "transaction_id",
        *[
            (pl.col(f"_c{v}").fill_null(0) - pl.col(f"_c{v}_lo").fill_null(0)).alias(v)
            for v in values
        ],
    )


def _rolling(f: pl.DataFrame, key: str, period: str, aggs: list, closed: str = "right"):
    """transaction_id and `aggs` over each row's rolling window of its `key` (time windows on
    tx_datetime, rows of the same second all inside). Matched to the rows by position: joining
    on an aggregated `transaction_id.last()` gave rows of one second the same id, duplicating
    rows in the join (the first screening tables held 649 duplicates on seed 0)."""
    rows = f.select("transaction_id", key, "tx_time_seconds", _dt=pl.col("tx_datetime")).sort(
        key, "tx_time_seconds", "transaction_id"
    )
    rows = rows.join(f.drop(key, "tx_time_seconds", strict=False), on="transaction_id")
    rows = rows.sort(key, "tx_time_seconds", "transaction_id")
    out = rows.rolling("_dt", period=period, group_by=key, closed=closed).agg(aggs)
    assert out[key].equals(rows[key]) and out["_dt"].equals(rows["_dt"])
    return pl.concat([rows.select("transaction_id"), out.drop(key, "_dt")], how="horizontal")


def _card_amounts(f: pl.DataFrame) -> pl.DataFrame:
    """The card-side amount candidates (docstring), by transaction_id."""
    genuine = (1 - pl.col("tx_fraud")).cast(pl.Float64)
    g = f.with_columns(_g=genuine, _ga=pl.col("tx_amount") * genuine, _one=pl.lit(1.0))
    sums = _window_sums(g, "customer_id", ["_g", "_ga", "_one", "tx_amount"], D + R, D)
    avg = pl.when(pl.col("_g") > 0).then(pl.col("_ga") / pl.col("_g")).otherwise(0.0)
    out = f.select("transaction_id", "tx_amount").join(
        sums.select(
            "transaction_id",
            cust_known_gen_avg_30d=avg,
            _delayed=pl.when(pl.col("_one") > 0).then(pl.col("tx_amount") / pl.col("_one")),
        ),
        on="transaction_id",
    )
    out = out.with_columns(
        cust_known_gen_ratio_30d=pl.when(pl.col("cust_known_gen_avg_30d") > 0)
        .then(pl.col("tx_amount") / pl.col("cust_known_gen_avg_30d"))
        .otherwise(0.0),
        cust_delayed_ratio_30d=(pl.col("tx_amount") / pl.col("_delayed")).fill_null(0.0),
    )
    hi = f.select(
        "transaction_id",
        "customer_id",
        "tx_time_seconds",
        "tx_datetime",
        "tx_amount",
        _hi=(pl.col("customer_amount_ratio_30d") > 3).cast(pl.Int32),
    )
    med = _rolling(hi, "customer_id", "30d", [pl.col("tx_amount").median().alias("_median")])
    out = out.join(med, on="transaction_id").with_columns(
        cust_median_ratio_30d=pl.col("tx_amount") / pl.col("_median")
    )
    for w in (7, 14):
        # closed="left": the window [t - w, t), the current second left out (a batch-only
        # approximation of "earlier rows": rows in the same second are left out too).
        aggs = [
            pl.col("tx_amount").max().alias(f"_max{w}"),
            pl.col("_hi").sum().alias(f"cust_prev_outliers_{w}d"),
        ]
        out = out.join(_rolling(hi, "customer_id", f"{w}d", aggs, "left"), on="transaction_id")
    return out.join(
        f.select("transaction_id", "customer_avg_amount_30d"), on="transaction_id"
    ).select(
        "transaction_id",
        "cust_known_gen_avg_30d",
        "cust_known_gen_ratio_30d",
        "cust_delayed_ratio_30d",
        "cust_median_ratio_30d",
        *[
            (pl.col(f"_max{w}").fill_null(0.0) / pl.col("customer_avg_amount_30d")).alias(
                f"cust_prev_max_ratio_{w}d"
            )
            for w in (7, 14)
        ],
        *[pl.col(f"cust_prev_outliers_{w}d").fill_null(0) for w in (7, 14)],
    )


def _card_history(f: pl.DataFrame) -> pl.DataFrame:
    """The card-history candidates (online-computable from the card's earlier entries: each
    one's time, id, amount and own ratios as stored when it was scored), by transaction_id.

    "Earlier" = the card's transactions before this one in (time, id) order (rows of the same
    second with a smaller id included, the current row never), with time in (t - w, t]:
        cph_n_{w}d                     how many
        cph_out_{w}d_r{th}             how many had own customer_amount_ratio_30d > th
        cph_out7_{w}d_r{th}            how many had own customer_amount_ratio_7d > th
        cph_share_{w}d_r{th}           cph_out / cph_n (0 when none)
        cph_max_{w}d, cph_max7_{w}d    largest own ratio_30d / ratio_7d (0 when none)
        cph_since_out_r{th}            days since the most recent earlier outlier (ratio_30d >
                                       th), 30 when none in (t - 30, t]
        cph_first_out_14d_r3           days since the oldest earlier outlier in (t - 14, t]
                                       (0 when none): a compromise lasts 14 days
        cph_clean_ratio_30d_r{th}      tx_amount / mean amount of the earlier rows in (t-30, t]
                                       whose own ratio_30d <= th (customer_amount_ratio_30d
                                       when none)
        cph_clean_z_30d_r3             (tx_amount - that mean) / their std (0 when < 2 rows)
    """
    import numpy as np

    s = f.select(
        "transaction_id",
        "customer_id",
        "tx_time_seconds",
        "tx_amount",
        "customer_amount_ratio_30d",
        "customer_amount_ratio_7d",
    ).sort("customer_id", "tx_time_seconds", "transaction_id")
    cust = s["customer_id"].rank("dense").cast(pl.Int64).to_numpy()
    t = s["tx_time_seconds"].cast(pl.Int64).to_numpy()
    amt = s["tx_amount"].cast(pl.Float64).to_numpy()
    r30 = s["customer_amount_ratio_30d"].cast(pl.Float64).to_numpy()
    r7 = s["customer_amount_ratio_7d"].cast(pl.Float64).to_numpy()
    n = len(t)
    key = cust * (1 << 32) + t  # sorted, as rows are sorted by (customer, time, id)
    assert np.all(np.diff(key) >= 0)
    idx = np.arange(n)

    def start(w_days: int) -> np.ndarray:
        # first row of the same card with time > t - w
        return np.searchsorted(key, key - w_days * DAY, side="right")

    def prefix(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])

    def window_sum(x: np.ndarray, st: np.ndarray) -> np.ndarray:
        c = prefix(x)
        return c[idx] - c[st]  # rows st .. i-1

    def window_max(x: np.ndarray, st: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        k = 1
        while True:
            j = idx - k
            ok = j >= st
            if not ok.any():
                break
            out = np.where(ok, np.maximum(out, x[np.clip(j, 0, None)]), out)
            k += 1
        return out

    cols: dict[str, np.ndarray] = {}
    starts = {w: start(w) for w in (3, 7, 14, 30)}
    for w in (3, 7, 14):
        st = starts[w]
        cnt = idx - st
        cols[f"cph_n_{w}d"] = cnt.astype(np.float64)
        for th in (2.0, 2.5, 3.0, 4.0):
            tag = f"{th:g}".replace(".", "")
            o = window_sum((r30 > th).astype(np.float64), st)
            cols[f"cph_out_{w}d_r{tag}"] = o
            cols[f"cph_out7_{w}d_r{tag}"] = window_sum((r7 > th).astype(np.float64), st)
            cols[f"cph_share_{w}d_r{tag}"] = np.where(cnt > 0, o / np.maximum(cnt, 1), 0.0)
        cols[f"cph_max_{w}d"] = window_max(r30, st)
        cols[f"cph_max7_{w}d"] = window_max(r7, st)
    # days since the most recent earlier outlier
    for th in (2.5, 3.0):
        tag = f"{th:g}".replace(".", "")
        flag = r30 > th
        last = np.where(flag, idx, -1)
        last = np.maximum.accumulate(last)  # last outlier at or before i
        prev = np.concatenate([[-1], last[:-1]])  # strictly before i
        ok = (prev >= 0) & (prev >= starts[30])  # same card, time > t - 30d
        gap = np.where(ok, (t - t[np.clip(prev, 0, None)]) / DAY, 30.0)
        cols[f"cph_since_out_r{tag}"] = np.minimum(gap, 30.0)
    # days since the oldest earlier outlier in (t - 14d, t]
    flag = r30 > 3.0
    nxt = np.where(flag, idx, n)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]  # first outlier at or after position
    first = nxt[starts[14]]
    ok = first < idx
    cols["cph_first_out_14d_r3"] = np.where(ok, (t - t[np.clip(first, 0, n - 1)]) / DAY, 0.0)
    # the card's clean mean: earlier rows in (t - 30d, t] not outliers themselves
    st = starts[30]
    for th in (2.0, 3.0):
        tag = f"{th:g}".replace(".", "")
        clean = (r30 <= th).astype(np.float64)
        cn = window_sum(clean, st)
        cs = window_sum(clean * amt, st)
        mean = np.where(cn > 0, cs / np.maximum(cn, 1), np.nan)
        cols[f"cph_clean_ratio_30d_r{tag}"] = np.where(cn > 0, amt / mean, r30)
        if th == 3.0:
            cq = window_sum(clean * amt * amt, st)
            var = np.where(cn > 1, (cq - cs * cs / np.maximum(cn, 1)) / np.maximum(cn - 1, 1), 0)
            sd = np.sqrt(np.clip(var, 0, None))
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (amt - mean) / sd
            cols["cph_clean_z_30d_r3"] = np.where((cn > 1) & (sd > 0), z, 0.0)
    return pl.concat([s.select("transaction_id"), pl.DataFrame(cols)], how="horizontal")


def candidates(features: pl.DataFrame) -> pl.DataFrame:
    f = features.sort("tx_time_seconds", "transaction_id")
    f = f.join(_card_amounts(f), on="transaction_id", how="left")
    f = f.join(_card_history(f), on="transaction_id", how="left")
    t = pl.col("tx_time_seconds")
    f = f.with_columns(terminal_fraud_run_max_days=_run_max_days(f))
    f = pl.concat([f, _run_amounts(f)], how="horizontal")
    gap = (t - t.shift(1).over("customer_id")).fill_null(R).clip(upper_bound=R)
    f = f.with_columns(
        card_prev_gap_days=gap / DAY,
        card_terminal_seen=(
            pl.col("transaction_id").cum_count().over("customer_id", "terminal_id") > 1
        ).cast(pl.Int8),
    )
    for w in (1, 7):
        term = _rolling(
            f,
            "terminal_id",
            f"{w}d",
            [
                pl.col("customer_id").n_unique().alias(f"terminal_nb_cards_{w}d"),
                pl.col("tx_amount").mean().alias(f"terminal_avg_amount_{w}d"),
            ],
        )
        card = _rolling(
            f,
            "customer_id",
            f"{w}d",
            [pl.col("terminal_id").n_unique().alias(f"customer_nb_terminals_{w}d")],
        )
        f = f.join(term, on="transaction_id", how="left").join(
            card, on="transaction_id", how="left"
        )
    f = f.with_columns(
        terminal_amount_ratio_7d=pl.col("tx_amount") / pl.col("terminal_avg_amount_7d")
    )
    if f["transaction_id"].n_unique() != f.height or f.height != features.height:
        raise AssertionError("candidates must keep one row per transaction")
    return f


def main() -> None:
    from fraud_assets.features import spec
    from fraud_assets.modeling.backtest import backtest, mean_and_spread, mean_of
    from fraud_assets.modeling.training import TrainingConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sets", required=True)
    parser.add_argument("--train-days", type=int, default=28)
    parser.add_argument("--set", nargs="*", default=[], help="TrainingConfig overrides k=v")
    args = parser.parse_args()
    overrides = {k: bench_backtest._parse(v) for k, v in (i.split("=", 1) for i in args.set)}
    shipped = tuple(spec.FEATURE_COLUMNS)
    tables = {}
    for seed in args.seeds:
        cached = bench_backtest.OUT / f"seed{seed}" / "candidates2.parquet"
        if not cached.exists():
            candidates(bench_backtest.feature_table(seed)).write_parquet(cached)
        tables[seed] = pl.read_parquet(cached)
    shown = ("auc_roc", "average_precision", "card_precision_at_100")
    for chosen in args.sets.split(";"):
        names = [c for c in chosen.split(",") if c]
        dropped = {c[1:] for c in names if c.startswith("-")}
        added = [c for c in names if not c.startswith("-") and c not in shipped]
        for c in added:  # the config accepts only spec's columns: screening extends them here
            if c not in spec.FEATURE_COLUMNS:
                spec.FEATURE_COLUMNS.append(c)
        inputs = tuple(c for c in shipped if c not in dropped) + tuple(added)
        means = []
        for seed in args.seeds:
            config = TrainingConfig(features=inputs, **overrides)
            cpu = time.process_time()
            folds = backtest(
                tables[seed], args.train_days, 7, bench_backtest.TEST_START, 7, 4, config
            )
            cpu = time.process_time() - cpu
            means.append(mean_of(folds))
            print(
                json.dumps(
                    {"set": chosen or "shipped", "seed": seed, "cpu": round(cpu, 1)}
                    | {k: round(means[-1][k], 4) for k in (*shown, "recall_scenario_2")}
                ),
                flush=True,
            )
        if len(args.seeds) > 1:
            summary = mean_and_spread(means)
            print(json.dumps({"set": chosen, "seeds": args.seeds} | {k: summary[k] for k in shown}))


if __name__ == "__main__":
    main()
