"""Model selection, training and champion–challenger review as assets: thin wrappers around
fraud_assets.modeling."""

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, MODELS_TEAM, tags
from fraud_assets.defs.keys import FEATURES as FEATURES_KEY
from fraud_assets.defs.pools import TRAINING_POOL
from resources.models import ModelStore, ModelTraining
from resources.storage import LakeStore

if TYPE_CHECKING:  # CatBoost, MLflow and Polars load in the run that trains, not at import
    import polars as pl

    from fraud_assets.lake import Lake

TRIGGER_TAG = "fraud/trigger"  # why a training run was requested (new batches, drift)


def latest_features(lake: "Lake", days: int) -> "tuple[pl.DataFrame, dt.date]":
    """The lake's newest labelled feature rows; an empty lake fails the step, named."""
    from fraud_assets.batch.training_data import NoFeatureBatchesError
    from fraud_assets.batch.training_data import latest_features as read

    try:
        return read(lake, days)
    except NoFeatureBatchesError as e:
        raise dg.Failure(description=str(e), allow_retries=False) from e


class SelectionConfig(dg.Config):
    """What `model_selection` searches; each list is one setting's candidate values."""

    budget_seconds: float = 600.0  # stop starting candidates after this (one may overrun it)
    folds: int = 3  # prequential weekly folds, the newest labelled weeks
    metric: str = "average_precision"  # mean over the folds; the best wins
    seed: int = 0  # order of the candidates after the default one
    window_days: list[int] = [14, 28, 56]
    imbalance: list[str] = ["none", "class_weights"]
    depth: list[int] = [4, 6, 8]
    learning_rate: list[float] = [0.05, 0.1, 0.2]
    l2_leaf_reg: list[float] = [1.0, 3.0, 10.0]
    border_count: list[int] = [32, 64, 254]
    amount_border_count: list[int] = [0, 1024, 4096]  # tx_amount's own bins; 0: border_count

    def grid(self) -> dict[str, list]:
        from fraud_assets.modeling.selection import SEARCHED

        return {key: list(getattr(self, key)) for key in SEARCHED}


@dg.asset(
    deps=[dg.AssetDep(FEATURES_KEY, partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    kinds={"catboost", "mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("models", "none"),
    code_version=CODE_VERSIONS["model_selection"],
    pool=TRAINING_POOL,
    description=(
        "Prequential model selection: candidate settings (training window, class weighting, "
        "CatBoost depth, learning rate, L2, bins, the amount's bins) are each trained and tested "
        "on the newest labelled weeks as production would, within a time budget; one MLflow "
        "parent run with a child per candidate. `challenger_model` trains with the winner's "
        "settings."
    ),
)
def model_selection(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    from fraud_assets.modeling.selection import select
    from fraud_assets.modeling.selection_log import SelectionLog

    base = model_training.training()
    grid = config.grid()
    longest = max(grid["window_days"] or [base.window_days])
    days = config.folds * 7 + 2 * base.delay_days + base.validation_days + longest
    features, data_end = latest_features(lake.lake(), days)
    log = SelectionLog(
        models.registry(), f"selection-{data_end}", {"dagster_run_id": context.run_id}
    )

    def logged(result) -> None:  # noqa: ANN001 - a CandidateResult
        log.candidate(result)
        shown = result.mean.get(config.metric, float("nan"))
        context.log.info(
            f"candidate {result.number} {result.settings}: {config.metric} {shown:.4f}"
        )

    try:
        result = select(
            features, data_end, base, grid, folds=config.folds,
            budget_seconds=config.budget_seconds, metric=config.metric, seed=config.seed,
            on_candidate=logged,
        )  # fmt: skip
        settings = log.finish(result)
    except ValueError as e:
        log.fail()
        raise dg.Failure(description=str(e), allow_retries=False) from e
    rows = [
        f"| {c.number} | {c.settings} | {c.mean.get(config.metric, float('nan')):.4f} | "
        f"{c.mean.get('auc_roc', float('nan')):.4f} | "
        f"{c.mean.get('card_precision_at_100', float('nan')):.4f} | {c.seconds:.0f} |"
        for c in sorted(result.candidates, key=lambda c: -c.mean.get(config.metric, -1.0))
    ]
    table = (
        f"| # | settings | mean {config.metric} | mean AUC | mean card precision@100 "
        "(handbook) | s |\n|---|---|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    return dg.MaterializeResult(
        metadata={
            "winner": dg.MetadataValue.json(settings),
            f"winner_mean_{config.metric}": result.winner.mean[config.metric],
            "candidates_tried": len(result.candidates),
            "fold_starts": ", ".join(d.isoformat() for d in result.fold_starts),
            "seconds": result.seconds,
            "mlflow_parent_run_id": log.parent,
            "candidates": dg.MetadataValue.md(table),
        }
    )


def selected_training(models: ModelStore, model_training: ModelTraining):  # noqa: ANN201
    """(TrainingConfig, where its settings came from): the newest model selection's winner
    over the configured settings, or the configured settings alone."""
    from fraud_assets.modeling.selection_log import selected_settings

    base = model_training.training()
    found = selected_settings(models.registry())
    if found is None:
        return base, "configured settings (no model selection run yet)", None
    settings, run_id, folds = found
    return dataclasses.replace(base, **settings), f"model selection run {run_id}", folds


@dg.asset(
    deps=[dg.AssetDep(FEATURES_KEY, partition_mapping=dg.AllPartitionMapping()), model_selection],
    group_name="models",
    kinds={"catboost", "mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("models", "none"),
    code_version=CODE_VERSIONS["challenger_model"],
    pool=TRAINING_POOL,
    description=(
        "A CatBoost model trained on a rolling window of feature batches (labels older than the "
        "delay only), with the newest model selection's winning settings, logged to MLflow with "
        "its model card and registered as a new version with alias `challenger`."
    ),
)
def challenger_model(
    context: dg.AssetExecutionContext,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    import polars as pl

    from fraud_assets.modeling.model_card import build_card, render
    from fraud_assets.modeling.review import training_end
    from fraud_assets.modeling.training import train_model

    training, source, folds = selected_training(models, model_training)
    review = model_training.review()
    days = training.window_days + training.validation_days + review.delay_days + review.review_days
    features, data_end = latest_features(lake.lake(), days)
    until = training_end(data_end, review)
    if training.feedback_features:
        from fraud_assets.features.feedback import FEEDBACK_FEATURES

        if not set(FEEDBACK_FEATURES) <= set(features.columns):
            raise dg.Failure(
                description="feedback_features is on, but the lake has no feedback_features "
                "rows for the training dates: materialize that asset for those batches first",
                allow_retries=False,
            )
    try:
        trained = train_model(features, until, training)
    except ValueError as e:  # not enough data, a missing day, no fraud: say which
        raise dg.Failure(description=str(e), allow_retries=False) from e
    window = trained.window
    used = features.filter(
        pl.col("tx_datetime").dt.date().is_between(window.train_start, window.valid_end)
    )
    batches = sorted(used["batch_id"].unique().to_list())
    card = build_card(trained, batches, source, folds)
    version = models.registry().log_challenger(
        trained,
        tags={
            "dagster_run_id": context.run_id,
            "dagster_partitions": ",".join(batches)[:4000],
            "trigger": context.run.tags.get(TRIGGER_TAG, "manual"),
            "settings_from": source,
        },
        card=card,
    )
    metrics = trained.validation_metrics
    context.log.info(
        f"Registered {version.name} v{version.version} as challenger: validation AP "
        f"{metrics['average_precision']:.4f}, threshold {trained.threshold.threshold:.4f}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version.version,
            "mlflow_run_id": version.run_id or "",
            "threshold": trained.threshold.threshold,
            "threshold_policy": str(trained.threshold.policy),
            "train_window": f"{window.train_start} .. {window.train_end}",
            "validation_window": f"{window.valid_start} .. {window.valid_end}",
            "dagster/row_count": window.rows,
            "batches": len(batches),
            "best_iteration": trained.best_iteration,
            "settings_from": source,
            "model_card": dg.MetadataValue.md(render(card, f"v{version.version}")),
            **{f"validation_{k}": float(metrics[k]) for k in _HEADLINE if k in metrics},
        }
    )


_HEADLINE = ("auc_roc", "average_precision", "card_precision_at_100", "recall", "fpr", "f_beta")


@dg.asset(
    deps=[challenger_model],
    group_name="models",
    kinds={"mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("models", "none"),
    code_version=CODE_VERSIONS["champion_review"],
    pool=TRAINING_POOL,
    description=(
        "Scores champion and challenger on the same newest labelled rows; a paired bootstrap of "
        "the metric difference decides; the alias `champion` moves only when the whole interval "
        "is above 0. The first model becomes champion."
    ),
)
def champion_review(
    context: dg.AssetExecutionContext,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    from fraud_assets.modeling.champion_snapshot import sync_champion
    from fraud_assets.modeling.review import ReviewError, apply_review, review_challenger

    registry, store = models.registry(), lake.lake()
    try:
        outcome = review_challenger(
            registry, model_training.review(), lambda days: latest_features(store, days)
        )
    except ReviewError as e:  # no challenger, or no rows both classes to compare on
        raise dg.Failure(description=str(e), allow_retries=False) from e
    if outcome.unchanged:
        return dg.MaterializeResult(
            metadata={"decision": "no change", "reason": outcome.decision.reason}
        )
    apply_review(registry, outcome)
    sync_champion(registry, store)  # batch runs score drift with the lake's copy
    context.log.info(outcome.decision.reason)
    after = registry.champion()
    return dg.MaterializeResult(
        metadata={
            **outcome.metadata(),
            "champion_version_after": after.version if after else "none",
        }
    )


train_and_review_job = dg.define_asset_job(
    "train_and_review",
    selection=dg.AssetSelection.assets(challenger_model, champion_review),
    description="Train a challenger on the newest feature window, then review it against the "
    "champion (promote only when significantly better).",
)


model_selection_job = dg.define_asset_job(
    "select_model",
    selection=dg.AssetSelection.assets(model_selection),
    description="Search training settings by prequential validation within the time budget; "
    "the next challenger_model trains with the winner's.",
)
