"""Orchestration through a real `dg dev` (webserver + daemon): the path people take.

Starts `dg dev -w workspace.yaml` of a checkout on a temporary instance and data folder, and
measures through GraphQL:

  (a) burst: N reference-size daily batches land at once (files first, then their markers);
      seconds until every batch has its drift report (the last asset of an ingest);
  (b) UI backfill: `launchPartitionBackfill` of all N partitions of the batch assets, as the
      UI's "Materialize" dialog launches it; seconds until the backfill completes;
  (c) steady state: one new batch lands once every run is done; seconds from landing to its
      features and its drift report, sensor interval included (repeated, median reported).

Also prints the runs each phase took and how long a run spent queued, starting and executing.

    python benchmarks/bench_orchestration.py                      # 183 batches, this checkout
    python benchmarks/bench_orchestration.py --batches 30 --repo /path/to/other/checkout

`--repo` runs another checkout's code (its own .venv), e.g. an older commit for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from fraud_assets.dev.dagster_process import DagsterDev  # noqa: E402
from fraud_assets.dev.instance import instance_yaml  # noqa: E402

BATCH_ASSETS = [
    "raw_transactions",
    "clean_transactions",
    "quarantined_transactions",
    "transaction_features",
    "drift_report",
]
RUNS_QUERY = """query ($limit: Int) { runsOrError(limit: $limit) { ... on Runs { results {
    runId jobName status creationTime startTime endTime tags { key value } } } } }"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=183, help="daily batches for (a) and (b)")
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--steady", type=int, default=3, help="new batches landed one by one in (c)")
    p.add_argument("--phases", default="abc", help="which of a, b, c to run (b and c need a)")
    p.add_argument("--repo", type=Path, default=HERE, help="checkout whose code runs")
    p.add_argument(
        "--storage",
        choices=["postgres", "sqlite"],
        default="postgres",
        help="the instance's storage: PostgreSQL on 127.0.0.1:5432 as in a deployment (a "
        "temporary database), or SQLite in DAGSTER_HOME as `make ui` uses",
    )
    p.add_argument("--timeout", type=float, default=7200, help="seconds per phase")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args()


def simulate(repo: Path, out: Path, days: int, customers: int, terminals: int) -> list[str]:
    fraud = repo / ".venv" / "bin" / "fraud"
    command = [str(fraud), "simulate", "--out", str(out), "--days", str(days)]
    command += ["--customers", str(customers), "--terminals", str(terminals), "--seed", "0"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return sorted(p.stem for p in out.glob("*.txt"))


def land(staging: Path, landing: Path, batches: list[str]) -> float:
    """Data files first, then the markers that make them complete; returns the landing time."""
    for batch in batches:
        shutil.copyfile(staging / f"{batch}.txt", landing / f"{batch}.txt")
    landed = time.time()
    for batch in batches:
        shutil.copyfile(staging / f"{batch}.done", landing / f"{batch}.done")
    return landed


STATUS_QUERY = """query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetPartitionStatuses { __typename
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }"""


def partitions(dev: DagsterDev, asset: str, status: str) -> set[str]:
    data = dev.graphql(STATUS_QUERY, {"key": {"path": [asset]}})
    return set(data["assetNodeOrError"]["assetPartitionStatuses"].get(status) or [])


def materialized(dev: DagsterDev, asset: str) -> set[str]:
    return partitions(dev, asset, "materializedPartitions")


def failed(dev: DagsterDev, asset: str) -> set[str]:
    return partitions(dev, asset, "failedPartitions")


def latest_event_time(dev: DagsterDev, asset: str, batch: str) -> float | None:
    data = dev.graphql(
        """query ($key: AssetKeyInput!, $p: [String!]) { assetNodeOrError(assetKey: $key) {
              ... on AssetNode { assetMaterializations(partitions: $p, limit: 1) {
                timestamp } } } }""",
        {"key": {"path": [asset]}, "p": [batch]},
    )
    events = data["assetNodeOrError"]["assetMaterializations"]
    return float(events[0]["timestamp"]) / 1000 if events else None


def wait_for(predicate, timeout: float, what: str, dev: DagsterDev, poll: float = 1.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            raise RuntimeError(f"dg dev exited while waiting for {what}:\n{dev.log_tail()}")
        if predicate():
            return
        time.sleep(poll)
    raise TimeoutError(f"{what}: not done after {timeout:.0f} s")


def runs_since(dev: DagsterDev, since: float) -> list[dict]:
    results = dev.graphql(RUNS_QUERY, {"limit": 2000})["runsOrError"]["results"]
    out = []
    for r in results:
        if r["creationTime"] < since:
            continue
        tags = {t["key"]: t["value"] for t in r["tags"]}
        out.append(r | {"tags": tags})
    return sorted(out, key=lambda r: r["creationTime"])


def describe_runs(runs: list[dict]) -> dict:
    done = [r for r in runs if r["startTime"] and r["endTime"]]
    queued = [r["startTime"] - r["creationTime"] for r in done]
    running = [r["endTime"] - r["startTime"] for r in done]
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "runs": len(runs),
        "statuses": statuses,
        "queued_s_median": round(statistics.median(queued), 1) if queued else None,
        "run_s_median": round(statistics.median(running), 1) if running else None,
        "run_s_total": round(sum(running), 1),
    }


STEPS_QUERY = """query ($id: ID!) { runOrError(runId: $id) { ... on Run {
    startTime endTime stepStats { stepKey startTime endTime } } } }"""


IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def idle(dev: DagsterDev) -> bool:
    """No run queued or running, and no backfill still requested."""
    runs = dev.graphql(RUNS_QUERY, {"limit": 50})["runsOrError"]["results"]
    return not any(r["status"] in IN_PROGRESS for r in runs)


def run_phases(dev: DagsterDev, runs: list[dict]) -> list[dict]:
    """Per run: seconds queued, starting (process + code location + resources), in steps, ending."""
    out = []
    for r in runs:
        if not (r["startTime"] and r["endTime"]):
            continue
        run = dev.graphql(STEPS_QUERY, {"id": r["runId"]})["runOrError"]
        steps = [s for s in run.get("stepStats") or [] if s["startTime"] and s["endTime"]]
        if not steps:
            continue
        first = min(s["startTime"] for s in steps)
        last = max(s["endTime"] for s in steps)
        out.append(
            {
                "job": r["jobName"],
                "queued_s": round(r["startTime"] - r["creationTime"], 1),
                "starting_s": round(first - r["startTime"], 1),
                "steps_s": round(last - first, 1),
                "ending_s": round(r["endTime"] - last, 1),
                "total_s": round(r["endTime"] - r["creationTime"], 1),
            }
        )
    return out


def _postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(statement)


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> None:
    args = parse_args()
    repo = args.repo.resolve()
    root = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    home, data = root / "dagster_home", root / "data"
    staging, landing = root / "staging", data / "landing"
    home.mkdir(parents=True)
    landing.mkdir(parents=True)
    database = f"bench_orchestration_{os.getpid()}" if args.storage == "postgres" else None
    if database:
        _postgres(f"CREATE DATABASE {database}")
        postgres = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "db": database}
        # A checkout without the pooled event log (older commits) gets dagster-postgres's own.
        pooled = (repo / "fraud_assets" / "dev" / "pooled_postgres.py").exists()
        (home / "dagster.yaml").write_text(instance_yaml(postgres, pooled=pooled))
    else:
        (home / "dagster.yaml").write_text(instance_yaml())
    days = args.batches + args.steady
    print(f"simulating {days} days ({args.customers} customers, {args.terminals} terminals)…")
    batches = simulate(repo, staging, days, args.customers, args.terminals)
    burst, steady = batches[: args.batches], batches[args.batches :]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env |= {"DAGSTER_HOME": str(home), "FRAUD_DATA_DIR": str(data), "FRAUD_ENV": "dev"}
    env |= {"FRAUD_PSEUDONYM_KEY": "bench-orchestration-key", "DAGSTER_PG_PASSWORD": ""}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    figures: dict[str, object] = {
        "repo": str(repo),
        "commit": commit,
        "batches": args.batches,
        "storage": args.storage,
        "rows": sum(_lines(staging / f"{b}.txt") - 1 for b in burst),
    }
    dev = DagsterDev.start(repo / ".venv" / "bin" / "dg", repo, env, root / "dg_dev.log")
    try:
        started = time.monotonic()
        dev.wait_until_ready()
        figures["startup_s"] = round(time.monotonic() - started, 1)
        print(f"dg dev ready in {figures['startup_s']} s (commit {commit}, {repo})")

        if "a" in args.phases:
            t0 = land(staging, landing, burst)
            wait_for(
                lambda: (
                    len(materialized(dev, "drift_report") | failed(dev, "drift_report"))
                    >= len(burst)
                ),
                args.timeout,
                "the burst",
                dev,
                poll=2.0,
            )
            seconds = time.time() - t0
            runs = runs_since(dev, t0)
            figures["a_burst_s"] = round(seconds, 1)
            figures["a_failed"] = sorted(failed(dev, "drift_report"))
            figures["a_runs"] = describe_runs(runs)
            print(f"(a) burst of {len(burst)} batches: {seconds:.1f} s, {figures['a_runs']}")

        if "b" in args.phases:
            t0 = time.time()
            launched = dev.graphql(
                """mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(
                      backfillParams: $params) { __typename ... on LaunchBackfillSuccess {
                      backfillId } ... on PythonError { message } } }""",
                {
                    "params": {
                        "partitionNames": burst,
                        "assetSelection": [{"path": [a]} for a in BATCH_ASSETS],
                        "tags": [{"key": "dagster/from_ui", "value": "true"}],
                    }
                },
            )["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"backfill not launched: {launched}")
            backfill_id = launched["backfillId"]

            def backfill_status() -> str:
                return dev.graphql(
                    """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
                          ... on PartitionBackfill { status } } }""",
                    {"id": backfill_id},
                )["partitionBackfillOrError"]["status"]

            wait_for(
                lambda: backfill_status() not in ("REQUESTED", "IN_PROGRESS"),
                args.timeout,
                "the backfill",
                dev,
                poll=2.0,
            )
            seconds = time.time() - t0
            figures["b_backfill_s"] = round(seconds, 1)
            # What the user sees in the asset's partitions: the last batch (a range is processed
            # in time order) materialized again; the backfill's own status follows at the
            # backfill daemon's next pass (a fixed 30 s loop in Dagster).
            last = latest_event_time(dev, "drift_report", burst[-1])
            figures["b_all_materialized_s"] = round(last - t0, 1) if last and last > t0 else None
            figures["b_status"] = backfill_status()
            figures["b_runs"] = describe_runs(
                [r for r in runs_since(dev, t0) if r["tags"].get("dagster/backfill") == backfill_id]
            )
            # Runs beside the backfill's (sensor-requested publishes, training) share the cores.
            figures["b_other_runs"] = [
                {
                    "job": r["jobName"],
                    "status": r["status"],
                    "from_s": round((r["startTime"] or t0) - t0, 1),
                    "to_s": round(r["endTime"] - t0, 1) if r["endTime"] else None,
                }
                for r in runs_since(dev, t0 - 600)
                if r["tags"].get("dagster/backfill") != backfill_id
                and (r["endTime"] is None or r["endTime"] > t0)
            ]
            print(
                f"(b) UI backfill of {len(burst)} batches: {seconds:.1f} s (every partition "
                f"materialized after {figures['b_all_materialized_s']} s), "
                f"{figures['b_status']}, {figures['b_runs']}"
            )
            for phases in run_phases(
                dev,
                [
                    r
                    for r in runs_since(dev, t0)
                    if r["tags"].get("dagster/backfill") == backfill_id
                ],
            ):
                print(f"    backfill run {phases}")
            for r in figures["b_other_runs"]:
                print(f"    beside it: {r}")

        if "c" in args.phases:
            features_s, drift_s = [], []
            for batch in steady:
                # Steady state: a daily batch lands on a platform that finished the previous
                # one's work (its publish run, a training it triggered), not in the middle of it.
                wait_for(lambda: idle(dev), args.timeout, "the runs before a landing", dev)
                t0 = land(staging, landing, [batch])
                wait_for(
                    lambda b=batch: latest_event_time(dev, "drift_report", b) is not None,
                    args.timeout,
                    f"batch {batch}",
                    dev,
                    poll=0.5,
                )
                features_s.append(latest_event_time(dev, "transaction_features", batch) - t0)
                drift_s.append(latest_event_time(dev, "drift_report", batch) - t0)
                wait_for(
                    lambda since=t0: all(
                        r["status"] in ("SUCCESS", "FAILURE", "CANCELED")
                        for r in runs_since(dev, since)
                        if r["jobName"] == "ingest_batch"
                    ),
                    120,
                    f"the ingest run of {batch} to end",
                    dev,
                    poll=0.5,
                )
                runs = runs_since(dev, t0)
                print(
                    f"(c) {batch}: features after {features_s[-1]:.1f} s, drift report after "
                    f"{drift_s[-1]:.1f} s; {describe_runs(runs)}"
                )
                for phases in run_phases(dev, runs):
                    print(f"    run {phases}")
            figures["c_features_s"] = [round(x, 1) for x in features_s]
            figures["c_drift_s"] = [round(x, 1) for x in drift_s]
            figures["c_features_s_median"] = round(statistics.median(features_s), 1)
            figures["c_runs"] = describe_runs(runs_since(dev, t0))
    finally:
        dev.stop()
        if database:
            _postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
