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
from dataclasses import asdict, dataclass, field

import polars as pl

from fraud_assets.features.spec import CALENDAR_FEATURES, FEATURE_COLUMNS

# Evidently's DataDriftPreset / DatasetDriftMetric default: dataset drift when >= 50 % of the
# columns drift (evidently.presets.drift.DataDriftPreset.drift_share = 0.5).
DEFAULT_DRIFT_SHARE = 0.5
# Evidently needs seconds on 50 k rows and minutes on millions; a deterministic sample this size
# estimates the distances well enough for a verdict.
DEFAULT_SAMPLE_ROWS = 50_000
# The model features plus the raw amount (the quantity every amount feature is built from).
MONITORED_FEATURES: list[str] = [*FEATURE_COLUMNS, "tx_amount"]
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
) -> DriftResult:
    """Compare `current` with `reference` column by column with Evidently's DataDriftPreset.

    `columns` (default: `monitored_columns` for the days `current` spans) must exist in both
    frames. `score_column` and
    `label_column` are added when both frames have them (the label's drift is the fraud share's).
    `categorical` columns (default: the calendar flags, the label, and any string/boolean column)
    get categorical tests; every other column is numerical. Both frames are sampled to at most
    `sample_rows` rows, deterministically from `seed`.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

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
    ref = sample(reference.select(columns), sample_rows, seed)
    cur = sample(current.select(columns), sample_rows, seed)
    skipped = [
        c for c in columns if ref[c].null_count() == ref.height or cur[c].null_count() == cur.height
    ]
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
    cat = [c for c in columns if c in cat_names]
    num = [c for c in columns if c not in cat_names]
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    # pandas, because that is what Evidently computes on; only the compared columns travel.
    ref_ds = Dataset.from_pandas(ref.select(columns).to_pandas(), data_definition=definition)
    cur_ds = Dataset.from_pandas(cur.select(columns).to_pandas(), data_definition=definition)

    report = Report(
        [DataDriftPreset(columns=columns, drift_share=share_threshold)], include_tests=True
    )
    with warnings.catch_warnings():  # constant columns make Evidently's correlations divide by 0
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(cur_ds, ref_ds)
    results = _column_results(snapshot.dict())
    per_column = [results[c] for c in columns]
    share = sum(c.drifted for c in per_column) / len(per_column)
    return DriftResult(
        columns=per_column,
        drift_share=share,
        drifted=share >= share_threshold,
        share_threshold=share_threshold,
        reference_rows=ref.height,
        current_rows=cur.height,
        skipped=skipped,
        # get_html_str, not save_html: save_html silently writes nothing when given a file
        # object, and the lake may be S3.
        html=snapshot.get_html_str(as_iframe=False),
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
