"""`fraud lake …`: look at what the lake has committed, and take it out as one Parquet file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

lake_app = typer.Typer(
    help="The lake's committed tables: list commits, export a table, make a restricted-zone key.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)  # paths and URLs stay on one line, whole
err = Console(stderr=True, soft_wrap=True)

_LAKE = typer.Option(help="Lake URL or folder; default: FRAUD_LAKE_URL or data/lake.")


def _lake(url: str | None):  # noqa: ANN202 - a Lake
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.settings import lake_url

    return Lake(*filesystem_for(url or lake_url()))


@lake_app.command()
def export(
    table: Annotated[
        str,
        typer.Argument(
            help="clean, quarantine, features, or restricted/quarantine (raw lines; needs "
            "FRAUD_QUARANTINE_KEY when they are encrypted)."
        ),
    ],
    file: Annotated[str, typer.Argument(help="Parquet file to write (a path or any fsspec URL).")],
    lake: Annotated[str | None, _LAKE] = None,
) -> None:
    """Write the committed rows of TABLE to one Parquet file: every batch's current version,
    nothing from writes that crashed or were replaced."""
    from fraud_assets.lake import TABLES
    from fraud_assets.lake.export import EmptyTableError, export_table
    from fraud_assets.lake.restricted import RestrictedKeyError

    if table not in TABLES:
        raise typer.BadParameter(f"expected one of {', '.join(TABLES)}", param_hint="TABLE")
    store = _lake(lake)
    try:
        done = export_table(store, table, file)
    except (EmptyTableError, RestrictedKeyError) as e:
        err.print(Text(str(e), style="red"))
        raise typer.Exit(1) from e
    out.print(
        Text(f"{done.rows:,} committed rows of {table} ({done.batches} batches) written to {file}")
    )


@lake_app.command()
def commits(
    lake: Annotated[str | None, _LAKE] = None,
    stage: Annotated[str | None, typer.Option(help="clean or features; default both.")] = None,
) -> None:
    """Every batch's committed version per stage: commit id, time, rows per table."""
    from fraud_assets.lake import STAGES

    stages = [stage] if stage else list(STAGES)
    for name in stages:
        if name not in STAGES:
            raise typer.BadParameter(f"expected one of {', '.join(STAGES)}", param_hint="--stage")
    store = _lake(lake)
    view = Table(title=f"Commits of {store.root}")
    for column in ("batch", "stage", "commit", "committed at (UTC)", "rows"):
        view.add_column(column)
    count = 0
    for name in stages:
        for batch_id, commit in sorted(store.commits(name).items()):
            rows = ", ".join(f"{t} {commit.rows(t):,}" for t in STAGES[name] if commit.of(t))
            cells = (batch_id, name, commit.commit_id, commit.committed_at, rows or "no rows")
            view.add_row(*(Text(c) for c in cells))
            count += 1
    if count == 0:
        out.print(Text(f"No commits in {store.root} yet."))
        return
    out.print(view)


@lake_app.command("new-key")
def new_key(
    file: Annotated[
        Path | None,
        typer.Option(help="Write the key to this new file (mode 600) instead of printing it."),
    ] = None,
) -> None:
    """Make a fresh key for the restricted zone (set it as FRAUD_QUARANTINE_KEY)."""
    from fraud_assets.lake.restricted import new_key as make

    key = make()
    if file is None:
        print(key)
        return
    try:  # never over an existing key: the files it encrypted would become unreadable
        handle = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        err.print(Text(f"{file} already exists: not overwritten", style="red"))
        raise typer.Exit(1) from e
    with os.fdopen(handle, "w") as f:
        f.write(key + "\n")
    out.print(Text(f"Key written to {file}; set FRAUD_QUARANTINE_KEY from it."))
