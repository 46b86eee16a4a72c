"""Backtest on the handbook's protocol, over several simulator seeds: mean and spread.

Protocol (issue 20): the simulator's reference run (5 000 customers, 10 000 terminals, 183 days
from 2018-04-01), four weekly test folds starting 2018-08-08, -15, -22 and -29, a 7-day label
delay, each fold's model trained on the days before its test week only (its labels end 7 days
before), cards known compromised (a fraud in the handbook's 7-day training window or found during
the delay) left out of each test day. Card precision@100 is the handbook's definition
(`metrics.CARD_PRECISION_DEFINITION`); the stricter variant is printed beside it.

Each seed's data is simulated, cleaned and featurised once (as one raw batch, through the
platform's own cleaning and Polars feature engine) into benchmarks/out/backtest/seed<N>, cached.

    .venv/bin/python benchmarks/bench_backtest.py [--seeds 0 1 2] [--train-days 28]
        [--features all|baseline|...] [--ceiling] [--json out.json]

`--ceiling` also prints, per fold, the best figures any model could reach with what the features
can see (`ceiling_metrics`): a scenario-2 fraud is *hidden* when no transaction of its terminal's
compromise run (the simulator's compromise windows, re-run from the same seed) is older than the
7-day label delay, so no known fraud of that run is in any terminal window, and its amount is at
most the scenario-1 limit (220); every other fraud is put above every genuine transaction. The
hidden frauds either keep the model's score (`ceil_model_*`) or are ranked at random among the
genuine transactions (`ceil_random_*`, the mean of five draws).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent / "out" / "backtest"
START = dt.date(2018, 4, 1)
TEST_START = dt.date(2018, 8, 8)
BATCH_ID = "2018-reference"
HANDBOOK = {"auc_roc": 0.879, "average_precision": 0.694, "card_precision_at_100": 0.305}
TARGET = {"auc_roc": 0.89, "average_precision": 0.75, "card_precision_at_100": 0.32}


def feature_table(seed: int) -> pl.DataFrame:
    """The reference run of `seed`, cleaned and featurised (cached as one Parquet file)."""
    from fraud_assets.batch.pipeline import clean_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.features.polars_engine import compute_features
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer
    from fraud_assets.rawdata.format import HEADER_LINE
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation

    cached = OUT / f"seed{seed}" / "features.parquet"
    if cached.exists():
        features = pl.read_parquet(cached)
        return features
    cached.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench-backtest-{seed}-"))
    try:
        params = SimulationParams(
            customers=5_000, terminals=10_000, days=183, start_date=START, seed=seed
        )
        write_simulation(params, *filesystem_for(str(work / "days")))
        raw = work / f"{BATCH_ID}.txt"
        with open(raw, "wb") as out:
            out.write(HEADER_LINE)
            for day in sorted((work / "days").glob("*.txt")):
                with open(day, "rb") as f:
                    f.readline()
                    shutil.copyfileobj(f, out, 16 << 20)
        lake = Lake(*filesystem_for(str(work / "lake")))
        config = CleaningConfig(origin_date=START)
        result = clean_into_lake(lake, str(raw), BATCH_ID, Pseudonymizer(b"bench"), config)
        features = compute_features(result.clean)  # what `fraud features` computes, in memory
    finally:
        shutil.rmtree(work, ignore_errors=True)
    features.write_parquet(cached)
    return features


def compromise_runs(seed: int) -> pl.DataFrame:
    """transaction_id, run_start_day of every transaction at a terminal inside a compromise run.

    The simulator's scenario 2 is re-run from the seed (same RNG stream, so the same ids): a
    terminal is compromised on the days of its windows; a run is a maximal stretch of consecutive
    compromised days (overlapping windows of one terminal join), `run_start_day` its first day
    index. Cached beside the features.
    """
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.generator import TransactionSimulator

    cached = OUT / f"seed{seed}" / "compromise_runs.parquet"
    if cached.exists():
        return pl.read_parquet(cached)
    params = SimulationParams(
        customers=5_000, terminals=10_000, days=183, start_date=START, seed=seed
    )
    run_start: dict[int, int] = {}  # terminal -> first day of its current run
    parts = []
    for day in TransactionSimulator(params).days():
        active = set(day.compromised_terminals.tolist())
        run_start = {t: run_start.get(t, day.day) for t in active}
        frame = day.frame.filter(pl.col("terminal_id").is_in(list(active)))
        parts.append(
            frame.select(
                "transaction_id",
                pl.col("terminal_id")
                .replace_strict(run_start, return_dtype=pl.Int64)
                .alias("run_start_day"),
                pl.col("terminal_id").alias("raw_terminal_id"),
            )
        )
    runs = pl.concat(parts)
    cached.parent.mkdir(parents=True, exist_ok=True)
    runs.write_parquet(cached)
    return runs


HIDDEN_AMOUNT_LIMIT = 220.0  # scenario 1: an amount above it is a fraud whatever the terminal


def hidden_frauds(features: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    """transaction_id, hidden: scenario-2 frauds no feature can tell from genuine transactions.

    Hidden: scenario 2, amount <= 220, and the first transaction of its terminal's compromise
    run is less than the label delay older (time > t - 7 days), so no fraud of that run is in a
    terminal window (they end at t - 7 days, inclusive).
    """
    from fraud_assets.features.spec import LABEL_DELAY_DAYS, SECONDS_PER_DAY

    tagged = features.select(
        "transaction_id", "tx_time_seconds", "tx_fraud_scenario", "tx_amount"
    ).join(runs, on="transaction_id", how="left")
    first = pl.col("tx_time_seconds").min().over("raw_terminal_id", "run_start_day")
    return tagged.select(
        "transaction_id",
        hidden=(
            (pl.col("tx_fraud_scenario") == 2)
            & (pl.col("tx_amount") <= HIDDEN_AMOUNT_LIMIT)
            & (first > pl.col("tx_time_seconds") - LABEL_DELAY_DAYS * SECONDS_PER_DAY)
        ).fill_null(False),
    )


def ceiling_metrics(scored: pl.DataFrame, draws: int = 5) -> dict[str, float]:
    """Best AUC / AP / card precision@100 on `scored` (test rows kept, with score and hidden).

    Every fraud that is not hidden gets a score above every other row. `ceil_model_*`: the hidden
    frauds and the genuine rows keep the model's scores. `ceil_random_*`: they get uniform random
    scores (a hidden fraud ranked at random among the genuine ones), mean of `draws` draws.
    """
    import numpy as np

    from fraud_assets.modeling.metrics import auc_roc, average_precision, card_precision_at_k

    y = scored["tx_fraud"].to_numpy()
    visible = (y == 1) & ~scored["hidden"].to_numpy()
    day = scored.select(pl.col("tx_datetime").dt.date()).to_series()
    card = scored["customer_id"]

    def figures(s: np.ndarray) -> tuple[float, float, float]:
        s = np.where(visible, 2.0 + s, s)  # above every probability, order kept
        return auc_roc(y, s), average_precision(y, s), card_precision_at_k(day, card, y, s)

    out = dict(
        zip(
            ("ceil_model_auc", "ceil_model_ap", "ceil_model_cp100"),
            figures(scored["score"].to_numpy()),
            strict=True,
        )
    )
    rng = np.random.default_rng(0)
    random = np.array([figures(rng.random(scored.height)) for _ in range(draws)]).mean(axis=0)
    out |= dict(
        zip(("ceil_random_auc", "ceil_random_ap", "ceil_random_cp100"), random, strict=True)
    )
    frauds = int(y.sum())
    out["hidden_share"] = float((scored["hidden"].to_numpy() & (y == 1)).sum() / frauds)
    return out


def run(
    seed: int,
    train_days: int,
    feature_set: str,
    known_days: int | None,
    ceiling: bool = False,
    **kw,
) -> dict:
    from fraud_assets.modeling.backtest import backtest, mean_of
    from fraud_assets.modeling.training import TrainingConfig

    features = feature_table(seed)
    config = TrainingConfig(features=feature_names(feature_set), **kw)
    started, cpu = time.perf_counter(), time.process_time()
    folds = backtest(features, train_days, 7, TEST_START, 7, 4, config, known_days=known_days)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if ceiling:
        hidden = hidden_frauds(features, compromise_runs(seed))
        columns = ["transaction_id", "tx_datetime", "customer_id", "tx_fraud"]
        for fold in folds:
            scored = (
                fold.predictions.filter(~pl.col("known_compromised"))
                .join(features.select(columns), on="transaction_id")
                .join(hidden, on="transaction_id")
            )
            fold.metrics |= ceiling_metrics(scored)
    for fold in folds:
        print(
            json.dumps(
                {
                    "seed": seed,
                    "fold": fold.fold,
                    "test": f"{fold.test_start}..{fold.test_end}",
                    "train": f"{fold.window.train_start}..{fold.window.train_end}",
                    "test_rows": fold.test_rows,
                    "test_frauds": fold.test_frauds,
                    "excluded_cards": fold.excluded_cards,
                    "best_iteration": fold.best_iteration,
                    **{k: round(v, 4) for k, v in fold.metrics.items() if k in _SHOWN},
                }
            ),
            flush=True,
        )
    mean = mean_of(folds)
    print(
        json.dumps(
            {"seed": seed, "fold": "mean", "seconds": round(seconds, 1), "cpu": round(cpu, 1)}
            | {k: round(mean[k], 4) for k in _SHOWN if k in mean}
        ),
        flush=True,
    )
    return mean


_CEILING = (
    "hidden_share",
    "ceil_model_auc",
    "ceil_model_ap",
    "ceil_model_cp100",
    "ceil_random_auc",
    "ceil_random_ap",
    "ceil_random_cp100",
)

_SHOWN = (
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "card_precision_at_100_strict",
    "recall",
    "fpr",
    "recall_scenario_1",
    "recall_scenario_2",
    "recall_scenario_3",
    *_CEILING,
)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """`all`, `baseline` (the handbook's 15 inputs), or `all-<name>,<name>` (ablation)."""
    from fraud_assets.features.spec import AMOUNT_FEATURES, BASELINE_FEATURES, FEATURE_COLUMNS

    if feature_set == "all":
        return tuple(FEATURE_COLUMNS)
    if feature_set == "baseline":
        return tuple(AMOUNT_FEATURES + BASELINE_FEATURES)
    if feature_set == "baseline-no-amount":
        return tuple(BASELINE_FEATURES)
    if feature_set.startswith("all-"):
        dropped = set(feature_set[4:].split(","))
        unknown = dropped - set(FEATURE_COLUMNS)
        if unknown:
            raise SystemExit(f"unknown features: {sorted(unknown)}")
        return tuple(c for c in FEATURE_COLUMNS if c not in dropped)
    raise SystemExit(f"unknown feature set {feature_set!r}")


def main() -> None:
    from fraud_assets.modeling.backtest import mean_and_spread
    from fraud_assets.modeling.metrics import CARD_PRECISION_DEFINITION

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-days", type=int, default=28)
    parser.add_argument("--features", default="all")
    parser.add_argument(
        "--known-days", default="7", help="days of the known-compromised window, or 'all'"
    )
    parser.add_argument("--set", nargs="*", default=[], help="TrainingConfig overrides k=v")
    parser.add_argument(
        "--ceiling", action="store_true", help="also the best figures the features allow"
    )
    parser.add_argument("--json", type=Path, help="write the summary here as well")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = _parse(value)
    known_days = None if args.known_days == "all" else int(args.known_days)

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, commit {commit}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"UTC, load average {load:.1f}"
    )
    print(f"{CARD_PRECISION_DEFINITION}; known-compromised window: {args.known_days} days")
    print(f"train days {args.train_days}, features {args.features}, overrides {overrides}")
    started = time.perf_counter()
    means = [
        run(seed, args.train_days, args.features, known_days, args.ceiling, **overrides)
        for seed in args.seeds
    ]
    total = time.perf_counter() - started
    summary = mean_and_spread(means)
    print(f"| metric | mean over seeds {args.seeds} | spread (sd) | handbook | target |")
    print("|---|---:|---:|---:|---:|")
    for key in _SHOWN:
        if key in summary:
            m, sd = summary[key]
            print(
                f"| {key} | {m:.4f} | {sd:.4f} | {HANDBOOK.get(key, '')} | {TARGET.get(key, '')} |"
            )
    print(f"total {total:.0f} s (including simulating and featurising uncached seeds)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "seeds": args.seeds,
                    "train_days": args.train_days,
                    "features": args.features,
                    "overrides": overrides,
                    "known_days": args.known_days,
                    "card_precision": CARD_PRECISION_DEFINITION,
                    "per_seed": means,
                    "summary": {k: list(v) for k, v in summary.items()},
                    "seconds": total,
                },
                indent=1,
            )
        )


def _parse(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


if __name__ == "__main__":
    main()
