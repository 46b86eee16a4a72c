"""Training time on ~1 M rows, and walk-forward backtest quality on reference-size data.

The reference run of the simulator (5 000 customers, 10 000 terminals, 183 days, ≈ 1.79 M
transactions) is cleaned and featurised once into benchmarks/out/training/lake (cached), then:

  1. CatBoost (default TrainingConfig: 500 iterations, early stopping, 2 threads) is trained on a
     window holding ≈ 1 M training rows; the fit time and the validation metrics are printed;
  2. the backtest of `fraud backtest` runs --folds K weekly folds and prints each fold and the mean.

    .venv/bin/python benchmarks/bench_training.py [--folds 4] [--imbalance none]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent / "out" / "training"
START = dt.date(2018, 4, 1)


def build_lake() -> Path:
    from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation

    lake_dir = OUT / "lake"
    if (OUT / "complete").exists():
        return lake_dir
    shutil.rmtree(OUT, ignore_errors=True)
    params = SimulationParams(customers=5_000, terminals=10_000, days=183, start_date=START, seed=0)
    summary = write_simulation(params, *filesystem_for(str(OUT / "landing")))
    lake = Lake(*filesystem_for(str(lake_dir)))
    config = CleaningConfig(origin_date=START)
    pseudonymizer = Pseudonymizer(b"bench")
    for batch in summary.batches:
        source = OUT / "landing" / f"{batch}.txt"
        result = clean_into_lake(lake, source, batch, pseudonymizer, config)
        features_into_lake(lake, batch, batch_clean=result.clean)
    (OUT / "complete").touch()
    return lake_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--imbalance", default="none", choices=["none", "class_weights", "focal"])
    args = parser.parse_args()

    from fraud_assets.modeling.backtest import REPORTED, backtest, mean_of
    from fraud_assets.modeling.training import TrainingConfig, train_model

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    started = time.perf_counter()
    lake_dir = build_lake()
    print(f"feature lake ready in {time.perf_counter() - started:.0f} s: {lake_dir}")
    features = pl.read_parquet(f"{lake_dir}/features/**/*.parquet")
    days = features["tx_datetime"].dt.date()
    print(
        f"{features.height:,} rows, {features['tx_fraud'].mean():.2%} fraud, "
        f"{days.min()}..{days.max()}"
    )

    # 1. Fit time on ~1 M training rows (≈ 9 800 rows a day → 102 training days).
    config = TrainingConfig(window_days=102, imbalance=args.imbalance)
    end = days.max()
    t0 = time.perf_counter()
    trained = train_model(features, end, config)
    fit_s = time.perf_counter() - t0
    m = trained.validation_metrics
    print(
        f"| training rows | iterations (best) | fit + threshold s | validation AUC | AP | "
        f"recall @ thr | FPR @ thr |\n|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {trained.window.rows:,} | {config.iterations} ({trained.best_iteration}) | "
        f"{fit_s:.1f} | {m['auc_roc']:.3f} | {m['average_precision']:.3f} | "
        f"{m['recall']:.3f} | {m['fpr']:.3f} |"
    )

    # 2. Backtest of the default training window, weekly folds ending with the data.
    test_days = 7
    test_start = end - dt.timedelta(days=args.folds * test_days - 1)
    folds = backtest(
        features, 28, 7, test_start, test_days, args.folds,
        TrainingConfig(imbalance=args.imbalance),
    )  # fmt: skip
    for fold in folds:
        print(json.dumps({
            "fold": fold.fold, "test": f"{fold.test_start}..{fold.test_end}",
            "test_rows": fold.test_rows, "test_frauds": fold.test_frauds,
            **{k: round(fold.metrics[k], 4) for k in REPORTED},
        }))  # fmt: skip
    mean = mean_of(folds)
    print(json.dumps({"fold": "mean", **{k: round(mean[k], 4) for k in REPORTED}}))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
