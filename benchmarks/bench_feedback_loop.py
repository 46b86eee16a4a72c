"""Card precision@k with and without the investigators' feedback, on a simulated period.

The loop of `fraud_assets.investigation.loop` (scores -> daily queue of the top k cards ->
decisions from the simulator's truth -> labels -> feedback features -> retraining), run for the
three variants on the same simulated data:

    static     one model trained before the first test day, no feedback
    retrain    retrained every --retrain-every days on batch labels (behind the delay)
    feedback   retrained the same way, with the feedback features and the investigators'
               labels of the label gap

Reported: card precision@k per variant, overall (mean over test days) and per week, with the
commit, date and machine. Default: reference size (5,000 cards, 10,000 terminals), half a year
(183 days), the first 50 days as history only, k = 100.

    .venv/bin/python benchmarks/bench_feedback_loop.py
    .venv/bin/python benchmarks/bench_feedback_loop.py --customers 1000 --terminals 2000 --days 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from fraud_assets.features.polars_engine import compute_features  # noqa: E402
from fraud_assets.investigation.loop import VARIANTS, LoopConfig, run_loop  # noqa: E402
from fraud_assets.modeling.training import TrainingConfig  # noqa: E402
from fraud_assets.simulation import SimulationParams, TransactionSimulator  # noqa: E402

START = dt.date(2018, 4, 1)
OUT = Path(__file__).resolve().parent / "out" / "feedback_loop.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--history-days", type=int, default=50)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--retrain-every", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}, {dt.date.today()}, {platform.node()}, {platform.machine()}")

    t0 = time.perf_counter()
    params = SimulationParams(
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        start_date=START,
        seed=args.seed,
    )
    frame = pl.concat([d.frame for d in TransactionSimulator(params).days()])
    features = compute_features(frame.drop("base_amount"))
    print(f"simulated and featured {features.height:,} transactions in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    training = TrainingConfig(iterations=args.iterations)
    first = START + dt.timedelta(days=args.history_days)
    last = START + dt.timedelta(days=args.days - 1)
    results = {}
    for variant in args.variants:
        t1 = time.perf_counter()
        config = LoopConfig(
            variant=variant, k=args.k, retrain_every=args.retrain_every, training=training
        )
        r = run_loop(features, first, last, config)
        results[variant] = r
        print(f"{variant}: card precision@{args.k} {r.precision:.4f} over {len(r.days)} days, "
              f"{r.retrains} retrains, {time.perf_counter() - t1:.0f} s")  # fmt: skip

    print(f"\n| variant | card precision@{args.k}, all {len(r.days)} test days | "
          "first 4 weeks | last 4 weeks | retrains |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for variant, r in results.items():
        head = sum(d.precision for d in r.days[:28]) / min(28, len(r.days))
        tail = sum(d.precision for d in r.days[-28:]) / min(28, len(r.days))
        print(f"| {variant} | **{r.precision:.4f}** | {head:.4f} | {tail:.4f} | {r.retrains} |")

    weeks = len(r.days) // 7
    print(f"\nPer week (mean card precision@{args.k}):")
    print("| week | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for w in range(weeks):
        cells = [
            sum(d.precision for d in res.days[7 * w : 7 * w + 7]) / 7 for res in results.values()
        ]
        start = results[next(iter(results))].days[7 * w].date
        print(f"| {start} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "commit": commit,
                "date": str(dt.date.today()),
                "args": vars(args),
                "results": {
                    v: {
                        "precision": r.precision,
                        "retrains": r.retrains,
                        "days": [[str(d.date), d.precision, d.labels] for d in r.days],
                    }
                    for v, r in results.items()
                },
            },
            indent=1,
        )
    )
    print(f"\nwritten {OUT}")


if __name__ == "__main__":
    main()
