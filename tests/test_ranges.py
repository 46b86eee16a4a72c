"""Batches processed as ranges: any split into runs gives the same lake and the same per-batch
results, and a bad batch inside a range is named while the others keep their outputs.

Runs go through the real `ingest_batch` job in process, over one batch (`partition_key`) or a
range of batches (Dagster's range tags), as the daemon would launch them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from fraud_assets.definitions import build_definitions
from fraud_assets.defs.keys import BATCH_ASSETS, CLEAN, DRIFT, FEATURES, QUARANTINE, RAW
from fraud_assets.dev.inprocess import RANGE_END_TAG, RANGE_START_TAG
from fraud_assets.features.spec import FEATURE_COLUMNS, LOOKBACK_DAYS
from fraud_assets.lake import STAGES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.modeling.champion_snapshot import snapshot_of, write_champion
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster

DAYS = 9
# The first 3 days are the champion's training window (its drift reference): they are ingested
# first in every variant, then the other 6 are split into runs in different ways.
FIRST = [0, 1, 2]
SPLITS = {
    "one run": [list(range(3, DAYS))],
    "one run per batch": [[d] for d in range(3, DAYS)],
    "uneven ranges": [[3, 4], [5], [6, 7, 8]],
}


def lake_of(data: Path) -> Lake:
    return Lake(*filesystem_for(str(data / "lake")))


def with_champion(data: Path) -> None:
    """A small CatBoost champion in the lake's snapshot (the drift step scores with it)."""
    from catboost import CatBoostClassifier

    rng = np.random.default_rng(0)
    x = pl.DataFrame({name: rng.random(400) for name in FEATURE_COLUMNS})
    y = (x["customer_amount_ratio_30d"] > 0.7).cast(pl.Int8).to_numpy()
    model = CatBoostClassifier(
        iterations=15, depth=3, verbose=False, random_seed=0, allow_writing_files=False
    )
    model.fit(x.to_pandas(), y)
    window = "2024-03-01..2024-03-03"
    write_champion(
        lake_of(data), snapshot_of(model, "fraud-detector", 7, 0.5, window), "fraud-detector"
    )


def without_champion(data: Path) -> None:
    """Tell the runs there is no champion (they would otherwise ask MLflow once)."""
    write_champion(lake_of(data), None, "fraud-detector")


def run_batches(defs: dg.Definitions, instance: dg.DagsterInstance, batches: list[str]):
    job = defs.resolve_job_def("ingest_batch")
    if len(batches) == 1:
        return job.execute_in_process(
            partition_key=batches[0], instance=instance, raise_on_error=False
        )
    tags = {RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]}
    return job.execute_in_process(tags=tags, instance=instance, raise_on_error=False)


def _plain(value: object) -> object:
    return value if isinstance(value, int | float | str | bool | type(None)) else repr(value)


def batch_results(instance: dg.DagsterInstance, batches: list[str]) -> dict:
    """Per batch: the metadata of each asset's materialization and each check's result."""
    out = {}
    for batch in batches:
        for key in BATCH_ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[batch]), limit=2
            ).records
            assert len(records) == 1, (key, batch, len(records))
            metadata = records[0].asset_materialization.metadata
            out[(batch, key.to_user_string())] = {k: _plain(v.value) for k, v in metadata.items()}
    for key, name in [
        (CLEAN, "rows_conserved"),
        (CLEAN, "clean_schema"),
        (QUARANTINE, "quarantine_schema"),
        (FEATURES, "feature_schema"),
        (DRIFT, "data_quality"),
    ]:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, name), limit=100
        )
        by_batch = {}
        for record in history:
            evaluation = record.event.dagster_event.event_specific_data
            by_batch[evaluation.partition] = (
                evaluation.passed,
                {k: _plain(v.value) for k, v in evaluation.metadata.items()},
            )
        assert sorted(by_batch) == sorted(batches), (name, sorted(by_batch))
        out[name] = by_batch
    return out


def lake_files(data: Path) -> dict[str, bytes]:
    """Every committed data file (named without its commit id) and drift spec, by path: what
    readers and dependent runs see. No other data file may be left on disk."""
    root, lake = data / "lake", lake_of(data)
    out = {}
    for stage in STAGES:
        for commit in lake.commits(stage).values():
            for entry in commit.files:
                out[entry.path.replace(f".{commit.commit_id}.", ".")] = (
                    root / entry.path
                ).read_bytes()
    on_disk = {p for p in root.rglob("*.parquet*") if p.is_file()}
    assert len(on_disk) == len(out), "data files that no commit names"
    reports = [p for p in (root / "reports").rglob("*") if p.is_file()]
    return out | {str(p.relative_to(root)): p.read_bytes() for p in sorted(reports)}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "landing"
    write_days(path, days=DAYS, dirty=0.01)
    return path


@pytest.fixture(scope="module")
def by_split(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    batches = sorted(p.stem for p in landing.glob("*.txt"))
    out = {}
    for name, split in SPLITS.items():
        data = tmp_path_factory.mktemp(name.replace(" ", "-"))
        with_champion(data)
        defs = build_definitions(platform_resources(landing, data))
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("batches", batches)
            for part in [FIRST, *split]:
                result = run_batches(defs, instance, [batches[i] for i in part])
                assert result.success, name
            out[name] = (lake_files(data), batch_results(instance, batches))
    return out


def test_any_split_of_a_range_into_runs_gives_the_same_lake_files(by_split):
    files = {name: result[0] for name, result in by_split.items()}
    reference = files["one run per batch"]
    assert sum(".parquet" in f for f in reference) >= 3 * DAYS  # clean, quarantine, features
    assert any("reports/drift" in f for f in reference)
    for name, found in files.items():
        assert sorted(found) == sorted(reference), name
        different = [f for f in reference if found[f] != reference[f]]
        assert different == [], f"{name}: {different[:5]}"


def test_any_split_of_a_range_gives_each_batch_the_same_metadata_and_checks(by_split):
    results = {name: result[1] for name, result in by_split.items()}
    reference = results["one run per batch"]
    drift = [v for k, v in reference.items() if isinstance(k, tuple) and k[1] == "drift_report"]
    assert all(d["model_version"] == 7 for d in drift)  # scored with the lake's champion
    assert any(d["verdict"] != "no reference yet" for d in drift)
    for name, found in results.items():
        assert found == reference, name


def test_a_bad_batch_inside_a_range_is_named_and_the_others_keep_their_outputs(tmp_path: Path):
    mine = tmp_path / "landing"
    write_days(mine, days=DAYS)  # no damaged rows: each batch covers exactly its own day
    batches = sorted(p.stem for p in mine.glob("*.txt"))
    middle, last = batches[4], batches[-1]
    good_middle = (mine / f"{middle}.txt").read_bytes()
    (mine / f"{middle}.txt").write_bytes(b"id;when;amount\n1;2024-03-05;3.00\n")
    (mine / f"{last}.txt").write_bytes(good_middle[:-40])  # truncated: its marker disagrees
    data = tmp_path / "data"
    without_champion(data)
    defs = build_definitions(platform_resources(mine, data))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", batches)
        result = run_batches(defs, instance, batches)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.message
        assert f"{mine}/{middle}.txt line 1: header does not match" in message
        assert f"{mine}/{last}.txt: file does not match its completion marker" in message
        # The two bad ones, and the three after the middle one: their history misses its day.
        assert "Failure: 5 of 9 batch(es) failed; the others were materialized" in message

        def materialized(key: dg.AssetKey) -> set[str]:
            return set(instance.get_materialized_partitions(key))

        before, after = batches[:4], batches[5:-1]
        assert materialized(RAW) == set(before + after)
        assert materialized(CLEAN) == materialized(QUARANTINE) == set(before + after)
        # The batches after the bad one keep their clean data; their features need its days.
        assert materialized(FEATURES) == materialized(DRIFT) == set(before)
        for batch in after:
            assert f"{batch} (features): Batch {batch} needs {LOOKBACK_DAYS} days" in message
            assert middle in message.split(f"{batch} (features):")[1].split("\n")[0]

        # Fixed, the bad batch is re-run alone.
        (mine / f"{middle}.txt").write_bytes(good_middle)
        assert run_batches(defs, instance, [middle]).success
        assert middle in materialized(FEATURES)


def test_features_of_a_batch_do_not_depend_on_where_its_history_starts(landing, tmp_path):
    """Exact window sums: a batch featurised with more history before it gets the same bits."""
    from fraud_assets.batch.pipeline import clean_into_lake, features_for_batches
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.privacy import Pseudonymizer

    lake = lake_of(tmp_path)
    batches = sorted(p.stem for p in landing.glob("*.txt"))
    config = CleaningConfig(origin_date=dt.date.fromisoformat(batches[0]))
    for batch in batches:
        clean_into_lake(lake, landing / f"{batch}.txt", batch, Pseudonymizer(b"k"), config)
    together = features_for_batches(lake, batches)
    for batch in batches:
        alone = features_for_batches(lake, [batch])[batch]
        assert alone.equals(together[batch]), batch


def test_a_batch_run_imports_neither_evidently_nor_pandera_nor_mlflow(landing: Path, tmp_path):
    """Every daemon-launched run is a fresh process: the libraries that cost seconds to import
    stay out of a run that does not render a report or train (checked in a fresh interpreter)."""
    import subprocess
    import sys

    data = tmp_path / "data"
    with_champion(data)
    script = f"""
import sys
import dagster as dg
from pathlib import Path
from fraud_assets.definitions import build_definitions
from tests.support import platform_resources
from tests.test_ranges import run_batches
landing, data = Path({str(landing)!r}), Path({str(data)!r})
batches = sorted(p.stem for p in landing.glob("*.txt"))[:4]
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions("batches", batches)
    defs = build_definitions(platform_resources(landing, data))
    assert run_batches(defs, instance, batches).success
heavy = (
    "evidently", "pandera", "mlflow", "catboost", "sklearn", "pyspark", "dagster_aws", "fastapi"
)
print([m for m in heavy if m in sys.modules])
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
