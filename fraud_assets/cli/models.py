"""`fraud model …` for people who manage the registry, and `fraud backtest` for data scientists."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

model_app = typer.Typer(
    help="Champion/challenger models in the MLflow registry (FRAUD_MLFLOW_TRACKING_URI, "
    "default: the embedded SQLite store under FRAUD_DATA_DIR).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

_TRACKING = typer.Option(
    "--tracking-uri",
    help="MLflow tracking URI; default: FRAUD_MLFLOW_TRACKING_URI, else data/mlflow/mlflow.db.",
)
_MODEL = typer.Option("--model-name", help="Registered model name.")


def _registry(tracking_uri: str | None, model_name: str):  # noqa: ANN202 - mlflow imported late
    from fraud_assets.modeling.registry import ModelRegistry
    from fraud_assets.settings import ensure_store_folder, platform_settings

    settings = platform_settings()
    uri = tracking_uri or settings.tracking_uri
    artifacts = None if tracking_uri else settings.artifact_location
    ensure_store_folder(uri)
    return ModelRegistry(uri, model_name=model_name, artifact_location=artifacts)


@model_app.command("list")
def list_versions(
    tracking_uri: Annotated[str | None, _TRACKING] = None,
    model_name: Annotated[str, _MODEL] = "fraud-detector",
) -> None:
    """Every registered version with its aliases, threshold and review decision."""
    registry = _registry(tracking_uri, model_name)
    table = Table(title=f"{model_name} in {registry.tracking_uri}")
    for column in ("version", "aliases", "threshold", "data end", "review decision"):
        table.add_column(column)
    for info in registry.versions():
        table.add_row(
            str(info.version),
            ", ".join(sorted(info.aliases)),
            f"{info.threshold:.4f}" if info.threshold is not None else "",
            info.tags.get("data_end", ""),
            info.tags.get("review_reason", info.tags.get("review_decision", "")),
        )
    console.print(table)


@model_app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Model version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why; stored as a tag on the version.")] = (
        "promoted by hand"
    ),
    tracking_uri: Annotated[str | None, _TRACKING] = None,
    model_name: Annotated[str, _MODEL] = "fraud-detector",
) -> None:
    """Move the alias `champion` to VERSION (the replaced champion can be restored by rollback)."""

    def move(registry) -> int:  # noqa: ANN001
        registry.promote(version, reason)
        return version

    _change_champion(tracking_uri, model_name, move)


@model_app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why; stored as a tag on both versions.")] = (
        "rolled back by hand"
    ),
    tracking_uri: Annotated[str | None, _TRACKING] = None,
    model_name: Annotated[str, _MODEL] = "fraud-detector",
) -> None:
    """Restore the champion that the current one replaced."""
    _change_champion(tracking_uri, model_name, lambda registry: registry.rollback(reason))


def _change_champion(tracking_uri: str | None, model_name: str, change) -> None:  # noqa: ANN001
    """Apply `change` to the registry and say where the alias went; registry errors exit 1."""
    from fraud_assets.modeling.registry import RegistryError

    registry = _registry(tracking_uri, model_name)
    before = registry.champion()
    try:
        now = change(registry)
    except RegistryError as e:
        err.print(f"[red]{e}")
        raise typer.Exit(1) from e
    was = f"v{before.version}" if before else "none"
    console.print(f"{model_name}: champion is now v{now} (was {was}).")
    _sync_lake_copy(registry)


def _sync_lake_copy(registry) -> None:  # noqa: ANN001 - a ModelRegistry
    """Batch runs score drift with the champion's copy in the lake: refresh it now."""
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.modeling.champion_snapshot import sync_champion
    from fraud_assets.settings import lake_url

    url = lake_url()
    try:
        sync_champion(registry, Lake(*filesystem_for(url)))
    except OSError as e:  # the lake may be out of reach from here; the sensor catches up
        err.print(f"[yellow]Champion copy in the lake ({url}) not refreshed: {e}")


def backtest(
    features_dir: Annotated[
        str, typer.Argument(help="Feature lake folder (`fraud features --out`) or its features/.")
    ],
    test_start: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of the first test fold.")
    ],
    train_days: Annotated[int, typer.Option(min=1, help="Training days per fold.")] = 28,
    delay_days: Annotated[int, typer.Option(min=0, help="Label delay in days.")] = 7,
    validation_days: Annotated[
        int, typer.Option(min=1, help="Days after training for early stopping and the threshold.")
    ] = 7,
    test_days: Annotated[int, typer.Option(min=1, help="Days per test fold.")] = 7,
    folds: Annotated[int, typer.Option(min=1, help="Consecutive test folds.")] = 1,
    imbalance: Annotated[
        str, typer.Option(help="none | class_weights | focal (CatBoost imbalance handling).")
    ] = "none",
    max_fpr: Annotated[float, typer.Option(help="FPR bound of the threshold policy.")] = 0.05,
    known_days: Annotated[
        int,
        typer.Option(
            min=0,
            help="Cards with a fraud in this many days before the label gap (and during it) are "
            "known compromised and left out; 7 is the handbook's protocol, 0 means every "
            "earlier fraud in the data.",
        ),
    ] = 7,
    predictions_out: Annotated[
        Path | None,
        typer.Option(help="Parquet of transaction_id and score for every test-day transaction."),
    ] = None,
    labels_dir: Annotated[
        Path | None,
        typer.Option(
            help="The scoring service's label log (FRAUD_LABEL_LOG_DIR): investigator labels, "
            "each used from the moment it became known."
        ),
    ] = None,
) -> None:
    """Walk-forward backtest: train as the challenger asset does, test on the following days.

    Prints a JSON line naming the card precision definition and the known-compromised rule,
    then one per fold and one with their mean: AUC ROC, average precision, card precision@100
    (handbook definition) and its strict variant, recall / FPR at the chosen threshold, and the
    recall per fraud scenario when the data has them. Cards already known compromised are left
    out of each test day's metrics (not of --predictions-out).
    """
    import polars as pl

    from fraud_assets.lake import FEATURES, Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.modeling.backtest import REPORTED, mean_of
    from fraud_assets.modeling.backtest import backtest as run_backtest
    from fraud_assets.modeling.metrics import (
        CARD_PRECISION_DEFINITION,
        CARD_PRECISION_STRICT_DEFINITION,
    )
    from fraud_assets.modeling.training import TrainingConfig

    root = Path(features_dir)
    root = root.parent if root.name == FEATURES and not (root / FEATURES).is_dir() else root
    features = Lake(*filesystem_for(str(root))).read_table(FEATURES)  # committed rows only
    if features.height == 0:
        err.print(f"[red]No committed features in the lake at {root} (run `fraud features`)")
        raise typer.Exit(2)
    config = TrainingConfig(validation_days=validation_days, imbalance=imbalance, max_fpr=max_fpr)
    labels = None
    if labels_dir is not None:
        from fraud_assets.features.feedback import label_events
        from fraud_assets.serving.labels import read_label_log

        if not labels_dir.is_dir():
            err.print(f"[red]--labels-dir {labels_dir} is not a folder")
            raise typer.Exit(2)
        labels = label_events(read_label_log(labels_dir))
        err.print(f"{labels.height} investigator labels with their known-at times")
    try:
        results = run_backtest(
            features, train_days, delay_days, test_start.date(), test_days, folds, config,
            known_days=known_days or None, labels=labels,
        )  # fmt: skip
    except ValueError as e:
        err.print(f"[red]{e}")
        raise typer.Exit(1) from e
    print(
        json.dumps(
            {
                "card_precision_at_100": CARD_PRECISION_DEFINITION,
                "card_precision_at_100_strict": CARD_PRECISION_STRICT_DEFINITION,
                "known_compromised": f"a fraud in the {known_days} days before the label gap "
                "or during it"
                if known_days
                else "any earlier fraud in the data",
            }
        )
    )
    for fold in results:
        line = {
            "fold": fold.fold,
            "test_start": fold.test_start.isoformat(),
            "test_end": fold.test_end.isoformat(),
            "train": f"{fold.window.train_start}..{fold.window.train_end}",
            "threshold": fold.threshold,
            "test_rows": fold.test_rows,
            "test_frauds": fold.test_frauds,
            "investigator_rows": fold.investigator_rows,
            **{k: _finite(fold.metrics[k]) for k in REPORTED if k in fold.metrics},
        }
        print(json.dumps(line))
    mean = mean_of(results)
    print(json.dumps({"fold": "mean", **{k: _finite(mean[k]) for k in REPORTED if k in mean}}))
    if predictions_out is not None:
        pl.concat([f.predictions for f in results]).select("transaction_id", "score").write_parquet(
            predictions_out
        )
        err.print(f"Predictions for every test-day transaction: {predictions_out}")


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
