"""The code location loads the way people and tools load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.definitions import defs

pytestmark = pytest.mark.daemon

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_definitions_hold_the_batch_pipeline():
    assert defs.resolve_assets_def("raw_transactions").partitions_def.name == "batches"
    assert defs.resolve_sensor_def("landing_sensor").job_name == "ingest_batch"
    defs.resolve_job_def("ingest_batch")
    dg.Definitions.validate_loadable(defs)


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "FRAUD_DATA_DIR": str(tmp_path)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_passes(tmp_path):
    result = run(str(BIN / "dg"), "check", "defs", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_workspace_file_loads(tmp_path):
    result = run(
        str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


HEAVY = (
    "polars",
    "pandas",
    "numpy",
    "pyarrow",
    "scipy",
    "sklearn",
    "mlflow",
    "catboost",
    "evidently",
    "pandera",
    "pyspark",
    "dagster_aws",
    "dagster_pyspark",
    "boto3",
    "fsspec",
)


def test_importing_the_code_location_pulls_in_no_heavy_library():
    """Every run the daemon launches imports the code location in a fresh process; the daemon,
    webserver and `dg check` do too. Heavy libraries load inside the steps that use them."""
    probe = (
        "import sys, time; t = time.perf_counter(); import dagster; d = time.perf_counter();"
        "import fraud_assets.definitions; e = time.perf_counter();"
        f"print([m for m in {HEAVY!r} if m in sys.modules]);"
        "print(f'dagster {d - t:.2f} s, code location on top {e - d:.2f} s')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    loaded, timing = result.stdout.strip().splitlines()
    assert loaded == "[]", f"heavy modules imported by the code location: {loaded}"
    print(timing)
