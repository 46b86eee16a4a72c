"""A batch's outcome as Dagster events: its own materializations and check results per asset.

The metadata of a batch depends only on that batch (never on the range it ran in), so any split
of a backfill into runs shows the same figures for each batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dagster as dg

from fraud_assets.batch.ranges import BatchOutcome, CleanSummary, DriftSummary, FeatureSummary
from fraud_assets.batch.schemas import (
    QuarantinedTransactions,
    TableSchema,
    TransactionFeatures,
    clean_transactions_schema,
)
from fraud_assets.defs.keys import CLEAN, DRIFT, FEATURES, QUARANTINE, RAW
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.monitoring.drift import DriftResult
from fraud_assets.monitoring.quality import QualityResult
from fraud_assets.monitoring.report_links import report_url

Event = dg.AssetMaterialization | dg.AssetCheckEvaluation


def events_for(
    outcome: BatchOutcome,
    assets: set[dg.AssetKey],
    checks: set[dg.AssetCheckKey],
    display_path: Callable[[str], str],
) -> Iterator[Event]:
    batch = outcome.batch_id

    def materialized(key: dg.AssetKey, metadata: dict) -> Iterator[Event]:
        if key in assets:
            yield dg.AssetMaterialization(key, partition=batch, metadata=metadata)

    def checked(
        key: dg.AssetKey,
        name: str,
        passed: bool,
        metadata: dict,
        severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    ) -> Iterator[Event]:
        if dg.AssetCheckKey(key, name) in checks:
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=name,
                passed=passed,
                metadata=metadata,
                severity=severity,
                partition=batch,
            )

    if outcome.raw is not None:
        yield from materialized(
            RAW,
            {
                "file": dg.MetadataValue.path(display_path(batch)),
                "dagster/row_count": outcome.raw.rows,
                "bytes": outcome.raw.bytes,
                "sha256": outcome.raw.sha256,
            },
        )
    if outcome.clean is not None:
        clean = outcome.clean
        if clean.conserved:  # otherwise nothing was committed: only the failing check is told
            yield from materialized(CLEAN, _clean_metadata(clean))
            yield from materialized(QUARANTINE, _quarantine_metadata(clean))
        yield from checked(
            CLEAN,
            "rows_conserved",
            clean.conserved,
            {
                "raw": clean.raw_rows,
                "clean": clean.clean_rows,
                "quarantined": clean.quarantined,
                "duplicates": clean.duplicates,
                "duplicate_ids_of_other_batches": clean.by_reason.get("duplicate_id", 0),
            },
        )
        yield from checked(
            CLEAN, "clean_schema", not clean.clean_schema, _failures(clean.clean_schema)
        )
        yield from checked(
            QUARANTINE,
            "quarantine_schema",
            not clean.quarantine_schema,
            _failures(clean.quarantine_schema),
        )
    if outcome.features is not None:
        yield from materialized(FEATURES, _feature_metadata(outcome.features))
        yield from checked(
            FEATURES,
            "feature_schema",
            not outcome.features.schema,
            _failures(outcome.features.schema),
        )
    if outcome.drift is not None:
        yield from _drift_events(batch, outcome.drift, materialized, checked)


def column_schema(schema: TableSchema) -> dg.TableSchema:
    """`dagster/column_schema` from the schema the table is checked against: the catalog shows
    the rules the batch runs enforce, from the one place they are declared."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                str(column.dtype),
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=column.unique,
                    other=[check.name for check in column.checks],
                ),
            )
            for column in schema.columns
        ],
        constraints=dg.TableConstraints(other=[c.name for c in schema.table_checks]),
    )


def _table(columns: list[tuple[str, str]], rows: list[dict]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
    )


def _drift_table(result: DriftResult) -> dg.TableMetadataValue:
    """One row per column: the test Evidently would pick, its score, threshold and verdict."""
    return _table(
        [
            ("column", "string"),
            ("test", "string"),
            ("score", "float"),
            ("threshold", "float"),
            ("drifted", "string"),
        ],  # fmt: skip
        [
            {
                "column": c.column,
                "test": c.method,
                "score": float(c.score),
                "threshold": float(c.threshold),
                "drifted": "yes" if c.drifted else "no",
            }
            for c in result.columns
        ],
    )


def _drift_summary(result: DriftResult) -> str:
    n = len(result.drifted_columns())
    text = (
        f"Drifted columns: {n} of {len(result.columns)} ({result.drift_share:.1%}); the batch "
        f"counts as drifted from {result.share_threshold:.0%}: "
        f"{'drifted' if result.drifted else 'not drifted'}. Compared {result.current_rows:,} "
        f"current with {result.reference_rows:,} reference rows."
    )
    if result.skipped:
        text += f" Not compared (no values on one side): {', '.join(result.skipped)}."
    return text


def _quality_table(quality: QualityResult) -> dg.TableMetadataValue:
    """Counts per column, always shown, issue or not."""
    return _table(
        [
            ("column", "string"),
            ("missing", "int"),
            ("below_range", "int"),
            ("above_range", "int"),
            ("reference_min", "float"),
            ("reference_max", "float"),
            ("new_categories", "int"),
            ("new_category_rows", "int"),
        ],  # fmt: skip
        [
            {
                "column": c.column + (" (absent)" if c.absent else ""),
                "missing": c.missing,
                "below_range": c.below_range,
                "above_range": c.above_range,
                "reference_min": c.reference_min,
                "reference_max": c.reference_max,
                "new_categories": c.new_categories,
                "new_category_rows": c.new_category_rows,
            }
            for c in quality.columns
        ],
    )


def _failures(lines: list[str]) -> dict:
    if not lines:
        return {}
    return {"failures": dg.MetadataValue.md("\n".join(f"- `{line}`" for line in lines[:50]))}


ENGINE = "fraud/engine"  # which engine made the materialization: polars or spark


def _clean_metadata(clean: CleanSummary) -> dict:
    return {
        ENGINE: clean.engine,
        "dagster/row_count": clean.clean_rows,
        "dagster/column_schema": column_schema(clean_transactions_schema()),
        "raw_rows": clean.raw_rows,
        "duplicates_dropped": clean.duplicates,
        "quarantined": clean.quarantined,
        "origin_date": clean.origin.isoformat(),
        "period": clean.period,
        "terminals_checked_against": clean.terminals,
        "repaired": dg.MetadataValue.table(
            records=[dg.TableRecord({"repaired": k, "rows": v}) for k, v in clean.repaired.items()],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("repaired", "string"), dg.TableColumn("rows", "int")]
            ),
        ),
    }


def _quarantine_metadata(clean: CleanSummary) -> dict:
    return {
        ENGINE: clean.engine,
        "dagster/row_count": clean.quarantined,
        "dagster/column_schema": column_schema(QuarantinedTransactions),
        "by_reason": dg.MetadataValue.table(
            records=[dg.TableRecord({"reason": k, "rows": v}) for k, v in clean.by_reason.items()],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("reason", "string"), dg.TableColumn("rows", "int")]
            ),
        ),
        **{f"reason/{reason}": count for reason, count in clean.by_reason.items()},
    }


def _feature_metadata(features: FeatureSummary) -> dict:
    return {
        ENGINE: features.engine,
        "dagster/row_count": features.rows,
        "dagster/column_schema": column_schema(TransactionFeatures),
        "engine": features.engine,
        "features": ", ".join(FEATURE_COLUMNS),
        "fraud_share": features.fraud_share,
    }


def _drift_events(batch: str, drift: DriftSummary, materialized, checked) -> Iterator[Event]:  # noqa: ANN001
    if drift.result is None:  # the very first batches: nothing to compare with yet
        yield from materialized(
            DRIFT,
            {"verdict": "no reference yet", "reference": f"{drift.reference.description}: no rows"},
        )
        yield from checked(DRIFT, "data_quality", True, {"issues": "no reference yet"})
        return
    result = drift.result
    verdict = "drifted" if result.drifted else "not drifted"
    yield from materialized(
        DRIFT,
        {
            "verdict": verdict,
            "drifted": result.drifted,
            "drift_share": result.drift_share,
            "share_threshold": result.share_threshold,
            "drifted_columns": ", ".join(result.drifted_columns()) or "none",
            "reference": drift.reference.description,
            "model_version": drift.model_version if drift.model_version is not None else "none",
            "drift_table": _drift_table(result),
            "drift_summary": _drift_summary(result),
            "report": dg.MetadataValue.url(report_url("drift", batch)),
            "dagster/row_count": drift.rows,
        },
    )
    quality = drift.quality
    if quality is not None:
        yield from checked(
            DRIFT,
            "data_quality",
            quality.ok,
            {
                "issues": "; ".join(quality.issues()) or "none",
                "summary": _quality_table(quality),
            },
            severity=dg.AssetCheckSeverity.WARN,
        )
