"""`fraud investigate --simulate`: play investigators over a simulated period (the loop of
`fraud_assets.investigation.loop`) and print card precision@k per variant."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

VARIANTS = ("static", "retrain", "feedback")


def investigate(
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Play investigators over simulated data.")
    ] = False,
    customers: Annotated[int, typer.Option(min=10, help="Simulated cards.")] = 1_000,
    terminals: Annotated[int, typer.Option(min=10, help="Simulated terminals.")] = 2_000,
    days: Annotated[int, typer.Option(min=45, help="Simulated days in all.")] = 80,
    history_days: Annotated[
        int, typer.Option(min=43, help="Days before the first test day (training history).")
    ] = 50,
    k: Annotated[int, typer.Option(min=1, help="Cards the investigators check a day.")] = 100,
    retrain_every: Annotated[int, typer.Option(min=1, help="Days between retrainings.")] = 7,
    iterations: Annotated[int, typer.Option(min=10, help="CatBoost iterations.")] = 200,
    variant: Annotated[
        list[str] | None, typer.Option(help="static, retrain, feedback (default: all three).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 19,
) -> None:
    """The measured loop: scores -> daily queue -> decisions -> labels -> features -> retraining."""
    if not simulate:
        raise typer.BadParameter(
            "only --simulate is available: the live desk is /desk in `fraud serve`"
        )
    if history_days >= days:
        raise typer.BadParameter("--history-days must be below --days", param_hint="--history-days")
    chosen = variant or list(VARIANTS)
    bad = [v for v in chosen if v not in VARIANTS]
    if bad:
        raise typer.BadParameter(
            f"unknown variant(s) {bad}; use {VARIANTS}", param_hint="--variant"
        )
    import polars as pl

    from fraud_assets.features.polars_engine import compute_features
    from fraud_assets.investigation.loop import LoopConfig, run_loop
    from fraud_assets.modeling.training import TrainingConfig
    from fraud_assets.simulation import SimulationParams, TransactionSimulator

    console = Console()
    start = dt.date(2018, 4, 1)
    params = SimulationParams(
        customers=customers, terminals=terminals, days=days, start_date=start, seed=seed
    )
    with console.status("simulating and computing features"):
        frame = pl.concat([d.frame for d in TransactionSimulator(params).days()])
        features = compute_features(frame.drop("base_amount"))
    first = start + dt.timedelta(days=history_days)
    last = start + dt.timedelta(days=days - 1)
    table = Table(title=f"card precision@{k}, {first}..{last}")
    table.add_column("variant")
    table.add_column("overall", justify="right")
    table.add_column("labels recorded", justify="right")
    table.add_column("retrains", justify="right")
    for v in chosen:
        config = LoopConfig(
            variant=v, k=k, retrain_every=retrain_every,
            training=TrainingConfig(iterations=iterations),
        )  # fmt: skip
        with console.status(f"playing investigators: {v}"):
            result = run_loop(features, first, last, config)
        labelled = sum(d.labels for d in result.days)
        table.add_row(v, f"{result.precision:.4f}", f"{labelled:,}", str(result.retrains))
    console.print(table)
