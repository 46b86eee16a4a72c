"""`fraud clean` and `fraud features`: the platform's range code over local raw batch files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fraud_assets.cli.console import console, progress_bar
from fraud_assets.cli.simulate import DATE_FORMATS
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.settings import validation_settings


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
    formats=DATE_FORMATS,
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


def features(
    inputs: Annotated[list[str], _INPUTS],
    out: Annotated[str, _LAKE_OUT],
    engine: Annotated[Engine, typer.Option(help="polars (in process) or spark.")] = Engine.POLARS,
    spark_master: Annotated[
        str | None,
        typer.Option(
            help="Spark master for --engine spark (default: FRAUD_SPARK_MASTER, else local[2]): "
            "spark://host:7077, yarn, k8s://…, sc://host:15002 (Spark Connect)."
        ),
    ] = None,
    max_terminal_id: Annotated[int, _MAX_TERMINAL] = validation_settings().max_terminal_id,
    max_amount: Annotated[float, _MAX_AMOUNT] = validation_settings().max_amount,
    terminals: Annotated[Path | None, _TERMINALS] = None,
    origin_date: Annotated[dt.datetime | None, _ORIGIN] = None,
) -> None:
    """Clean raw batches, then compute the features (docs/features.md) of each, in date order
    (each batch uses up to 67 days of earlier history from the same output folder).
    Take the committed rows out with: fraud lake export features FILE --lake OUT. Exits with 1
    when any batch failed."""
    from fraud_assets.batch.ranges import Step

    engine = Engine(engine).value
    spark = None
    if engine == "spark":
        from fraud_assets.spark.session import start_spark

        spark = start_spark(spark_master)
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
