"""The `fraud` command: simulate data and run the platform on embedded defaults."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from fsspec import AbstractFileSystem
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fraud_assets.filesystems import filesystem_for
from fraud_assets.lake import Lake
from fraud_assets.raw_format import DATA_SUFFIX, MARKER_SUFFIX, BatchMarker, is_batch_id
from fraud_assets.simulation import FraudScenarios, SimulationParams
from fraud_assets.simulation.params import DriftScenario
from fraud_assets.simulation.writer import SimulationSummary, write_simulation

app = typer.Typer(
    help="Bank-card fraud platform: simulate transactions, ingest batches, run the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

_DATE = ["%Y-%m-%d"]
_SIM = "Simulation"
_FRAUD = "Fraud scenarios"
_DRIFT = "Drift scenario"
_OUT = "Output"


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command()
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
            formats=_DATE,
            show_default="2018-04-01",
            help="First simulated day (YYYY-MM-DD).",
            rich_help_panel=_SIM,
        ),
    ] = dt.datetime(2018, 4, 1),
    origin_date: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=_DATE,
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
    console.print(summary_line(summary, out))


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


def _raw_inputs(inputs: list[str]) -> list[tuple[str, str]]:
    """(batch_id, path) for raw batch files given directly or as folders, in batch order."""
    found: dict[str, str] = {}
    for item in inputs:
        path = Path(item)
        files = sorted(path.glob(f"*{DATA_SUFFIX}")) if path.is_dir() else [path]
        if not path.exists():
            raise typer.BadParameter(f"{item}: no such file or folder", param_hint="INPUT")
        for file in files:
            stem = file.name.removesuffix(DATA_SUFFIX)
            if file.name.endswith(DATA_SUFFIX) and is_batch_id(stem):
                found[stem] = str(file)
            elif not path.is_dir():
                raise typer.BadParameter(
                    f"{item}: not a raw batch file (expected YYYY-MM-DD.txt)", param_hint="INPUT"
                )
    if not found:
        raise typer.BadParameter("no raw batch files (YYYY-MM-DD.txt) found", param_hint="INPUT")
    return sorted(found.items())


def _clean_one(
    lake: Lake,
    batch_id: str,
    path: str,
    pseudonymizer: object,
    max_terminal_id: int,
    origin_date: dt.datetime | None,
) -> object | None:
    """Clean one batch into the lake and print its conservation line; None if it is unreadable."""
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.ingestion import RawBatchError
    from fraud_assets.pipeline import clean_into_lake

    marker_path = Path(path).with_suffix(MARKER_SUFFIX)
    marker = BatchMarker.from_json(marker_path.read_bytes()) if marker_path.exists() else None
    origin = origin_date.date() if origin_date else None
    if origin is None and marker is not None:
        origin = dt.date.fromisoformat(marker.origin_date)
    config = CleaningConfig(max_terminal_id=max_terminal_id, origin_date=origin)
    try:
        r = clean_into_lake(lake, path, batch_id, pseudonymizer, config, name=path)
    except RawBatchError as e:
        console.print(f"[red]{e}")
        return None
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.quarantined_by_reason.items()))
    console.print(
        f"{batch_id}: {r.raw_rows:,} raw = {r.clean.height:,} clean + "
        f"{r.quarantine.height:,} quarantined ({reasons or 'none'}) + "
        f"{r.duplicates:,} duplicates"
    )
    return r


class Engine(StrEnum):
    POLARS = "polars"
    SPARK = "spark"


_INPUTS = typer.Argument(help="Raw batch files (YYYY-MM-DD.txt) or folders of them.")
_LAKE_OUT = typer.Option(
    help="Output folder (or URL): clean/, quarantine/ and features/ Parquet, partitioned by date."
)
_MAX_TERMINAL = typer.Option(help="Terminal ids above this are quarantined as out of range.")
_ORIGIN = typer.Option(
    formats=_DATE,
    help="Day the time counters count from (default: each batch's marker, else inferred).",
)


@app.command()
def clean(
    inputs: Annotated[list[str], _INPUTS],
    out: Annotated[str, _LAKE_OUT],
    max_terminal_id: Annotated[int, _MAX_TERMINAL] = 999_999,
    origin_date: Annotated[dt.datetime | None, _ORIGIN] = None,
) -> None:
    """Clean raw batches: repair timestamps and counters, drop duplicates, quarantine bad rows
    (with line number, text and reason), pseudonymise ids (key: FRAUD_PSEUDONYM_KEY)."""
    from fraud_assets.privacy import Pseudonymizer

    lake = Lake(*filesystem_for(out))
    batches = _raw_inputs(inputs)
    pseudonymizer = Pseudonymizer()
    failed = 0
    with progress_bar() as progress:
        task = progress.add_task("cleaning", total=len(batches), detail="")
        for batch_id, path in batches:
            result = _clean_one(lake, batch_id, path, pseudonymizer, max_terminal_id, origin_date)
            failed += result is None
            progress.update(task, advance=1, detail=batch_id)
    if failed:
        console.print(f"[red]{failed} batch(es) could not be cleaned; the others were.")
    console.print(f"Clean tables in {out}/clean, quarantine in {out}/quarantine")


@app.command()
def features(
    inputs: Annotated[list[str], _INPUTS],
    out: Annotated[str, _LAKE_OUT],
    engine: Annotated[Engine, typer.Option(help="polars (in process) or spark.")] = Engine.POLARS,
    spark_master: Annotated[str, typer.Option(help="Spark master for --engine spark.")] = (
        "local[2]"
    ),
    max_terminal_id: Annotated[int, _MAX_TERMINAL] = 999_999,
    origin_date: Annotated[dt.datetime | None, _ORIGIN] = None,
) -> None:
    """Clean raw batches, then compute the features of DESIGN.md §3.4 for each, in date order
    (each batch uses up to 37 days of earlier history from the same output folder).
    Take the committed rows out with: fraud lake export features FILE --lake OUT."""
    from fraud_assets.lake import MissingHistoryError
    from fraud_assets.pipeline import features_into_lake
    from fraud_assets.privacy import Pseudonymizer

    engine = Engine(engine).value
    lake = Lake(*filesystem_for(out))
    batches = _raw_inputs(inputs)
    pseudonymizer = Pseudonymizer()
    spark = None
    if engine == "spark":
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master(spark_master)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.maxResultSize", "0")
            .getOrCreate()
        )
    rows = failed = 0
    with progress_bar() as progress:
        task = progress.add_task(f"clean + features ({engine})", total=len(batches), detail="")
        for batch_id, path in batches:
            cleaned = _clean_one(lake, batch_id, path, pseudonymizer, max_terminal_id, origin_date)
            if cleaned is None:
                failed += 1
            else:
                try:  # featurised from the clean table still in memory, history from the lake
                    features = features_into_lake(lake, batch_id, engine, spark, cleaned.clean)
                    rows += features.height
                except MissingHistoryError as e:
                    console.print(f"[yellow]{e}")
            progress.update(task, advance=1, detail=batch_id)
    if failed:
        console.print(f"[red]{failed} batch(es) could not be cleaned; the others were.")
    console.print(
        f"{rows:,} feature rows in {out}/features — export them with "
        f"fraud lake export features features.parquet --lake {out}",
        markup=False,
    )


@app.command()
def demo(
    days: Annotated[
        int, typer.Option(min=36, help="Days of data to simulate (training needs 35).")
    ] = 38,
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 3_000,
    terminals: Annotated[int, typer.Option(min=1, help="Number of terminals.")] = 6_000,
) -> None:
    """The whole lifecycle on embedded defaults: simulate days into ./data/landing (the last 3
    drift on purpose), ingest each batch through the landing sensor, train and promote a
    champion, replay the newest day through the scoring service, and print a summary."""
    from fraud_assets.demo import run_demo  # Dagster is only imported when needed

    run_demo(console, days=days, customers=customers, terminals=terminals)


@app.command()
def reports(
    lake: Annotated[
        str | None, typer.Option(help="Lake URL or folder; default: FRAUD_LAKE_URL or data/lake.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; the UI links use FRAUD_REPORTS_URL.")] = 8765,
) -> None:
    """Serve the lake's HTML reports (Evidently drift reports) over HTTP, for the report links in
    the Dagster UI (browsers do not open file:// links from a web page)."""
    import uvicorn

    from fraud_assets.monitoring.report_server import create_app
    from resources.environments import lake_url

    url = lake or lake_url()
    console.print(f"Reports of {url} on http://{host}:{port}/")
    uvicorn.run(create_app(Lake(*filesystem_for(url))), host=host, port=port, log_level="warning")


from fraud_assets.lake_cli import lake_app  # noqa: E402 - after `app` exists
from fraud_assets.model_cli import backtest, model_app  # noqa: E402
from fraud_assets.serving.cli import serve  # noqa: E402
from fraud_assets.serving.stream_cli import stream  # noqa: E402

app.add_typer(model_app, name="model")
app.add_typer(lake_app, name="lake")
app.command()(backtest)
app.command("serve")(serve)
app.command("stream")(stream)


if __name__ == "__main__":
    app()
