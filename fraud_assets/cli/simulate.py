"""`fraud simulate`: write simulated card transactions as raw batches into a landing zone."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from fsspec import AbstractFileSystem
from rich.text import Text

from fraud_assets.cli.console import console, progress_bar
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.simulation import FraudScenarios, SimulationParams
from fraud_assets.simulation.params import DriftScenario
from fraud_assets.simulation.writer import SimulationSummary, write_simulation

DATE_FORMATS = ["%Y-%m-%d"]
_SIM = "Simulation"
_FRAUD = "Fraud scenarios"
_DRIFT = "Drift scenario"
_OUT = "Output"


def simulate(
    out: Annotated[
        str,
        typer.Option(
            help="Landing zone to write to: a folder, s3://bucket/prefix, or any fsspec URL.",
            rich_help_panel=_OUT,
        ),
    ],
    customers: Annotated[
        int, typer.Option(min=1, help="Number of customers (cards).", rich_help_panel=_SIM)
    ] = 5_000,
    terminals: Annotated[
        int, typer.Option(min=1, help="Number of payment terminals.", rich_help_panel=_SIM)
    ] = 10_000,
    days: Annotated[
        int,
        typer.Option(min=1, help="Days to simulate; one batch file per day.", rich_help_panel=_SIM),
    ] = 183,
    start_date: Annotated[
        dt.datetime,
        typer.Option(
            formats=DATE_FORMATS,
            show_default="2018-04-01",
            help="First simulated day (YYYY-MM-DD).",
            rich_help_panel=_SIM,
        ),
    ] = dt.datetime(2018, 4, 1),
    origin_date: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=DATE_FORMATS,
            help="Day that tx_time_seconds/tx_time_days count from (default: the start date).",
            rich_help_panel=_SIM,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Random seed: the same seed writes the same bytes.", rich_help_panel=_SIM
        ),
    ] = 0,
    radius: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="A customer uses the terminals within this distance on the 100x100 grid.",
            rich_help_panel=_SIM,
        ),
    ] = 5.0,
    first_transaction_id: Annotated[
        int, typer.Option(min=0, help="Id of the first transaction written.", rich_help_panel=_SIM)
    ] = 0,
    fraud_amount_threshold: Annotated[
        float,
        typer.Option(help="Scenario 1: an amount above this is fraud.", rich_help_panel=_FRAUD),
    ] = 220.0,
    compromised_terminals_per_day: Annotated[
        int,
        typer.Option(
            min=0, help="Scenario 2: terminals compromised each day.", rich_help_panel=_FRAUD
        ),
    ] = 2,
    terminal_compromise_days: Annotated[
        int,
        typer.Option(
            min=1,
            help="Scenario 2: days a terminal stays compromised (all its transactions are fraud).",
            rich_help_panel=_FRAUD,
        ),
    ] = 28,
    compromised_customers_per_day: Annotated[
        int,
        typer.Option(
            min=0, help="Scenario 3: customers compromised each day.", rich_help_panel=_FRAUD
        ),
    ] = 3,
    customer_compromise_days: Annotated[
        int,
        typer.Option(
            min=1, help="Scenario 3: days a customer stays compromised.", rich_help_panel=_FRAUD
        ),
    ] = 14,
    customer_fraud_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            show_default="1/3",
            help="Scenario 3: share of a compromised customer's transactions that are fraud.",
            rich_help_panel=_FRAUD,
        ),
    ] = 1 / 3,
    customer_amount_factor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Scenario 3: fraudulent amounts are the customer's amount times this.",
            rich_help_panel=_FRAUD,
        ),
    ] = 5.0,
    drift_start_day: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=(
                "Shift the process from this day on (0 = the start date) to produce drift on "
                "purpose; earlier days are unchanged. Off when not given."
            ),
            rich_help_panel=_DRIFT,
        ),
    ] = None,
    drift_amount_factor: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="From the drift start day, every customer's amounts are this many times larger.",
            rich_help_panel=_DRIFT,
        ),
    ] = 1.0,
    drift_tx_per_day_factor: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="From the drift start day, customers make this many times more transactions.",
            rich_help_panel=_DRIFT,
        ),
    ] = 1.0,
    dirty: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help=(
                "Damage about this share of rows with every known defect class (hour 24, wrong "
                "seconds/days, duplicates, bad terminals/customers/amounts, missing values, "
                "unparseable lines) and write YYYY-MM-DD.dirty.csv manifests. 0 = off."
            ),
            rich_help_panel=_OUT,
        ),
    ] = 0.0,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="AWS_ENDPOINT_URL",
            help="S3-compatible endpoint for s3:// URLs (MinIO, moto, Ceph…).",
            rich_help_panel=_OUT,
        ),
    ] = None,
) -> None:
    """Write simulated card transactions as raw batch files, one per day, each followed by its
    completion marker (YYYY-MM-DD.txt, then YYYY-MM-DD.done)."""
    try:
        params = SimulationParams(
            customers=customers,
            terminals=terminals,
            days=days,
            start_date=start_date.date(),
            origin_date=origin_date.date() if origin_date else None,
            radius=radius,
            seed=seed,
            first_transaction_id=first_transaction_id,
            scenarios=FraudScenarios(
                amount_threshold=fraud_amount_threshold,
                terminals_per_day=compromised_terminals_per_day,
                terminal_window_days=terminal_compromise_days,
                customers_per_day=compromised_customers_per_day,
                customer_window_days=customer_compromise_days,
                customer_fraud_share=customer_fraud_share,
                customer_amount_factor=customer_amount_factor,
            ),
            drift=DriftScenario(
                start_day=drift_start_day,
                amount_factor=drift_amount_factor,
                tx_per_day_factor=drift_tx_per_day_factor,
            ),
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    storage = {"client_kwargs": {"endpoint_url": s3_endpoint_url}} if s3_endpoint_url else {}
    fs, root = filesystem_for(out, **storage)
    summary = run_simulation(params, fs, root, dirty)
    console.print(Text(summary_line(summary, out)))


def run_simulation(
    params: SimulationParams, fs: AbstractFileSystem, root: str, dirty: float = 0.0
) -> SimulationSummary:
    with progress_bar() as progress:
        task = progress.add_task("simulating", total=params.days, detail="")
        written = 0

        def on_batch(batch_id: str, transactions: int) -> None:
            nonlocal written
            written += transactions
            progress.update(task, advance=1, detail=f"{batch_id} · {written:,} tx")

        return write_simulation(params, fs, root, dirty_rate=dirty, on_batch=on_batch)


def summary_line(s: SimulationSummary, out: str) -> str:
    by_scenario = ", ".join(f"s{k} {v:,}" for k, v in sorted(s.frauds_by_scenario.items()))
    share = s.frauds / s.transactions if s.transactions else 0.0
    line = (
        f"Wrote {len(s.batches)} batches to {out}: {s.transactions:,} transactions, "
        f"{s.frauds:,} frauds ({share:.2%}; {by_scenario or 'none'}) "
        f"in {s.seconds:.1f} s — {s.rows_per_second:,.0f} rows/s"
    )
    if s.defects:
        line += f"\nDamaged rows (see *.dirty.csv): {sum(s.defects.values()):,} — " + ", ".join(
            f"{k} {v}" for k, v in sorted(s.defects.items())
        )
    return line
