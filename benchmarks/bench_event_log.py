"""A ranged batch run with Dagster's event log in PostgreSQL: pooled vs dagster-postgres as shipped.

Simulates N reference-size daily batches, then runs the `ingest_batch` job in process over all of
them, once per variant and alternating (`--rounds`), each on a fresh lake and a fresh temporary
database, and prints the wall time of each run and the connections PostgreSQL started for it.

    python benchmarks/bench_event_log.py --batches 60 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

RUN = """
import sys, time
from pathlib import Path
import dagster as dg
from fraud_assets.definitions import build_definitions
from fraud_assets.dev.inprocess import RANGE_END_TAG, RANGE_START_TAG
from tests.support import platform_resources
landing, data = Path(sys.argv[1]), Path(sys.argv[2])
batches = sorted(p.stem for p in landing.glob("*.txt"))
defs = build_definitions(platform_resources(landing, data))
with dg.DagsterInstance.get() as instance:
    instance.add_dynamic_partitions("batches", batches)
    job = defs.resolve_job_def("ingest_batch")
    tags = {RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]}
    started = time.perf_counter()
    result = job.execute_in_process(tags=tags, instance=instance, raise_on_error=False)
    print(f"{result.success} {time.perf_counter() - started:.1f}")
"""


def sql(statement: str, *params: object) -> object:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as c:
        row = c.execute(statement, params or None).fetchone() if params else c.execute(statement)
        return row


def sessions(db: str) -> int:
    return sql("SELECT sessions FROM pg_stat_database WHERE datname = %s", db)[0]


def one_run(landing: Path, root: Path, pooled: bool) -> tuple[float, int]:
    from fraud_assets.dev.instance import instance_yaml

    db = f"bench_event_log_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE DATABASE {db}")
    home, data = root / f"home-{db}", root / f"data-{db}"
    home.mkdir()
    postgres = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "db": db}
    (home / "dagster.yaml").write_text(instance_yaml(postgres, pooled=pooled))
    env = os.environ | {"DAGSTER_HOME": str(home), "DAGSTER_PG_PASSWORD": "", "FRAUD_ENV": "dev"}
    try:
        before = sessions(db)
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(landing), str(data)],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if out[-2] != "True":
            raise RuntimeError("the run failed")
        return float(out[-1]), sessions(db) - before
    finally:
        sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2, help="each round runs both variants")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-event-log-"))
    try:
        landing = root / "landing"
        fraud = Path(sys.executable).parent / "fraud"
        command = [str(fraud), "simulate", "--out", str(landing), "--days", str(args.batches)]
        command += ["--customers", "5000", "--terminals", "10000", "--seed", "0"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"{args.batches} batches, one ranged run each; load average {os.getloadavg()[0]:.1f}")
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for pooled in order:
                seconds, opened = one_run(landing, root, pooled)
                name = "pooled  " if pooled else "shipped "
                print(f"round {round_ + 1} {name} {seconds:7.1f} s  {opened:6d} connections")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
