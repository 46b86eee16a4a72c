"""`rows_conserved` can fail: when cleaning loses a row (a bug, never bad data), the batch
commits nothing, fails at its clean step, and its blocking check reports the counts.

The bug is injected (cleaning made to drop one clean row): no real input can produce it, which
is the point of the check."""

from __future__ import annotations

from pathlib import Path

import pytest

import fraud_assets.batch.pipeline as pipeline
from fraud_assets.batch.local import find_batches
from fraud_assets.batch.ranges import BatchOutcome, Step, ingest_range
from fraud_assets.lake import CLEAN, QUARANTINE, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from tests.support import write_days


@pytest.fixture
def lossy_cleaning(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.clean_batch

    def drops_a_row(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        result = real(*args, **kwargs)
        object.__setattr__(result, "clean", result.clean.slice(1))
        return result

    monkeypatch.setattr(pipeline, "clean_batch", drops_a_row)


def lossy_run(tmp_path: Path) -> tuple[BatchOutcome, Lake]:
    write_days(tmp_path / "landing", days=1)
    lake = Lake(*filesystem_for(str(tmp_path / "lake")))
    source = find_batches([str(tmp_path / "landing")])
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    [outcome] = ingest_range(list(source.paths), steps, source, lake, Pseudonymizer(b"k"))
    return outcome, lake


def test_a_lost_row_mock_bug_fails_the_batch_and_commits_nothing(tmp_path, lossy_cleaning):
    outcome, lake = lossy_run(tmp_path)
    assert not outcome.ok and outcome.failed_step == Step.CLEAN
    assert "rows not conserved" in outcome.error and "nothing was committed" in outcome.error
    clean = outcome.clean
    assert clean is not None and not clean.conserved
    assert clean.raw_rows == clean.clean_rows + clean.quarantined + clean.duplicates + 1
    assert lake.dates(CLEAN) == [] and lake.dates(QUARANTINE) == []
    assert outcome.features is None


@pytest.mark.dagster
def test_a_lost_row_mock_bug_is_a_failing_check_and_no_materialization(tmp_path, lossy_cleaning):
    import dagster as dg

    from fraud_assets.defs.batch_events import events_for
    from fraud_assets.defs.keys import CLEAN as CLEAN_KEY

    outcome, _ = lossy_run(tmp_path)
    check = dg.AssetCheckKey(CLEAN_KEY, "rows_conserved")
    events = list(events_for(outcome, {CLEAN_KEY}, {check}, str))
    assert [type(e) for e in events] == [dg.AssetCheckEvaluation]
    [evaluation] = events
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["raw"].value == evaluation.metadata["clean"].value + (
        evaluation.metadata["quarantined"].value + evaluation.metadata["duplicates"].value + 1
    )
