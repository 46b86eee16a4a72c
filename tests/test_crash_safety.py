"""Writers killed at any moment leave the lake readable as exactly the old or exactly the new
version of a batch, and a re-run then gives what a run without the crash gives.

A batch of three days is re-landed with other contents over a lake that holds its first
version. The re-run is killed (`FRAUD_LAKE_CRASH_AT`, which ends the process with `os._exit` as
kill -9 would, at each named point of a commit; and a real SIGKILL at random moments) through
`fraud clean`, `fraud features` and a Dagster run of the batch assets, each in its own process.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.lake import CLEAN, FEATURES, STAGES, Lake
from fraud_assets.lake.crash import CRASH_ENV, KILLED, POINTS
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.rawdata.format import HEADER_LINE, BatchMarker
from tests.support import write_days

pytestmark = pytest.mark.outage

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "2024-03-01"
FIRST, SECOND = "2024-03-01", "2024-03-04"  # batches of three days each
BATCH_STAGES = (CLEAN, FEATURES)  # what the clean and feature writers commit
KEY = "test-key"  # the key of tests.conftest.platform_resources: CLI and Dagster agree


def merge_days(source: Path, target: Path, days: list[str], batch_id: str, keep=None) -> None:  # noqa: ANN001
    """One raw batch file (and marker) from several daily ones; `keep(i)` filters its lines."""
    lines = []
    for day in days:
        lines += (source / f"{day}.txt").read_bytes().removeprefix(HEADER_LINE).splitlines(True)
    if keep is not None:
        lines = [line for i, line in enumerate(lines) if keep(i)]
    content = HEADER_LINE + b"".join(lines)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{batch_id}.txt").write_bytes(content)
    marker = BatchMarker(  # declares its days: rows outside them would be outside_period
        batch_id,
        len(lines),
        len(content),
        hashlib.sha256(content).hexdigest(),
        ORIGIN,
        first_date=days[0],
        last_date=days[-1],
    )
    (target / f"{batch_id}.done").write_text(marker.to_json())


@pytest.fixture(scope="module")
def landings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(first version of both batches, second version of the second batch)."""
    base = tmp_path_factory.mktemp("crash")
    daily = base / "daily"
    summary = write_days(daily, days=6, dirty=0.02)
    days = summary.batches
    old, new = base / "v1", base / "v2"
    merge_days(daily, old, days[:3], FIRST)
    merge_days(daily, old, days[3:], SECOND)
    # Re-landed: a tenth of the lines gone, so every table and date of the batch changes.
    merge_days(daily, new, days[3:], SECOND, keep=lambda i: i % 10 != 3)
    return old, new


def fraud(
    *args: str, crash: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {**os.environ, "FRAUD_PSEUDONYM_KEY": KEY, "COLUMNS": "200"}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run(
        [sys.executable, "-m", "fraud_assets.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lake_of(root: Path) -> Lake:
    return Lake(*filesystem_for(str(root)))


def stage_state(root: Path, stage: str, batch_id: str = SECOND) -> tuple:
    """What readers see of a batch's stage: every table's rows, and the coverage for clean."""
    lake = lake_of(root)
    frames = tuple(lake.read_batch(table, batch_id) for table in STAGES[stage])
    return frames, lake.coverage().get(batch_id) if stage == CLEAN else None


def same(a: tuple, b: tuple) -> bool:
    (frames_a, cov_a), (frames_b, cov_b) = a, b
    return cov_a == cov_b and all(x.equals(y) for x, y in zip(frames_a, frames_b, strict=True))


def lake_state(root: Path) -> dict[tuple[str, str], tuple]:
    return {(s, b): stage_state(root, s, b) for s in BATCH_STAGES for b in (FIRST, SECOND)}


def assert_same_lake(found: dict, expected: dict) -> None:
    for key in expected:
        assert same(found[key], expected[key]), key


def stray_files(root: Path) -> list[str]:
    """Data files on disk that no commit names (after a re-run there must be none)."""
    lake = lake_of(root)
    named = {f.path for s in STAGES for c in lake.commits(s).values() for f in c.files}
    on_disk = {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".parquet" in p.name and "_commits" not in p.parts
    }
    leftovers = [str(p.relative_to(root)) for p in (root / "_commits").rglob("*.tmp")]
    return sorted(on_disk - named) + leftovers


@pytest.fixture(scope="module")
def versions(landings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Lakes made by uninterrupted CLI runs: the old one, and what each re-run should give."""
    old, new = landings
    base = tmp_path_factory.mktemp("versions")
    done = fraud(
        "features",
        str(old / f"{FIRST}.txt"),
        str(old / f"{SECOND}.txt"),
        "--out",
        str(base / "old"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = {"old": base / "old"}
    for command in ("clean", "features"):
        target = base / command
        shutil.copytree(base / "old", target)
        started = time.perf_counter()
        result = fraud(command, str(new / f"{SECOND}.txt"), "--out", str(target))
        out[f"{command}_seconds"] = time.perf_counter() - started
        assert result.returncode == 0, result.stdout + result.stderr
        out[command] = target
    return out


def test_the_new_version_differs_from_the_old_in_every_table(versions):
    """Otherwise "old or new" below would prove nothing."""
    for stage in BATCH_STAGES:
        old, new = stage_state(versions["old"], stage), stage_state(versions["features"], stage)
        for before, after in zip(old[0], new[0], strict=True):
            assert before.height and after.height and not before.equals(after), stage


@pytest.mark.parametrize("point", POINTS)
def test_fraud_clean_killed_at_any_point_leaves_old_or_new_and_a_rerun_completes(
    point, versions, landings, tmp_path: Path
):
    lake = tmp_path / "lake"
    shutil.copytree(versions["old"], lake)
    batch = str(landings[1] / f"{SECOND}.txt")

    crashed = fraud("clean", batch, "--out", str(lake), crash=f"clean:{point}")
    assert crashed.returncode == KILLED, crashed.stdout + crashed.stderr

    found, old, new = lake_state(lake), lake_state(versions["old"]), lake_state(versions["clean"])
    key = (CLEAN, SECOND)
    expected = new if point == "after_manifest" else old
    assert same(found[key], expected[key]), f"{point}: neither the old nor the new clean version"
    assert_same_lake(
        {k: v for k, v in found.items() if k != key}, {k: v for k, v in old.items() if k != key}
    )

    rerun = fraud("clean", batch, "--out", str(lake))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_same_lake(lake_state(lake), new)
    assert stray_files(lake) == []


@pytest.mark.parametrize("point", POINTS)
def test_fraud_features_killed_at_any_point_leaves_old_or_new_and_a_rerun_completes(
    point, versions, landings, tmp_path: Path
):
    lake = tmp_path / "lake"
    shutil.copytree(versions["old"], lake)
    batch = str(landings[1] / f"{SECOND}.txt")

    crashed = fraud("features", batch, "--out", str(lake), crash=f"features:{point}")
    assert crashed.returncode == KILLED, crashed.stdout + crashed.stderr

    found, old, new = (
        lake_state(lake),
        lake_state(versions["old"]),
        lake_state(versions["features"]),
    )
    assert same(found[(CLEAN, SECOND)], new[(CLEAN, SECOND)])  # committed before features began
    expected = new if point == "after_manifest" else old
    assert same(found[(FEATURES, SECOND)], expected[(FEATURES, SECOND)]), point
    assert same(found[(FEATURES, FIRST)], old[(FEATURES, FIRST)])

    rerun = fraud("features", batch, "--out", str(lake))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_same_lake(lake_state(lake), new)
    assert stray_files(lake) == []


def data_file_names(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*.parquet*")}


def test_a_writer_killed_at_random_moments_leaves_old_or_new(versions, landings, tmp_path: Path):
    """A real SIGKILL, at a random moment after the writer's first new file appeared (while it
    writes the clean stage, commits it, or goes on to the features)."""
    rng = random.Random(16)
    batch = str(landings[1] / f"{SECOND}.txt")
    old, new = lake_state(versions["old"]), lake_state(versions["features"])
    env = {**os.environ, "FRAUD_PSEUDONYM_KEY": KEY}
    env.pop(CRASH_ENV, None)
    outcomes = []
    for attempt in range(5):
        lake = tmp_path / f"lake{attempt}"
        shutil.copytree(versions["old"], lake)
        before = data_file_names(lake)
        process = subprocess.Popen(
            [sys.executable, "-m", "fraud_assets.cli", "features", batch, "--out", str(lake)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while data_file_names(lake) <= before and process.poll() is None:
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.04))  # the small batch writes both stages in ~0.1 s
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        found = lake_state(lake)
        for key in old:
            assert same(found[key], old[key]) or same(found[key], new[key]), (attempt, key)
        if same(found[(FEATURES, SECOND)], new[(FEATURES, SECOND)]):
            assert same(found[(CLEAN, SECOND)], new[(CLEAN, SECOND)])  # features follow clean
        outcomes.append(
            tuple(
                "new" if same(found[(s, SECOND)], new[(s, SECOND)]) else "old" for s in BATCH_STAGES
            )
        )
        rerun = fraud("features", batch, "--out", str(lake))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert_same_lake(lake_state(lake), new)
        assert stray_files(lake) == []
    print("clean/features versions found after each kill:", outcomes)


DAGSTER_RUN = """
import sys
from pathlib import Path
import dagster as dg
from fraud_assets.definitions import build_definitions
from tests.support import platform_resources
from tests.test_ranges import run_batches
landing, data, batch = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
defs = build_definitions(platform_resources(landing, data))
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions("batches", [batch])
    sys.exit(0 if run_batches(defs, instance, [batch]).success else 1)
"""


def dagster_run(landing: Path, data: Path) -> bool:
    """The batch assets of the second batch, in this process (as a daemon-launched run would)."""
    from fraud_assets.definitions import build_definitions
    from tests.support import platform_resources
    from tests.test_ranges import run_batches

    defs = build_definitions(platform_resources(landing, data))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", [SECOND])
        return run_batches(defs, instance, [SECOND]).success


@pytest.fixture(scope="module")
def dagster_versions(versions, landings, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from fraud_assets.modeling.champion_snapshot import write_champion

    base = tmp_path_factory.mktemp("dagster")
    old = base / "old"
    shutil.copytree(versions["old"], old / "lake")
    write_champion(lake_of(old / "lake"), None, "fraud-detector")  # no MLflow lookup
    new = base / "new"
    shutil.copytree(old, new)
    assert dagster_run(landings[1], new)
    return {"old": old, "new": new}


@pytest.mark.parametrize(
    "crash",
    # Every point once, in one stage or the other (each run costs a fresh Dagster process).
    [
        "clean:before_first_file",
        "clean:mid_file",
        "features:after_first_file",
        "clean:before_manifest",
        "features:mid_manifest",
        "features:after_manifest",
    ],
)
def test_a_dagster_run_killed_mid_commit_leaves_old_or_new_and_a_rerun_completes(
    crash, dagster_versions, landings, tmp_path: Path
):
    data = tmp_path / "data"
    shutil.copytree(dagster_versions["old"], data)
    env = {**os.environ, CRASH_ENV: crash}
    crashed = subprocess.run(
        [sys.executable, "-c", DAGSTER_RUN, str(landings[1]), str(data), SECOND],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crashed.returncode == KILLED, crashed.stderr[-2000:]

    stage, point = crash.split(":")
    found = lake_state(data / "lake")
    old, new = (
        lake_state(dagster_versions["old"] / "lake"),
        lake_state(dagster_versions["new"] / "lake"),
    )
    expected = new if point == "after_manifest" else old
    assert same(found[(stage, SECOND)], expected[(stage, SECOND)]), crash
    if stage == FEATURES:
        assert same(found[(CLEAN, SECOND)], new[(CLEAN, SECOND)])
    else:
        assert same(found[(FEATURES, SECOND)], old[(FEATURES, SECOND)])

    assert dagster_run(landings[1], data)
    assert_same_lake(lake_state(data / "lake"), new)
    assert stray_files(data / "lake") == []
