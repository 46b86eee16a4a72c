"""The `fraud` command: simulate data and run the platform on embedded defaults."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from fsspec import AbstractFileSystem
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fraud_assets.filesystems import filesystem_for
from fraud_assets.lake import Lake
from fraud_assets.settings import validation_settings
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
        TextColumn("{task.fields[detail]}", markup=False),
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


class Engine(StrEnum):
    POLARS = "polars"
    SPARK = "spark"


_INPUTS = typer.Argument(help="Raw batch files (YYYY-MM-DD.txt) or folders of them.")
_LAKE_OUT = typer.Option(
    help="Output folder (or URL): clean/, quarantine/ and features/ Parquet, partitioned by date."
)
_MAX_TERMINAL = typer.Option(
    help="Without a terminal registry: terminal ids above this are quarantined as out of range."
)
_MAX_AMOUNT = typer.Option(
    help="Amounts above this are quarantined (amount_above_maximum); lower ones are never clipped."
)
_TERMINALS = typer.Option(
    help="The bank's terminal file (CSV with a terminal_id column): rows with other terminals are "
    "quarantined as unknown_terminal. Default: terminals.csv beside the inputs, else the lake's "
    "terminal registry, else --max-terminal-id alone.",
    exists=True,
    dir_okay=False,
)
_ORIGIN = typer.Option(
    formats=_DATE,
    help="Day the time counters count from (default: each batch's marker, else inferred).",
)


@dataclass(frozen=True)
class _Validation:
    max_terminal_id: int
    max_amount: float
    terminals: Path | None
    origin_date: dt.datetime | None


def _run_batches(
    inputs: list[str],
    out: str,
    steps: set,
    validation: _Validation,
    engine: str = "polars",
    spark: object | None = None,
) -> tuple[object, list]:
    """Run the platform's range code over local files; (source, outcomes)."""
    from fraud_assets.batch.local import NoSuchInput, find_batches
    from fraud_assets.batch.ranges import RangeConfig, ingest_range
    from fraud_assets.privacy import Pseudonymizer

    try:
        source = find_batches(inputs)
    except NoSuchInput as e:
        raise typer.BadParameter(str(e), param_hint="INPUT") from None
    if not source.paths and not source.refused:
        raise typer.BadParameter("no raw batch files (YYYY-MM-DD.txt) found", param_hint="INPUT")
    lake = Lake(*filesystem_for(out))
    config = RangeConfig(
        max_terminal_id=validation.max_terminal_id,
        max_amount=validation.max_amount,
        registry=_registry(validation, source, lake),
        origin_date=validation.origin_date.date() if validation.origin_date else None,
        engine=engine,
        spark=spark,
    )
    names = ", ".join(sorted(s.value for s in steps))
    with progress_bar() as progress:
        task = progress.add_task(names, total=len(source.paths), detail="")
        outcomes = ingest_range(
            list(source.paths),
            steps,
            source,
            lake,
            Pseudonymizer(),
            config,
            row_estimate=source.row_estimate,
            on_batch=lambda o: progress.update(task, advance=1, detail=o.batch_id),
        )
    return source, outcomes


def _registry(validation: _Validation, source, lake: Lake):  # noqa: ANN001, ANN202
    """The terminal file given or beside the inputs, else the lake's registry, else none."""
    from fraud_assets.cleaning.terminal_registry import RegistryError, parse_registry, read_registry

    path = validation.terminals or source.terminals_file()
    if path is not None:
        try:
            registry = parse_registry(Path(path).read_bytes(), str(path))
        except (OSError, RegistryError) as e:
            raise typer.BadParameter(str(e), param_hint="--terminals") from None
    else:
        registry = read_registry(lake)
    if registry is not None:
        console.print(Text(f"Terminals: {registry.describe()}"))
    else:
        console.print(
            Text(
                "Terminals: no registry (no terminals.csv beside the inputs, none in the lake): "
                f"terminal ids above {validation.max_terminal_id:,} are quarantined."
            )
        )
    return registry


def _report(source, outcomes: list) -> int:  # noqa: ANN001 - a LocalBatches
    """Print one row per batch (file contents are never read as markup); the exit code."""
    table = Table(title="Batches", title_justify="left")
    for name in ("batch", "raw", "clean", "quarantined (by reason)", "duplicates", "result"):
        table.add_column(name, overflow="fold")
    for o in outcomes:
        cells = ["", "", "", ""]
        if (c := o.clean) is not None:
            reasons = ", ".join(f"{k} {v:,}" for k, v in c.by_reason.items()) or "none"
            quarantined = f"{c.quarantined:,} ({reasons})"
            cells = [f"{c.raw_rows:,}", f"{c.clean_rows:,}", quarantined, f"{c.duplicates:,}"]
        result = (
            Text("ok", style="green")
            if o.ok
            else Text(f"FAILED ({o.failed_step}): {o.error}", style="red")
        )
        table.add_row(Text(source.display_path(o.batch_id)), *map(Text, cells), result)
    for name, reason in source.refused.items():
        table.add_row(Text(name), *(Text() for _ in range(4)), Text(f"FAILED: {reason}", "red"))
    console.print(table)
    failed = sum(not o.ok for o in outcomes) + len(source.refused)
    if failed:
        total = len(outcomes) + len(source.refused)
        message = f"{failed} of {total} batch(es) failed; the others were processed."
        console.print(Text(message, "red"))
    return 1 if failed else 0


@app.command()
def clean(
    inputs: Annotated[list[str], _INPUTS],
    out: Annotated[str, _LAKE_OUT],
    max_terminal_id: Annotated[int, _MAX_TERMINAL] = validation_settings().max_terminal_id,
    max_amount: Annotated[float, _MAX_AMOUNT] = validation_settings().max_amount,
    terminals: Annotated[Path | None, _TERMINALS] = None,
    origin_date: Annotated[dt.datetime | None, _ORIGIN] = None,
) -> None:
    """Clean raw batches: check header and completion marker, repair timestamps and counters,
    drop duplicates, quarantine bad rows (with line number, text and reason), pseudonymise ids
    (key: FRAUD_PSEUDONYM_KEY). Exits with 1 when any batch failed, naming it and why."""
    from fraud_assets.batch.ranges import Step

    validation = _Validation(max_terminal_id, max_amount, terminals, origin_date)
    source, outcomes = _run_batches(inputs, out, {Step.RAW, Step.CLEAN}, validation)
    code = _report(source, outcomes)
    console.print(Text(f"Clean tables in {out}/clean, quarantine in {out}/quarantine"))
    raise typer.Exit(code)


@app.command()
def features(
    inputs: Annotated[list[str], _INPUTS],
    out: Annotated[str, _LAKE_OUT],
    engine: Annotated[Engine, typer.Option(help="polars (in process) or spark.")] = Engine.POLARS,
    spark_master: Annotated[str, typer.Option(help="Spark master for --engine spark.")] = (
        "local[2]"
    ),
    max_terminal_id: Annotated[int, _MAX_TERMINAL] = validation_settings().max_terminal_id,
    max_amount: Annotated[float, _MAX_AMOUNT] = validation_settings().max_amount,
    terminals: Annotated[Path | None, _TERMINALS] = None,
    origin_date: Annotated[dt.datetime | None, _ORIGIN] = None,
) -> None:
    """Clean raw batches, then compute the features of DESIGN.md §3.4 for each, in date order
    (each batch uses up to 37 days of earlier history from the same output folder).
    Take the committed rows out with: fraud lake export features FILE --lake OUT. Exits with 1
    when any batch failed."""
    from fraud_assets.batch.ranges import Step

    engine = Engine(engine).value
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
    validation = _Validation(max_terminal_id, max_amount, terminals, origin_date)
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    source, outcomes = _run_batches(inputs, out, steps, validation, engine, spark)
    code = _report(source, outcomes)
    rows = sum(o.features.rows for o in outcomes if o.features is not None)
    console.print(
        Text(
            f"{rows:,} feature rows in {out}/features — export them with "
            f"fraud lake export features features.parquet --lake {out}"
        )
    )
    raise typer.Exit(code)


@app.command()
def demo(
    days: Annotated[
        int,
        typer.Option(
            min=36,
            help="Days of data to simulate (training needs 35; up to 7 more land a week later "
            "for the challenger).",
        ),
    ] = 42,
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 3_000,
    terminals: Annotated[int, typer.Option(min=1, help="Number of terminals.")] = 6_000,
) -> None:
    """The whole lifecycle on embedded defaults: simulate days into ./data/landing (the last 3
    drift on purpose), ingest each batch through the landing sensor, train and promote a
    champion, land the last week and review a challenger against it, measure the champion on
    labelled batches, replay the newest day through the scoring service, and print a summary."""
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
    console.print(Text(f"Reports of {url} on http://{host}:{port}/"))
    uvicorn.run(create_app(Lake(*filesystem_for(url))), host=host, port=port, log_level="warning")


from fraud_assets.cli.lake import lake_app  # noqa: E402 - after `app` exists
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
