"""Ingest a range of batches in one pass, each batch reported on its own.

A range is processed in time order (batch ids are dates), in chunks that bound memory: every
batch of a chunk is checked against its marker and cleaned into the lake as it would be alone;
then the chunk's features come from one engine call over the look-back history read once; then
each batch's drift is judged, the reference rows read once for the chunk. A batch that fails a
step (wrong header, marker mismatch, missing history, a failed schema check) stops there with a
message naming it; the others go on. Splitting a range differently gives the same lake files and
the same per-batch results (tests/test_ranges.py).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Protocol

import polars as pl

from fraud_assets.batch.committed import CommittedIds
from fraud_assets.batch.pipeline import (
    LookbackMissing,
    RowsNotConservedError,
    clean_into_lake,
    features_for_batches,
)
from fraud_assets.batch.state import history_versions, record_features, record_refusal
from fraud_assets.cleaning import CleaningConfig, CleanResult
from fraud_assets.cleaning.rules import DEFAULT_MAX_AMOUNT, DEFAULT_MAX_TERMINAL_ID
from fraud_assets.cleaning.terminal_registry import TerminalRegistry
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.lake import FEATURES, Lake, MissingHistoryError
from fraud_assets.monitoring.drift import (
    DEFAULT_DRIFT_SHARE,
    DEFAULT_SAMPLE_ROWS,
    DriftResult,
    drift_statistics,
    monitored_columns,
)
from fraud_assets.monitoring.drift_reports import save_spec
from fraud_assets.monitoring.quality import QualityResult, data_quality
from fraud_assets.monitoring.reference import (
    Reference,
    ReferencePolicy,
    ReferenceReader,
    choose_reference,
)
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import BatchMarker, BatchPeriod, batch_period
from fraud_assets.rawdata.inspection import RawBatchError, RawBatchStats, inspect_raw_batch


class Step(StrEnum):
    RAW = "raw"
    CLEAN = "clean"
    FEATURES = "features"
    DRIFT = "drift"


ALL_STEPS = frozenset(Step)
# Calendar flags follow from the timestamp: a weekend batch after weekday-only references is not
# a quality problem, so they are left out.
QUALITY_COLUMNS = [c for c in FEATURE_COLUMNS if c not in ("tx_during_weekend", "tx_during_night")]
QUALITY_COLUMNS = list(dict.fromkeys([*QUALITY_COLUMNS, "tx_amount", "terminal_id"]))


class BatchSource(Protocol):
    """Where raw batches are read from (the landing zone, or files named on the command line).

    A source whose batches are local files may also offer `local_path(batch_id) -> str`: cleaning
    then maps the file instead of reading it into memory.
    """

    def open_batch(self, batch_id: str) -> IO[bytes]: ...

    def marker(self, batch_id: str) -> bytes | None: ...

    def display_path(self, batch_id: str) -> str: ...


@dataclass(frozen=True)
class RangeConfig:
    max_terminal_id: int = DEFAULT_MAX_TERMINAL_ID  # only when there is no registry
    max_amount: float = DEFAULT_MAX_AMOUNT
    registry: TerminalRegistry | None = None  # terminals not in it are quarantined
    origin_date: dt.date | None = None  # default: each batch's marker, else inferred
    engine: str = "polars"
    spark: object | None = None
    reference: ReferencePolicy = field(default_factory=ReferencePolicy)
    share_threshold: float = DEFAULT_DRIFT_SHARE
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    # Rows of raw batches featurised per engine call: bounds memory on months-long ranges.
    chunk_rows: int = 12_000_000


@dataclass(frozen=True)
class CleanSummary:
    raw_rows: int
    clean_rows: int
    quarantined: int
    duplicates: int
    origin: dt.date
    period: str  # the days the batch covers, e.g. 2025-01-01 or 2025-01-01..2025-01-31
    terminals: str  # what terminal ids were checked against
    repaired: dict[str, int]
    by_reason: dict[str, int]
    conserved: bool
    clean_schema: list[str]  # failures; empty when the table passed
    quarantine_schema: list[str]
    engine: str = "polars"  # what cleaned the batch


@dataclass(frozen=True)
class FeatureSummary:
    rows: int
    fraud_share: float
    engine: str
    schema: list[str]  # failures


@dataclass(frozen=True)
class DriftSummary:
    reference: Reference
    result: DriftResult | None  # None: the reference had no rows yet
    quality: QualityResult | None
    model_version: int | None
    rows: int  # the batch's feature rows


@dataclass
class BatchOutcome:
    batch_id: str
    raw: RawBatchStats | None = None
    clean: CleanSummary | None = None
    features: FeatureSummary | None = None
    drift: DriftSummary | None = None
    failed_step: Step | None = None
    error: str | None = None
    missing_history: list[dt.date] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    def fail(self, step: Step, error: str) -> None:
        self.failed_step, self.error = step, error


Champion = Callable[[], "object | None"]  # () -> ChampionSnapshot | None, asked once per range


def ingest_range(
    batch_ids: Iterable[str],
    steps: Iterable[Step],
    source: BatchSource,
    lake: Lake,
    pseudonymizer: Pseudonymizer,
    config: RangeConfig = RangeConfig(),
    champion: Champion | None = None,
    row_estimate: Callable[[str], int] | None = None,
    on_batch: Callable[[BatchOutcome], None] | None = None,
) -> list[BatchOutcome]:
    """Run the selected steps for every batch; one outcome per batch, in time order.

    `row_estimate(batch_id)` sizes the chunks (default: one batch per chunk when unknown).
    `on_batch` is called as each batch finishes, so callers can report progress as it happens.
    """
    steps = frozenset(steps)
    order = sorted(dict.fromkeys(batch_ids))
    outcomes: list[BatchOutcome] = []
    drift = _DriftJudge(lake, config, champion) if Step.DRIFT in steps else None
    # Spark checks cross-batch ids on its executors, reading the lake (batch/spark_clean.py).
    committed = (
        CommittedIds.from_lake(lake)
        if Step.CLEAN in steps and not _on_spark(config, lake)
        else None
    )
    for chunk in _chunks(order, row_estimate, config.chunk_rows):
        results = {b: BatchOutcome(b) for b in chunk}
        cleans: dict[str, pl.DataFrame] = {}
        for batch_id in chunk:
            outcome = results[batch_id]
            if Step.RAW in steps:
                _check_raw(outcome, source)
            if Step.CLEAN in steps and outcome.ok:
                frame = _clean(outcome, source, lake, pseudonymizer, config, committed)
                if frame is not None:
                    cleans[batch_id] = frame
        features: dict[str, pl.DataFrame] = {}
        if Step.FEATURES in steps:
            features = _featurise([results[b] for b in chunk], lake, config, cleans)
        cleans.clear()
        if drift is not None:
            drift.judge([results[b] for b in chunk], features)
        for batch_id in chunk:
            outcomes.append(results[batch_id])
            if on_batch is not None:
                on_batch(results[batch_id])
    return outcomes


def _chunks(
    order: list[str], estimate: Callable[[str], int] | None, budget: int
) -> list[list[str]]:
    if estimate is None:
        return [[b] for b in order]
    chunks: list[list[str]] = []
    rows = 0
    for batch_id in order:
        size = max(estimate(batch_id), 0)
        if chunks and rows + size <= budget:
            chunks[-1].append(batch_id)
            rows += size
        else:
            chunks.append([batch_id])
            rows = size
    return chunks


def _check_raw(outcome: BatchOutcome, source: BatchSource) -> None:
    name = source.display_path(outcome.batch_id)
    try:
        with source.open_batch(outcome.batch_id) as stream:
            outcome.raw = inspect_raw_batch(stream, name, source.marker(outcome.batch_id))
    except FileNotFoundError:
        outcome.fail(Step.RAW, f"{name}: batch file not found in the landing zone")
    except RawBatchError as e:
        outcome.fail(Step.RAW, str(e))


def _clean(
    outcome: BatchOutcome,
    source: BatchSource,
    lake: Lake,
    pseudonymizer: Pseudonymizer,
    config: RangeConfig,
    committed: CommittedIds | None,
) -> pl.DataFrame | None:
    from fraud_assets.batch.schemas import (
        QuarantinedTransactions,
        clean_transactions_schema,
        failures,
    )

    batch_id = outcome.batch_id
    name = source.display_path(batch_id)
    marker = BatchMarker.from_json(source.marker(batch_id) or b"")
    try:
        period = batch_period(batch_id, marker)
        origin = config.origin_date or (
            dt.date.fromisoformat(marker.origin_date) if marker and marker.origin_date else None
        )
    except ValueError as e:
        outcome.fail(Step.CLEAN, f"{name}: {e}")
        return None
    settings = CleaningConfig(
        max_terminal_id=config.max_terminal_id,
        origin_date=origin,
        max_amount=config.max_amount,
        terminals=config.registry.ids if config.registry is not None else None,
        period=period,
        committed=committed.of_others(batch_id) if committed is not None else None,
    )
    if committed is None:
        return _clean_spark(outcome, source, lake, pseudonymizer, config, settings, name, period)
    local_path = getattr(source, "local_path", None)
    try:
        if local_path is not None:
            result = clean_into_lake(
                lake, local_path(batch_id), batch_id, pseudonymizer, settings, name
            )
        else:
            with source.open_batch(batch_id) as stream:
                data = stream.read()
            result = clean_into_lake(lake, data, batch_id, pseudonymizer, settings, name)
    except FileNotFoundError:
        outcome.fail(Step.CLEAN, f"{name}: batch file not found in the landing zone")
        return None
    except RawBatchError as e:
        outcome.fail(Step.CLEAN, str(e))
        return None
    except RowsNotConservedError as e:  # the rows_conserved check fails; nothing committed
        outcome.clean = _summary(e.result, period, config, [], [])
        outcome.fail(Step.CLEAN, str(e))
        return None
    committed.record(batch_id, result.clean["transaction_id"])
    outcome.clean = _summary(
        result,
        period,
        config,
        failures(clean_transactions_schema(config.max_amount, period), result.clean),
        failures(QuarantinedTransactions, result.quarantine),
    )
    if outcome.clean.clean_schema:  # a table that breaks its schema does not flow on
        outcome.fail(
            Step.FEATURES,
            f"{name}: clean table fails its schema (clean_schema), features not computed: "
            + "; ".join(outcome.clean.clean_schema[:3]),
        )
    return result.clean


def _summary(
    result: CleanResult,
    period: BatchPeriod,
    config: RangeConfig,
    clean_schema: list[str],
    quarantine_schema: list[str],
) -> CleanSummary:
    return CleanSummary(
        raw_rows=result.raw_rows,
        clean_rows=result.clean.height,
        quarantined=result.quarantine.height,
        duplicates=result.duplicates,
        origin=result.origin,
        period=str(period),
        terminals=_terminal_check(config),
        repaired=dict(sorted(result.repaired.items())),
        by_reason=dict(sorted(result.quarantined_by_reason.items())),
        conserved=result.conserved,
        clean_schema=clean_schema,
        quarantine_schema=quarantine_schema,
    )


def _on_spark(config: RangeConfig, lake: Lake) -> bool:
    """Spark cleans and featurises when chosen and its executors can reach the lake."""
    if config.engine != "spark" or config.spark is None:
        return False
    from fraud_assets.batch.pipeline import spark_reaches

    return spark_reaches(lake)


def _raw_url(source: BatchSource, batch_id: str) -> str:
    """The raw file as Spark's executors name it (file:, s3a:, hdfs:)."""
    from pathlib import Path

    local_path = getattr(source, "local_path", None)
    if local_path is not None:
        return Path(local_path(batch_id)).resolve().as_uri()
    fs, _ = source.filesystem()  # type: ignore[attr-defined]
    url = fs.unstrip_protocol(source.data_path(batch_id))  # type: ignore[attr-defined]
    return "s3a://" + url.removeprefix("s3://") if url.startswith("s3://") else url


def _raw_fs(source: BatchSource):  # noqa: ANN202 - an fsspec file system, or None
    """The landing zone's own file system (its endpoint and credentials) for the executors; None
    for local files, which need none."""
    if getattr(source, "local_path", None) is not None or not hasattr(source, "filesystem"):
        return None
    return source.filesystem()[0]  # type: ignore[attr-defined]


def _clean_spark(
    outcome: BatchOutcome,
    source: BatchSource,
    lake: Lake,
    pseudonymizer: Pseudonymizer,
    config: RangeConfig,
    settings: CleaningConfig,
    name: str,
    period,  # noqa: ANN001 - a BatchPeriod
) -> None:
    """`_clean` on Spark: executors read the raw file and write the lake; no rows come back."""
    from fraud_assets.batch.spark_clean import clean_batch_spark, first_line

    batch_id = outcome.batch_id
    try:
        with source.open_batch(batch_id) as stream:
            header = first_line(stream)
        result = clean_batch_spark(
            config.spark,
            lake,
            _raw_url(source, batch_id),
            header,
            batch_id,
            pseudonymizer,
            settings,
            name,
            raw_fs=_raw_fs(source),
        )
    except FileNotFoundError:
        outcome.fail(Step.CLEAN, f"{name}: batch file not found in the landing zone")
        return None
    except RawBatchError as e:
        outcome.fail(Step.CLEAN, str(e))
        return None
    if not result.conserved:  # a bug, never bad data: every line has exactly one destination
        raise AssertionError(f"{batch_id}: rows not conserved")
    outcome.clean = CleanSummary(
        raw_rows=result.raw_rows,
        clean_rows=result.clean_rows,
        quarantined=result.quarantined,
        duplicates=result.duplicates,
        origin=result.origin,
        period=str(period),
        terminals=_terminal_check(config),
        repaired=result.repaired,
        by_reason=result.by_reason,
        conserved=result.conserved,
        clean_schema=result.clean_schema,
        quarantine_schema=result.quarantine_schema,
        engine="spark",
    )
    if outcome.clean.clean_schema:
        outcome.fail(
            Step.FEATURES,
            f"{name}: clean table fails its schema (clean_schema), features not computed: "
            + "; ".join(outcome.clean.clean_schema[:3]),
        )
    return None


def _terminal_check(config: RangeConfig) -> str:
    registry = config.registry
    if registry is None:
        return f"no registry: ids up to {config.max_terminal_id:,}"
    return f"registry {registry.sha256[:12]} ({len(registry):,} terminals)"


def _featurise(
    outcomes: list[BatchOutcome], lake: Lake, config: RangeConfig, cleans: dict[str, pl.DataFrame]
) -> dict[str, pl.DataFrame]:
    from fraud_assets.batch.schemas import TransactionFeatures, failures

    ready = [o for o in outcomes if o.ok]
    if not ready:
        return {}
    if _on_spark(config, lake):
        _featurise_spark(ready, lake, config)
        return {}  # the rows stay in the lake; drift reads them from there
    computed = features_for_batches(
        lake, [o.batch_id for o in ready], config.engine, config.spark, cleans
    )
    known = lake.coverage()
    out = {}
    for outcome in ready:
        batch_id = outcome.batch_id
        frame = computed[batch_id]
        if isinstance(frame, MissingHistoryError):
            outcome.fail(Step.FEATURES, str(frame))
            if isinstance(frame, LookbackMissing) and batch_id in known:
                outcome.missing_history = frame.missing
                record_refusal(lake, batch_id, frame.missing, known[batch_id].content)
            continue
        lake.write_by_date(FEATURES, batch_id, frame)
        record_features(lake, batch_id, history_versions(known[batch_id], known))
        fraud = frame["tx_fraud"].cast(pl.Float64).mean() if frame.height else 0.0
        outcome.features = FeatureSummary(
            rows=frame.height,
            fraud_share=float(fraud or 0.0),
            engine=config.engine,
            schema=failures(TransactionFeatures, frame),
        )
        out[batch_id] = frame
    return out


def _featurise_spark(ready: list[BatchOutcome], lake: Lake, config: RangeConfig) -> None:
    from fraud_assets.batch.pipeline import history_problem
    from fraud_assets.batch.spark_features import features_into_lake_spark

    known = lake.coverage()
    todo = []
    for outcome in ready:
        problem = history_problem(outcome.batch_id, known)
        if problem is None:
            todo.append(outcome)
            continue
        outcome.fail(Step.FEATURES, str(problem))
        if isinstance(problem, LookbackMissing) and outcome.batch_id in known:
            outcome.missing_history = problem.missing
            record_refusal(lake, outcome.batch_id, problem.missing, known[outcome.batch_id].content)
    if not todo:
        return
    done = features_into_lake_spark(config.spark, lake, [o.batch_id for o in todo], known)
    for outcome in todo:
        result = done[outcome.batch_id]
        record_features(lake, outcome.batch_id, history_versions(known[outcome.batch_id], known))
        outcome.features = FeatureSummary(
            rows=result.rows,
            fraud_share=result.fraud_share,
            engine="spark",
            schema=result.schema,
        )


class _DriftJudge:
    """Judges drift batch by batch, sharing the champion and reference reads of a range."""

    def __init__(self, lake: Lake, config: RangeConfig, champion: Champion | None) -> None:
        self.lake, self.config = lake, config
        self.references = ReferenceReader(lake)
        # A reference shared by consecutive batches (the champion's window) is sampled and
        # scored once; only the latest two are kept, as rolling windows change every batch.
        self._samples: OrderedDict[Reference, dict] = OrderedDict()
        self._champion_asked = False
        self._champion = None
        self._scorer = None
        # Asked at once, beside cleaning and features: the first ask of a lake may import the
        # model registry's client (seconds), which would otherwise wait for the first judgement.
        self._pending: Future | None = None
        if champion is not None:
            asking = ThreadPoolExecutor(1, "champion")
            self._pending = asking.submit(champion)
            asking.shutdown(wait=False)  # the thread ends with its one task

    def champion(self):  # noqa: ANN201 - ChampionSnapshot | None
        if not self._champion_asked:
            self._champion_asked = True
            self._champion = self._pending.result() if self._pending is not None else None
            self._scorer = self._champion.scorer() if self._champion is not None else None
        return self._champion

    def judge(self, outcomes: list[BatchOutcome], features: dict[str, pl.DataFrame]) -> None:
        todo = []
        for outcome in outcomes:
            if not outcome.ok:
                continue
            current = features.get(outcome.batch_id)
            if current is None:
                current = self.lake.read_batch(FEATURES, outcome.batch_id)
            if current.height == 0:
                outcome.fail(
                    Step.DRIFT, f"Batch {outcome.batch_id} has no features yet: compute them first."
                )
                continue
            todo.append((outcome, current))
        if not todo:
            return
        champion = self.champion()
        window = champion.train_dates() if champion is not None else None
        version = champion.version if champion is not None else None
        references = {
            outcome.batch_id: choose_reference(
                self.config.reference,
                current["tx_datetime"].min().date(),
                version,
                window,
            )
            for outcome, current in todo
        }
        self.references.prefetch(list(references.values()))
        for outcome, current in todo:
            outcome.drift = self._one(outcome.batch_id, current, references[outcome.batch_id])

    def _samples_of(self, reference: Reference) -> dict:
        samples = self._samples.pop(reference, {})
        self._samples[reference] = samples
        while len(self._samples) > 2:
            self._samples.popitem(last=False)
        return samples

    def _one(self, batch_id: str, current: pl.DataFrame, reference: Reference) -> DriftSummary:
        rows = self.references.rows(reference)
        champion = self._champion
        version = champion.version if champion is not None else None
        if rows.height == 0:
            return DriftSummary(reference, None, None, version, current.height)
        columns = monitored_columns(current["tx_datetime"].dt.date().n_unique())
        result = drift_statistics(
            rows,
            current,
            columns=columns,
            share_threshold=self.config.share_threshold,
            sample_rows=self.config.sample_rows,
            scorer=self._scorer,
            reference_samples=self._samples_of(reference),
        )
        save_spec(
            self.lake,
            batch_id,
            {
                "reference": reference.to_dict(),
                "model": {"name": champion.name, "version": version} if champion else None,
                "columns": columns,
                "share_threshold": self.config.share_threshold,
                "sample_rows": self.config.sample_rows,
                "seed": 0,
            },
        )
        quality = data_quality(rows, current, QUALITY_COLUMNS)
        return DriftSummary(reference, result, quality, version, current.height)
