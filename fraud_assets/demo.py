"""`make demo`: the platform end to end on embedded defaults, in one process, no daemon needed."""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.table import Table

from fraud_assets.filesystems import filesystem_for
from fraud_assets.monitoring.report_server import report_url
from fraud_assets.simulation import SimulationParams

DEMO_START = "2025-01-01"


def run_demo(console: Console, days: int, customers: int, terminals: int) -> None:
    # Environment first: the definitions read it when they are imported.
    from resources.environments import data_dir, landing_url

    home = os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home"))
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write("telemetry:\n  enabled: false\n")

    import dagster as dg

    from fraud_assets.cli import run_simulation, summary_line
    from fraud_assets.definitions import defs
    from fraud_assets.inprocess import tick_sensor

    started = time.perf_counter()
    url = landing_url()
    console.rule("[bold]1. Simulate transactions into the landing zone")
    params = SimulationParams(
        customers=customers,
        terminals=terminals,
        days=days,
        start_date=_date(DEMO_START),
        seed=42,
    )
    summary = run_simulation(params, *filesystem_for(url))
    console.print(summary_line(summary, url))

    console.rule("[bold]2. Landing sensor tick: register complete batches, ingest each one")
    instance = dg.DagsterInstance.get()
    with console.status("ticking landing_sensor and running the ingest jobs…"):
        outcome = tick_sensor(defs, instance, "landing_sensor", log_level="WARNING")
    registered = set(outcome.added_partitions)
    already = {key.split(":", 1)[0] for key in outcome.already_run}

    table = Table(title=f"Batches in {url}")
    for column in ("batch", "partition", "ingest run", "rows", "bytes", "drift"):
        table.add_column(column, justify="right" if column in ("rows", "bytes") else "left")
    for batch_id in instance.get_dynamic_partitions("batches"):
        meta = _latest_metadata(instance, batch_id)
        drift = _latest_metadata(instance, batch_id, "drift_report")
        if batch_id in outcome.failed:
            run = f"[red]failed: {outcome.failed[batch_id].splitlines()[0]}"
        elif batch_id in outcome.succeeded:
            run = "[green]succeeded"
        elif batch_id in already:
            run = "already ingested"
        else:
            run = "-"
        table.add_row(
            batch_id,
            "[green]new" if batch_id in registered else "known",
            run,
            f"{meta['dagster/row_count']:,}" if "dagster/row_count" in meta else "",
            f"{meta['bytes']:,}" if "bytes" in meta else "",
            _drift_cell(drift),
        )
    console.print(table)
    console.print(
        f"Registered {len(registered)} new batch partition(s); ran {len(outcome.succeeded)} "
        f"ingest run(s), {len(outcome.failed)} failed; {len(already)} batch(es) already ingested. "
        f"Done in {time.perf_counter() - started:.1f} s."
    )
    console.rule("[bold]Where to look next")
    console.print(f"Dagster UI on this demo's instance: [bold]make ui[/] (DAGSTER_HOME={home})")
    reports = [b for b in instance.get_dynamic_partitions("batches") if _has_report(b)]
    if reports:
        console.print(
            f"Drift reports ({len(reports)}): the `drift_report` asset's page in the UI, or "
            f"{report_url('drift', reports[-1])} once `make ui` (or `fraud reports`) runs"
        )
    if outcome.failed:
        raise SystemExit(1)


def _date(text: str):  # noqa: ANN202
    import datetime as dt

    return dt.date.fromisoformat(text)


def _drift_cell(meta: dict) -> str:
    if "drift_share" not in meta:
        return meta.get("verdict", "")
    color = "red" if meta.get("drifted") else "green"
    return f"[{color}]{meta['verdict']}[/] ({meta['drift_share']:.0%} of columns)"


def _has_report(batch_id: str) -> bool:
    from fraud_assets.lake import REPORTS
    from resources.environments import lake_url

    return os.path.exists(os.path.join(lake_url(), REPORTS, "drift", f"{batch_id}.html"))


def _latest_metadata(instance, batch_id: str, asset: str = "raw_transactions") -> dict:  # noqa: ANN001
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[batch_id]),
        limit=1,
    ).records
    if not records:
        return {}
    materialization = records[0].asset_materialization
    return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}
