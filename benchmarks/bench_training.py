"""Training time on ≈ 1 M rows, per CatBoost setting: what makes a fit fast, and what it costs.

The reference run of the simulator (seed 0; 5 000 customers, 10 000 terminals, 183 days, ≈ 1.79 M
transactions), featurised once by `bench_backtest.py` (benchmarks/out/backtest/seed0, cached), is
cut by `train_model` as production does: 102 training days (≈ 1 M rows) + 7 validation days. For
each setting the whole `train_model` call is timed (fit with early stopping on the validation
slice, threshold choice, validation metrics), wall and CPU time, and the validation AUC / AP are
printed beside it. The load average before each fit is printed too: on a shared machine the wall
time says as much about the neighbours as about the code.

    .venv/bin/python benchmarks/bench_training.py                    # the default comparison
    .venv/bin/python benchmarks/bench_training.py --only default     # just the shipped settings
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS: dict[str, dict[str, object]] = {
    # The settings before issue 20: 254 bins, learning rate 0.1, up to 500 iterations.
    "before": {
        "border_count": 254,
        "learning_rate": 0.1,
        "iterations": 500,
        "early_stopping_rounds": 50,
    },
    "bins-64": {"border_count": 64, "learning_rate": 0.1, "iterations": 500},
    # The shipped defaults (TrainingConfig()): see docs/models.md.
    "default": {},
    # The defaults before tx_amount got its own 4 096 bins (issue 20, second pass).
    "amount-bins-64": {"amount_border_count": 0},
}


def main() -> None:
    import bench_backtest

    from fraud_assets.modeling.training import TrainingConfig, train_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--window-days", type=int, default=102)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, commit {commit}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"UTC, load average {os.getloadavg()[0]:.1f}"
    )
    features = bench_backtest.feature_table(0)
    end = features["tx_datetime"].dt.date().max()
    print(
        "| setting | training rows | threads | bins | lr | iterations (best) | "
        "train_model wall s | CPU s (user + sys) | validation AUC | AP | load before |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.only:
        config = TrainingConfig(window_days=args.window_days, **VARIANTS[name])  # type: ignore[arg-type]
        load = os.getloadavg()[0]
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        trained = train_model(features, end, config)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        m = trained.validation_metrics
        print(
            f"| {name} | {trained.window.rows:,} | {config.threads} | {config.border_count} | "
            f"{config.learning_rate} | {config.iterations} ({trained.best_iteration}) | "
            f"{seconds:.1f} | {cpu:.1f} | {m['auc_roc']:.4f} | {m['average_precision']:.4f} | "
            f"{load:.1f} |",
            flush=True,
        )


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): what the fit costs, whoever else shares the
    cores. On 2 idle cores the wall time is about half of it (CatBoost keeps both busy)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
