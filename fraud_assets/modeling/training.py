"""Train the CatBoost fraud model on a time window that respects the label delay (docs/models.md).

Fraud labels arrive late: a transaction's label is trusted only `delay_days` after it happened. So,
for data whose last date is `end`, the newest `delay_days` days are never used, and the labelled
days before them are cut by time, never at random:

    ... | train: window_days | validation: validation_days | label gap: delay_days (unused) |
                                                            ^ labels_end                    ^ end

The validation slice is later than every training day, as production data is later than the model:
it drives early stopping and the choice of the operating threshold, which travels with the model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import catboost
import numpy as np
import pandas as pd
import polars as pl
from catboost import CatBoostClassifier, Pool

from fraud_assets.features.feedback import FEEDBACK_FEATURES
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.modeling.metrics import scenario_recall, summary
from fraud_assets.modeling.threshold import (
    DEFAULT_DAILY_BUDGET,
    ThresholdChoice,
    ThresholdPolicy,
    choose_threshold,
    review_threshold_for_budget,
)

LABEL = "tx_fraud"
TX_DATE = pl.col("tx_datetime").dt.date()
DAY = dt.timedelta(days=1)
EXAMPLE_ROWS = 5


class Imbalance(StrEnum):
    """How training answers the ~1 % fraud rate."""

    NONE = "none"
    """Plain log loss: probabilities stay calibrated; the threshold handles the imbalance."""
    CLASS_WEIGHTS = "class_weights"
    """CatBoost `auto_class_weights="Balanced"`: both classes weigh the same in total."""
    FOCAL = "focal"
    """Focal loss (alpha 0.25, gamma 2): easy, confidently right rows weigh less."""


FOCAL_LOSS = "Focal:focal_alpha=0.25;focal_gamma=2"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a trained model, so a run can be repeated and logged."""

    window_days: int = 28
    delay_days: int = 7
    validation_days: int = 7
    imbalance: Imbalance = Imbalance.NONE
    # Fast enough for 1 M rows in about a minute on 2 cores (BENCHMARKS.md, issue 20): a larger
    # step with fewer iterations, early stopping after 30 without progress, 64 bins a feature.
    iterations: int = 250
    learning_rate: float = 0.2
    depth: int = 6
    early_stopping_rounds: int = 30
    seed: int = 42
    threads: int = 2
    threshold_policy: ThresholdPolicy = ThresholdPolicy.MAX_RECALL_AT_FPR
    max_fpr: float = 0.05
    border_count: int = 64
    """Histogram bins per feature; fewer bins make each iteration cheaper (CatBoost CPU: 254)."""
    amount_border_count: int = 4096
    """Bins for `tx_amount` alone (0: `border_count`). An amount limit (the simulator's scenario
    1: above 220) needs a split right at it: with 64 bins the nearest one sat several units away
    and genuine amounts just below the limit scored as frauds. The other features keep 64."""
    l2_leaf_reg: float = 3.0
    features: tuple[str, ...] = tuple(FEATURE_COLUMNS)
    """The model inputs, a subset of `spec.FEATURE_COLUMNS` in that order by default."""
    review_budget: int = DEFAULT_DAILY_BUDGET  # cards a day the review band is sized to
    feedback_features: bool = False  # also train on FEEDBACK_FEATURES (features/feedback.py)

    def feature_columns(self) -> list[str]:
        """`features`, then FEEDBACK_FEATURES when `feedback_features` is on."""
        return list(self.features) + (list(FEEDBACK_FEATURES) if self.feedback_features else [])

    def __post_init__(self) -> None:
        # Accept plain strings (from Dagster config or the CLI) but keep the enums afterwards.
        object.__setattr__(self, "imbalance", Imbalance(self.imbalance))
        object.__setattr__(self, "threshold_policy", ThresholdPolicy(self.threshold_policy))
        names = tuple(self.features.split(",") if isinstance(self.features, str) else self.features)
        unknown = [n for n in names if n not in FEATURE_COLUMNS]
        if unknown or not names:
            raise ValueError(
                f"features must be a non-empty subset of {FEATURE_COLUMNS}; unknown: {unknown}"
            )
        object.__setattr__(self, "features", names)
        if self.window_days < 1 or self.validation_days < 1 or self.delay_days < 0:
            raise ValueError(
                "window_days and validation_days must be >= 1 and delay_days >= 0, got "
                f"{self.window_days}, {self.validation_days}, {self.delay_days}"
            )

    def catboost_params(self) -> dict[str, Any]:
        """CatBoost constructor arguments: seeded, thread-bounded, writing no files."""
        params: dict[str, Any] = {
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "depth": self.depth,
            "border_count": self.border_count,
            "l2_leaf_reg": self.l2_leaf_reg,
            "early_stopping_rounds": self.early_stopping_rounds,
            "use_best_model": True,
            "random_seed": self.seed,
            "thread_count": self.threads,
            "allow_writing_files": False,
            "verbose": False,
        }
        names = self.feature_columns()
        if self.amount_border_count and "tx_amount" in names:
            index = names.index("tx_amount")
            params["per_float_feature_quantization"] = [
                f"{index}:border_count={self.amount_border_count}"
            ]
        if self.imbalance is Imbalance.CLASS_WEIGHTS:
            params["auto_class_weights"] = "Balanced"
        elif self.imbalance is Imbalance.FOCAL:
            params["loss_function"] = FOCAL_LOSS
        else:
            params["loss_function"] = "Logloss"
        return params


@dataclass(frozen=True)
class TrainingWindow:
    """The dates a model learnt from (inclusive bounds) and how much fraud they held."""

    train_start: dt.date
    train_end: dt.date
    valid_start: dt.date
    valid_end: dt.date
    rows: int  # training rows
    frauds: int  # training frauds
    valid_rows: int = 0
    valid_frauds: int = 0
    data_end: dt.date | None = None  # last date of the data; (valid_end, data_end] is the gap

    def as_params(self) -> dict[str, str]:
        """Flat strings for MLflow params and Dagster metadata."""
        return {f"window_{k}": str(v) for k, v in asdict(self).items()}


@dataclass
class TrainedModel:
    """A fitted model with everything that must travel with it to the registry and serving."""

    model: CatBoostClassifier
    feature_names: list[str]
    threshold: ThresholdChoice
    window: TrainingWindow
    validation_metrics: dict[str, float]  # metrics.summary at the threshold, validation slice
    best_iteration: int
    params: dict[str, Any] = field(default_factory=dict)
    input_example: pl.DataFrame | None = None  # a few validation rows of the model inputs
    # Scores in [review_threshold, threshold) go to the investigators' queue; sized on the
    # validation slice to the daily budget (`threshold.review_threshold_for_budget`).
    review_threshold: float | None = None


def training_window_bounds(
    end: dt.date, config: TrainingConfig
) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """(train_start, train_end, valid_start, valid_end) for data ending on `end`, inclusive."""
    valid_end = end - config.delay_days * DAY
    valid_start = valid_end - (config.validation_days - 1) * DAY
    train_end = valid_start - DAY
    train_start = train_end - (config.window_days - 1) * DAY
    return train_start, train_end, valid_start, valid_end


def split_window(
    features: pl.DataFrame, end: dt.date, config: TrainingConfig = TrainingConfig()
) -> tuple[pl.DataFrame, pl.DataFrame, TrainingWindow]:
    """Cut the labelled days before the label gap into train and a later validation slice.

    Raises ValueError, naming the dates, when the data does not cover the whole window (a day
    without any transaction means a batch is missing) or when a slice holds no fraud.
    """
    train_start, train_end, valid_start, valid_end = training_window_bounds(end, config)
    need = f"{train_start}..{valid_end} (train {train_start}..{train_end}, validation "
    need += f"{valid_start}..{valid_end}, label gap {valid_end + DAY}..{end})"
    if features.height == 0:
        raise ValueError(f"No feature rows at all: training for data ending {end} needs {need}.")
    day = TX_DATE
    first, last = features.select(day.min().alias("a"), day.max().alias("b")).row(0)
    if first > train_start or last < valid_end:
        raise ValueError(
            f"Not enough data to train for data ending {end}: need days {need}, "
            f"but the features cover {first}..{last}."
        )
    in_window = features.filter(day.is_between(train_start, valid_end)).sort(
        "tx_datetime", "transaction_id"
    )
    present = set(in_window.select(day.unique()).to_series().to_list())
    missing = [
        train_start + i * DAY
        for i in range((valid_end - train_start).days + 1)
        if train_start + i * DAY not in present
    ]
    if missing:
        shown = ", ".join(d.isoformat() for d in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(
            f"Days without feature rows inside the training window {need}: {shown}{more}. "
            "Compute the features of the batches covering them first."
        )
    train = in_window.filter(day <= train_end)
    valid = in_window.filter(day >= valid_start)
    for name, part, lo, hi in (
        ("training", train, train_start, train_end),
        ("validation", valid, valid_start, valid_end),
    ):
        if int(part[LABEL].sum()) == 0:
            raise ValueError(
                f"No fraud in the {name} slice {lo}..{hi} ({part.height} rows): a model or a "
                "threshold cannot be learnt from it; widen the window or wait for more data."
            )
    window = TrainingWindow(
        train_start=train_start,
        train_end=train_end,
        valid_start=valid_start,
        valid_end=valid_end,
        rows=train.height,
        frauds=int(train[LABEL].sum()),
        valid_rows=valid.height,
        valid_frauds=int(valid[LABEL].sum()),
        data_end=end,
    )
    return train, valid, window


def _matrix(frame: pl.DataFrame | pd.DataFrame, names: list[str]) -> np.ndarray:
    """The model inputs as float64 in the model's own column order; missing ones are named."""
    columns = list(frame.columns)
    absent = [n for n in names if n not in columns]
    if absent:
        raise ValueError(f"Frame lacks model input columns: {', '.join(absent)}")
    if isinstance(frame, pd.DataFrame):
        return frame[names].to_numpy(dtype=np.float64)
    return frame.select(names).to_numpy().astype(np.float64, copy=False)


def _pool(frame: pl.DataFrame, names: list[str] | None = None) -> Pool:
    names = names or list(FEATURE_COLUMNS)
    return Pool(_matrix(frame, names), label=frame[LABEL].to_numpy(), feature_names=names)


def train_model(
    features: pl.DataFrame,
    end: dt.date,
    config: TrainingConfig = TrainingConfig(),
    extra_train: pl.DataFrame | None = None,
) -> TrainedModel:
    """Fit CatBoost on the training days, early-stop and pick the threshold on validation.

    `extra_train`: more training rows, e.g. rows inside the label gap that investigators have
    labelled already (`known_labels.gap_rows_with_known_labels`). With
    `config.feedback_features` the model also takes FEEDBACK_FEATURES (the frame must hold them).

    The same data, config and seed give the same model: rows are sorted by time and id first, and
    CatBoost runs seeded with a fixed thread count.
    """
    train, valid, window = split_window(features, end, config)
    if extra_train is not None and extra_train.height:
        train = pl.concat([train, extra_train.select(train.columns)], how="vertical_relaxed")
    names = config.feature_columns()
    params = config.catboost_params()
    model = CatBoostClassifier(**params)
    model.fit(_pool(train, names), eval_set=_pool(valid, names))
    valid_score = score(model, valid)
    y = valid[LABEL].to_numpy()
    amount = valid["tx_amount"].to_numpy()
    choice = choose_threshold(
        y, valid_score, policy=config.threshold_policy, max_fpr=config.max_fpr, amount=amount
    )
    review = review_threshold_for_budget(
        valid_score,
        valid["customer_id"].to_numpy(),
        valid.select(TX_DATE).to_series().to_numpy(),
        budget=config.review_budget,
        block_threshold=choice.threshold,
    )
    metrics = summary(
        y,
        valid_score,
        choice.threshold,
        day=valid.select(TX_DATE).to_series(),
        card=valid["customer_id"],
        amount=amount,
    )
    if "tx_fraud_scenario" in valid.columns:  # simulator data: which fraud patterns are caught
        metrics |= scenario_recall(
            valid["tx_fraud_scenario"].to_numpy(), valid_score, choice.threshold
        )
    settings = asdict(config)
    settings["features"] = ",".join(config.features)
    restated = {"random_seed", "thread_count", "verbose", "allow_writing_files"}  # in settings
    logged = {
        **settings,
        **{k: v for k, v in params.items() if k not in settings and k not in restated},
        "catboost_version": catboost.__version__,
    }
    return TrainedModel(
        model=model,
        feature_names=names,
        threshold=choice,
        window=window,
        validation_metrics=metrics,
        best_iteration=int(model.get_best_iteration() or 0),
        params={k: str(v) for k, v in logged.items()},
        input_example=valid.select(names).head(EXAMPLE_ROWS),
        review_threshold=review,
    )


def score(
    model: CatBoostClassifier | TrainedModel, frame: pl.DataFrame | pd.DataFrame
) -> np.ndarray:
    """Fraud probabilities, one per row, using the columns the model was trained on."""
    cb = model.model if isinstance(model, TrainedModel) else model
    names = list(cb.feature_names_) if cb.feature_names_ else list(FEATURE_COLUMNS)
    return cb.predict_proba(_matrix(frame, names))[:, 1]
