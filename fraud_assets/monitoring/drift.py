"""Data drift of a batch against a reference, with Evidently's `DataDriftPreset` (0.7 API).

One Evidently report compares the batch's features, the champion's scores and the fraud label
(so the fraud share) with a reference window. Evidently picks each column's test itself: on a
reference of more than 1 000 rows a numerical column gets the normed Wasserstein distance and a
categorical one the Jensen-Shannon distance (both: drifted when >= 0.1); on smaller references
p-value tests (K-S, chi-square, Z) at 0.05. Distances do not shrink with sample size, which is
why large batches are compared on a sample: the verdict stays the same, the run gets faster.

The dataset verdict is Evidently's own rule: drifted when the share of drifted columns is at
least the share threshold (Evidently's default, 0.5).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from fraud_assets.features.spec import CALENDAR_FEATURES, FEATURE_COLUMNS
from fraud_assets.monitoring.drift_stats import column_drift

# Evidently's DataDriftPreset / DatasetDriftMetric default: dataset drift when >= 50 % of the
# columns drift (evidently.presets.drift.DataDriftPreset.drift_share = 0.5).
DEFAULT_DRIFT_SHARE = 0.5
# Evidently needs seconds on 50 k rows and minutes on millions; a deterministic sample this size
# estimates the distances well enough for a verdict.
DEFAULT_SAMPLE_ROWS = 50_000
# The model features plus the raw amount (the quantity every amount feature is built from).
MONITORED_FEATURES: list[str] = list(dict.fromkeys([*FEATURE_COLUMNS, "tx_amount"]))
WEEKEND_FLAG = "tx_during_weekend"


def monitored_columns(batch_days: int | None = None) -> list[str]:
    """The columns to compare for a batch spanning `batch_days` calendar days.

    A batch shorter than a week has the weekend share its dates give it (a Sunday batch is 100 %
    weekend): comparing that with a reference window flags drift that is only the calendar. So the
    weekend flag is compared only for batches of at least 7 days (or when the span is unknown).
    """
    if batch_days is not None and batch_days < 7:
        return [c for c in MONITORED_FEATURES if c != WEEKEND_FLAG]
    return list(MONITORED_FEATURES)


def days_spanned(frame: pl.DataFrame, time_column: str = "tx_datetime") -> int | None:
    """Number of distinct calendar days in the frame (None without a timestamp column)."""
    if time_column not in frame.columns or frame.height == 0:
        return None
    return frame[time_column].dt.date().n_unique()


_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
SCORE = "score"  # the champion's fraud probability, compared like a feature
_ROW = "__row"
Scorer = Callable[[pl.DataFrame], np.ndarray]


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str  # Evidently's test, e.g. "Wasserstein distance (normed)", "K-S p_value"
    score: float  # a p-value (drifted when below the threshold) or a distance (when at/above)
    threshold: float
    drifted: bool

    @property
    def is_p_value(self) -> bool:
        return "p_value" in self.method


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    drift_share: float  # share of the compared columns that drifted
    drifted: bool  # the verdict: drift_share >= share_threshold
    share_threshold: float = DEFAULT_DRIFT_SHARE
    reference_rows: int = 0  # rows compared, after sampling
    current_rows: int = 0
    # Requested columns left out because one side has no value at all (Evidently cannot test them).
    skipped: list[str] = field(default_factory=list)
    html: str = field(default="", repr=False)  # the full, standalone Evidently HTML report

    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_markdown(self) -> str:
        lines = [
            "| column | test | score | threshold | drifted |",
            "|---|---|---:|---:|---|",
        ]
        for c in self.columns:
            lines.append(
                f"| {c.column} | {c.method} | {_fmt(c.score)} | {_fmt(c.threshold)} | "
                f"{'**yes**' if c.drifted else 'no'} |"
            )
        n = len(self.drifted_columns())
        verdict = "**drifted**" if self.drifted else "not drifted"
        lines += [
            "",
            f"Drifted columns: {n} of {len(self.columns)} ({self.drift_share:.1%}); the batch "
            f"counts as drifted from {self.share_threshold:.0%}: {verdict}. "
            f"Compared {self.current_rows:,} current with {self.reference_rows:,} reference rows.",
        ]
        if self.skipped:
            lines.append(f"Not compared (no values on one side): {', '.join(self.skipped)}.")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Everything but the HTML, JSON-ready (for metadata or a sidecar file)."""
        out = asdict(self)
        del out["html"]
        out["drifted_columns"] = self.drifted_columns()
        return out


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.3f}"


def sample(frame: pl.DataFrame, rows: int | None, seed: int = 0) -> pl.DataFrame:
    """At most `rows` rows, the same ones for the same frame and seed (None: all rows)."""
    if rows is None or frame.height <= rows:
        return frame
    return frame.sample(n=rows, seed=seed)


@dataclass(frozen=True)
class DriftInputs:
    """Both sides as compared: sampled, only the tested columns, typed."""

    reference: pl.DataFrame
    current: pl.DataFrame
    numerical: list[str]
    categorical: list[str]
    skipped: list[str]
    # Per column, what depends on the reference sample alone (drift_stats.column_drift's memo);
    # kept with a remembered reference sample, None when the sample is not remembered.
    memos: dict[str, dict] | None = None

    @property
    def columns(self) -> list[str]:
        return [c for c in self.reference.columns if c in self.numerical or c in self.categorical]


def drift_inputs(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str] | None = None,
    score_column: str | None = "score",
    label_column: str | None = "tx_fraud",
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    categorical: list[str] | None = None,
    scorer: Scorer | None = None,
    reference_samples: dict | None = None,
) -> DriftInputs:
    """What `drift_report` compares: see there for the arguments.

    `reference_samples`, a dict the caller keeps per reference, remembers the reference's sample
    (and its scores), so batches judged against the same reference sample and score it once.
    """
    if columns is None:
        columns = monitored_columns(days_spanned(current))
    columns = list(columns)
    missing = {
        name: [c for c in columns if c not in frame.columns]
        for name, frame in (("reference", reference), ("current", current))
    }
    if any(missing.values()):
        raise ValueError(
            "drift columns missing: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items() if v)
        )
    for extra in (score_column, label_column):
        if (
            extra is not None
            and extra not in columns
            and extra in reference.columns
            and extra in current.columns
        ):
            columns.append(extra)
    if reference.height == 0 or current.height == 0:
        raise ValueError(
            f"cannot compare an empty frame (reference {reference.height} rows, "
            f"current {current.height} rows)"
        )
    key = (tuple(columns), sample_rows, seed, scorer is not None)
    memos = None
    if reference_samples is not None and key in reference_samples:
        ref, memos = reference_samples[key]
    else:
        ref = _sampled(reference, columns, sample_rows, seed, scorer)
        if reference_samples is not None:
            memos = {}
            reference_samples[key] = (ref, memos)
    cur = _sampled(current, columns, sample_rows, seed, scorer)
    if scorer is not None and SCORE not in columns:
        columns.append(SCORE)
    skipped = [c for c in columns if _no_values(ref[c]) or _no_values(cur[c])]
    columns = [c for c in columns if c not in skipped]
    if not columns:
        raise ValueError("no column has values on both sides: nothing to compare")

    cat_names = set(CALENDAR_FEATURES if categorical is None else categorical)
    if categorical is None and label_column is not None:
        cat_names.add(label_column)
    for c in columns:
        if ref.schema[c] in (pl.String, pl.Boolean, pl.Categorical) or isinstance(
            ref.schema[c], pl.Enum
        ):
            cat_names.add(c)
    return DriftInputs(
        reference=ref.select(columns),
        current=cur.select(columns),
        numerical=[c for c in columns if c not in cat_names],
        categorical=[c for c in columns if c in cat_names],
        skipped=skipped,
        memos=memos,
    )


def _sampled(
    frame: pl.DataFrame,
    columns: list[str],
    rows: int | None,
    seed: int,
    scorer: Scorer | None,
) -> pl.DataFrame:
    """The sample of `frame`'s columns, with the model's score of the sampled rows when asked.

    Which rows a sample takes depends only on the frame's height and the seed, so scoring the
    sampled rows gives what scoring every row and then sampling gave, at a fraction of the cost.
    """
    if scorer is None:
        return sample(frame.select(columns), rows, seed)
    picked = sample(frame.with_row_index(_ROW).select([_ROW, *columns]), rows, seed)
    scores = scorer(frame[picked[_ROW]])
    return picked.drop(_ROW).with_columns(pl.Series(SCORE, scores, dtype=pl.Float64))


def _no_values(column: pl.Series) -> bool:
    """Nothing Evidently could test: only nulls, NaN or infinities."""
    if column.dtype.is_float():
        return column.is_finite().sum() == 0
    return column.null_count() == column.len()


def drift_statistics(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str] | None = None,
    score_column: str | None = "score",
    label_column: str | None = "tx_fraud",
    share_threshold: float = DEFAULT_DRIFT_SHARE,
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    categorical: list[str] | None = None,
    scorer: Scorer | None = None,
    reference_samples: dict | None = None,
) -> DriftResult:
    """The verdict and per-column table of `drift_report`, without Evidently (milliseconds).

    Same inputs, tests, thresholds and verdict as the Evidently report (drift_stats.py); only the
    HTML is missing: render it with `drift_report` when someone asks for it.
    """
    inputs = drift_inputs(
        reference,
        current,
        columns,
        score_column,
        label_column,
        sample_rows,
        seed,
        categorical,
        scorer,
        reference_samples,
    )
    per_column = []
    for name in inputs.columns:
        memo = inputs.memos.setdefault(name, {}) if inputs.memos is not None else {}
        if "values" not in memo:
            memo["values"] = _values(inputs.reference[name])
        test = column_drift(
            memo["values"],
            _values(inputs.current[name]),
            categorical=name in inputs.categorical,
            memo=memo,
        )
        per_column.append(ColumnDrift(name, test.method, test.score, test.threshold, test.drifted))
    return _result(per_column, inputs, share_threshold, html="")


def _values(column: pl.Series) -> np.ndarray:
    return column.drop_nulls().to_numpy()


def drift_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str] | None = None,
    score_column: str | None = "score",
    label_column: str | None = "tx_fraud",
    share_threshold: float = DEFAULT_DRIFT_SHARE,
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    categorical: list[str] | None = None,
    scorer: Scorer | None = None,
) -> DriftResult:
    """Compare `current` with `reference` column by column with Evidently's DataDriftPreset, and
    render the full HTML report.

    `columns` (default: `monitored_columns` for the days `current` spans) must exist in both
    frames. `score_column` and `label_column` are added when both frames have them (the label's
    drift is the fraud share's). `categorical` columns (default: the calendar flags, the label,
    and any string/boolean column) get categorical tests; every other column is numerical. Both
    frames are sampled to at most `sample_rows` rows, deterministically from `seed`. A `scorer`
    (feature rows -> fraud probability) adds the model's score of the sampled rows as a column.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    inputs = drift_inputs(
        reference,
        current,
        columns,
        score_column,
        label_column,
        sample_rows,
        seed,
        categorical,
        scorer,
    )
    columns = inputs.columns
    definition = DataDefinition(
        numerical_columns=inputs.numerical, categorical_columns=inputs.categorical
    )
    # pandas, because that is what Evidently computes on; only the compared columns travel.
    ref_ds = Dataset.from_pandas(inputs.reference.to_pandas(), data_definition=definition)
    cur_ds = Dataset.from_pandas(inputs.current.to_pandas(), data_definition=definition)

    report = Report(
        [DataDriftPreset(columns=columns, drift_share=share_threshold)], include_tests=True
    )
    with warnings.catch_warnings():  # constant columns make Evidently's correlations divide by 0
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(cur_ds, ref_ds)
    results = _column_results(snapshot.dict())
    # get_html_str, not save_html: save_html silently writes nothing when given a file object,
    # and the lake may be S3.
    html = snapshot.get_html_str(as_iframe=False)
    return _result([results[c] for c in columns], inputs, share_threshold, html)


def _result(
    per_column: list[ColumnDrift], inputs: DriftInputs, share_threshold: float, html: str
) -> DriftResult:
    share = sum(c.drifted for c in per_column) / len(per_column)
    return DriftResult(
        columns=per_column,
        drift_share=share,
        drifted=share >= share_threshold,
        share_threshold=share_threshold,
        reference_rows=inputs.reference.height,
        current_rows=inputs.current.height,
        skipped=inputs.skipped,
        html=html,
    )


def _column_results(snapshot: dict) -> dict[str, ColumnDrift]:
    """Per-column drift from Evidently's snapshot dict: ValueDrift metrics hold the test, the
    score and the threshold; their tests (FAIL = drift detected) hold Evidently's decision."""
    failed: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == _VALUE_DRIFT:
            failed[params["column"]] = test["status"] == "FAIL"
    out: dict[str, ColumnDrift] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if config.get("type") != _VALUE_DRIFT:
            continue
        name, method = config["column"], str(config.get("method"))
        score, threshold = float(metric["value"]), float(config["threshold"])
        drifted = failed.get(name)
        if drifted is None:  # no test result: apply the test's own direction
            drifted = score < threshold if "p_value" in method else score >= threshold
        out[name] = ColumnDrift(name, method, score, threshold, bool(drifted))
    return out
