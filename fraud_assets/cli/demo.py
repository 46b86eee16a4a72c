"""`make demo`: the whole lifecycle on embedded defaults, in one process, no daemon needed.

Simulate → landing sensor → ingest (raw, clean, features, drift) per batch → retraining sensor →
train the first champion → a week later: the newest batches land, are ingested, and a challenger
trained on the newer window is reviewed against the champion (promoted or kept out, with the
interval) → the champion's measured performance on labelled batches → scoring service on the
champion → replay of the newest day → summary. Running it twice is safe: batches and trainings
already done are recognised by their run keys.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEMO_START = dt.date(2025, 1, 1)
DEMO_TRAINING_WINDOW_DAYS = 14  # + 7 validation + 7 review + 7 label delay = 35 days of data
DRIFT_FROM_END = 3  # the last 3 days drift on purpose (amounts ×1.5, volume ×1.5)
DIRTY_RATE = 0.002  # a few damaged rows per batch, to show the quarantine
LATER_DAYS = 7  # the last week lands after the first champion: its challenger is reviewed
PERFORMANCE_BATCHES = 2  # the newest labelled batches the champion is measured on


@dataclass
class DemoSummary:
    batches: int = 0
    rows: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    model: dict[str, object] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    performance: list[str] = field(default_factory=list)
    scoring: dict[str, object] = field(default_factory=dict)
    desk: dict[str, object] = field(default_factory=dict)


def run_demo(console: Console, days: int, customers: int, terminals: int) -> None:
    # Environment first: the definitions read it when they are imported.
    os.environ.setdefault("FRAUD_TRAINING_WINDOW_DAYS", str(DEMO_TRAINING_WINDOW_DAYS))
    from fraud_assets.dev.instance import prepare_instance
    from fraud_assets.settings import data_dir, lake_url, landing_url

    home = os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home"))
    prepare_instance(home)

    import dagster as dg

    from fraud_assets.cli.simulate import run_simulation, summary_line
    from fraud_assets.definitions import defs
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.params import DriftScenario

    started = time.perf_counter()
    summary = DemoSummary()
    url = landing_url()

    # Simulated into a holding folder; batches are moved into the landing zone in two waves.
    fs, landing_root = filesystem_for(url)
    incoming = landing_root.rstrip("/") + "-incoming"
    console.rule(f"[bold]1. Simulate {days} days of card transactions into {incoming}")
    params = SimulationParams(
        customers=customers,
        terminals=terminals,
        days=days,
        start_date=DEMO_START,
        seed=42,
        drift=DriftScenario(
            start_day=max(days - DRIFT_FROM_END, 1), amount_factor=1.5, tx_per_day_factor=1.5
        ),
    )
    simulated = run_simulation(params, fs, incoming, DIRTY_RATE)
    console.print(escape(summary_line(simulated, incoming)))
    # The first wave is at least a whole training window, so the first champion can be trained.
    needed = defs.resources["model_training"].days_needed()
    later = max(min(LATER_DAYS, len(simulated.batches) - needed), 0)
    first_wave = simulated.batches[: len(simulated.batches) - later]
    later_wave = simulated.batches[len(first_wave) :]

    instance = dg.DagsterInstance.get()
    console.rule(
        f"[bold]2. {len(first_wave)} batches land; landing sensor: ingest them in ranged runs"
    )
    _land(fs, incoming, landing_root, first_wave)
    failed = _ingest(console, defs, instance, summary, len(first_wave))

    console.rule("[bold]3. Retraining sensor: train the first model, which becomes champion")
    failed |= _train_and_review(console, defs, instance, summary)

    if later_wave:
        console.rule(f"[bold]4. A week later: {len(later_wave)} more batches land and are ingested")
        _land(fs, incoming, landing_root, later_wave)
        failed |= _ingest(console, defs, instance, summary, len(later_wave))
        console.rule(
            "[bold]5. Retraining sensor: a challenger on the newer window, reviewed against "
            "the champion"
        )
        failed |= _train_and_review(console, defs, instance, summary)
        console.rule("[bold]6. Champion performance on the newest batches with known labels")
        failed |= _performance(console, defs, instance, summary)

    console.rule("[bold]7. Scoring service: the champion answers the newest day, one by one")
    newest = sorted(Path(url).glob("*.txt"))[-1]
    _score_newest_day(console, newest, lake_url(), summary)

    _model_report(console, instance, summary, quiet=True)
    _batches_table(console, instance, summary)
    _print_summary(console, summary, home, time.perf_counter() - started)
    if failed:
        raise SystemExit(1)


def _land(fs, incoming: str, landing: str, batches: list[str]) -> None:  # noqa: ANN001
    """Move batches into the landing zone as a bank's export would arrive: terminal master data
    first, then per batch its defect manifest, its data file, and its completion marker last."""
    from fraud_assets.rawdata.format import TERMINALS_FILE, data_name, manifest_name, marker_name

    fs.makedirs(landing, exist_ok=True)
    if fs.exists(f"{incoming}/{TERMINALS_FILE}"):
        fs.copy(f"{incoming}/{TERMINALS_FILE}", f"{landing}/{TERMINALS_FILE}")
    for batch in batches:
        for name in (manifest_name(batch), data_name(batch), marker_name(batch)):
            if fs.exists(f"{incoming}/{name}"):
                fs.mv(f"{incoming}/{name}", f"{landing}/{name}")


def _ingest(console: Console, defs, instance, summary: DemoSummary, days: int) -> bool:  # noqa: ANN001
    """Landing sensor → ranged ingest runs → online state; True when anything failed."""
    from fraud_assets.cli.console import progress_bar
    from fraud_assets.dev.inprocess import publish_after, tick_sensor

    # The terminal registry first: cleaning quarantines rows of terminals the bank does not know.
    registry = tick_sensor(defs, instance, "terminal_registry_sensor", log_level="WARNING")
    for key, error in registry.failed.items():
        console.print(f"[red]terminal registry run {key} failed: {escape(error.splitlines()[0])}")
    ingest_started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("ingest (raw → clean → features → drift)", total=days, detail="")
        outcome = tick_sensor(
            defs,
            instance,
            "landing_sensor",
            log_level="WARNING",
            on_run=lambda key, ok: progress.update(
                task, advance=1, detail=f"{key} {'ok' if ok else 'FAILED'}"
            ),
        )
    for key, error in outcome.failed.items():
        console.print(f"[red]{escape(key)}: {escape(error.splitlines()[0])}")
    with console.status("online_feature_state: publishing the state the scoring service loads…"):
        publish_failed = publish_after(defs, instance, outcome.runs, log_level="WARNING")
    for run_id in publish_failed:
        console.print(f"[red]online_feature_state run {run_id} failed")
    took = time.perf_counter() - ingest_started
    console.print(
        f"{len(outcome.added_partitions)} new partition(s); {len(outcome.succeeded)} batch(es) "
        f"ingested in {len(outcome.runs)} ranged run(s) in {took:.0f} s "
        f"(at most FRAUD_BATCHES_PER_RUN per run); {len(outcome.failed)} failed, "
        f"{len(outcome.already_run)} run(s) already done."
    )
    return bool(outcome.failed or registry.failed or publish_failed)


def _train_and_review(console: Console, defs, instance, summary: DemoSummary) -> bool:  # noqa: ANN001
    from fraud_assets.dev.inprocess import tick_sensor

    with console.status("training CatBoost and running the champion–challenger review…"):
        training = tick_sensor(defs, instance, "retraining_sensor", log_level="WARNING")
    if training.skip_reason:
        console.print(f"retraining_sensor: {escape(training.skip_reason)}")
    for key, error in training.failed.items():
        console.print(f"[red]training run {key} failed: {escape(error.splitlines()[0])}")
    _model_report(console, instance, summary)
    return bool(training.failed)


def _performance(console: Console, defs, instance, summary: DemoSummary) -> bool:  # noqa: ANN001
    """champion_performance of the newest batches whose labels are known (older than the delay)."""
    import dagster as dg

    from fraud_assets.defs.performance import champion_performance

    batches = sorted(instance.get_dynamic_partitions("batches"))
    delay = defs.resources["model_training"].delay_days
    labelled = batches[: max(len(batches) - delay, 0)][-PERFORMANCE_BATCHES:]
    failed = False
    for batch in labelled:
        result = dg.materialize(
            [champion_performance],
            resources=defs.resources,
            instance=instance,
            partition_key=batch,
            raise_on_error=False,
            tags={"fraud/demo": "performance"},
        )
        if not result.success:
            console.print(f"[red]champion_performance {batch} failed")
            failed = True
            continue
        m = {
            k: v.value
            for k, v in result.asset_materializations_for_node("champion_performance")[
                0
            ].metadata.items()
        }
        validation = m.get("validation_average_precision", float("nan"))
        line = (
            f"{batch}: champion v{m['champion_version']} AUC {m['auc_roc']:.3f}, AP "
            f"{m['average_precision']:.3f} (validation {validation:.3f}), "
            f"card precision@100 {m['card_precision_at_100']:.3f}, recall {m['recall']:.3f} and "
            f"FPR {m['fpr']:.3f} at the served threshold, alert rate {m['alert_rate']:.3%}"
        )
        summary.performance.append(line)
        console.print(line)
    return failed


def _batches_table(console: Console, instance, summary: DemoSummary) -> None:  # noqa: ANN001
    from fraud_assets.lake import QUARANTINE, Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.settings import lake_url

    table = Table(title="Batches")
    for column in ("batch", "raw rows", "clean", "quarantined", "drift"):
        table.add_column(column, justify="left" if column in ("batch", "drift") else "right")
    for batch_id in instance.get_dynamic_partitions("batches"):
        raw = _latest_metadata(instance, batch_id, "raw_transactions")
        clean = _latest_metadata(instance, batch_id, "clean_transactions")
        drift = _latest_metadata(instance, batch_id, "drift_report")
        summary.batches += 1
        summary.rows += int(raw.get("dagster/row_count", 0))
        if drift.get("drifted"):
            summary.drifted.append(batch_id)
        table.add_row(
            batch_id,
            f"{raw.get('dagster/row_count', 0):,}",
            f"{clean.get('dagster/row_count', 0):,}",
            f"{clean.get('quarantined', 0):,}",
            _drift_cell(drift),
        )
    console.print(table)
    quarantine = Lake(*filesystem_for(lake_url())).read_table(QUARANTINE)  # committed rows
    if quarantine.height:
        reasons = quarantine["reason"].value_counts(sort=True)
        summary.quarantined = dict(reasons.iter_rows())


def _model_report(console: Console, instance, summary: DemoSummary, quiet: bool = False) -> None:  # noqa: ANN001, E501
    import dagster as dg

    def latest(asset: str) -> list[dict]:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=20).records
        return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records]

    models, reviews = latest("challenger_model"), latest("champion_review")
    if not models:
        console.print("[yellow]No model trained yet.")
        return
    summary.model = models[0]
    summary.decisions = [
        f"v{r.get('challenger_version')}: {r.get('decision')} — {r.get('reason')}"
        for r in reversed(reviews)
    ]
    if not quiet and summary.decisions:
        console.print(summary.decisions[-1])


def _score_newest_day(console: Console, raw_file: Path, lake: str, summary: DemoSummary) -> None:
    import uvicorn

    from fraud_assets.serving.app import create_app
    from fraud_assets.serving.replay import raw_requests, replay
    from fraud_assets.serving.settings import ServiceSettings
    from fraud_assets.serving.wiring import build_scorer

    settings = ServiceSettings(origin_date=DEMO_START, model_poll_seconds=3600, lake_url=lake)
    # The online state the `online_feature_state` asset published with each batch, loaded from
    # the lake as `fraud serve` does at start (warm start).
    scorer = build_scorer(settings, warm=True, emit=console.print)
    scorer.model_source.refresh()
    if scorer.model_source.current is None:
        error = scorer.model_source.last_error or "the registry has no champion"
        console.print(
            f"[yellow]No champion model ({escape(str(error))}): skipping the scoring step."
        )
        return
    day = dt.date.fromisoformat(raw_file.stem)
    from fraud_assets.serving.desk.desk import Desk

    desk = Desk()  # the investigators' desk watches the replayed day
    scorer.observers.append(desk.observe)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(scorer, settings=settings), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        requests = raw_requests(raw_file)
        with console.status(f"replaying {len(requests):,} transactions of {day}…"):
            result = replay(f"http://127.0.0.1:{port}", requests)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    summary.scoring = {
        "day": day.isoformat(),
        "transactions": result.sent,
        "per_second": result.per_second,
        "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99),
        "statuses": dict(result.statuses),
        "decisions": dict(result.decisions),
        "model_versions": dict(result.model_versions),
    }
    console.print(
        f"{result.sent:,} transactions of {day} in {result.seconds:.1f} s: "
        f"{result.per_second:,.0f} tx/s, p50 {result.percentile(50):.1f} ms, "
        f"p99 {result.percentile(99):.1f} ms (HTTP round trips; 4 client threads share the "
        "service's process, so this is a lower bound: see BENCHMARKS.md)"
    )
    _play_investigators(console, scorer, desk, raw_file, day, summary)


def _play_investigators(
    console: Console, scorer: Any, desk: Any, raw_file: Path, day: dt.date, summary: DemoSummary
) -> None:
    """A day through the desk: the top cards of the queue, decided from the simulator's truth
    (the label column of the raw file), become labels and feedback features at once."""
    import contextlib

    import polars as pl

    from fraud_assets.rawdata.format import COLUMNS
    from fraud_assets.serving.desk.desk import Verdict
    from fraud_assets.serving.scoring import UnknownTransaction

    raw = pl.read_csv(
        raw_file,
        has_header=False,
        skip_rows=1,
        new_columns=list(COLUMNS),
        schema_overrides={"tx_datetime": pl.String},
        ignore_errors=True,
        truncate_ragged_lines=True,
    )
    truth = dict(
        raw.drop_nulls(["transaction_id", "tx_fraud"])
        .select("transaction_id", "tx_fraud")
        .iter_rows()
    )
    queue = desk.queue(day)
    labelled_fraud: set[int] = set()

    def label(transaction_id: int, fraud: bool, source: str) -> None:
        with contextlib.suppress(UnknownTransaction):
            scorer.feedback(transaction_id=transaction_id, fraud=fraud, source=source)
            if fraud:
                labelled_fraud.add(transaction_id)

    confirmed = 0
    terminals: set[int] = set()
    for entry in queue:
        window = desk.window(entry.card, day)
        fraud = any(truth.get(s.transaction_id) == 1 for s in window)
        confirmed += fraud
        verdict = Verdict.fraud if fraud else Verdict.genuine
        desk.decide(entry.card, day, verdict, "demo: the simulator's truth", "demo", label)
        terminals |= {s.terminal for s in window if s.transaction_id in labelled_fraud}
    summary.desk = {
        "queue": len(queue),
        "confirmed": confirmed,
        "precision": confirmed / desk.budget,
        "labelled": len(labelled_fraud),
        "terminals": len(terminals),
    }
    console.print(
        f"desk: {len(queue)} cards checked from the queue of {day}, {confirmed} confirmed fraud "
        f"(card precision@{desk.budget} {confirmed / desk.budget:.2f}); {len(labelled_fraud)} "
        f"transactions labelled fraud at once, {len(terminals)} terminals now carry confirmed "
        "fraud in their feedback features"
    )


def _print_summary(console: Console, s: DemoSummary, home: str, seconds: float) -> None:
    from fraud_assets.monitoring.report_links import report_url

    console.rule("[bold]Summary")
    table = Table(show_header=False)
    table.add_row("batches", f"{s.batches}")
    table.add_row("raw rows", f"{s.rows:,}")
    quarantined = ", ".join(f"{k} {v:,}" for k, v in s.quarantined.items()) or "none"
    table.add_row("quarantined by reason", quarantined)
    table.add_row("drifted batches", ", ".join(s.drifted) or "none")
    if s.model:
        m = s.model
        table.add_row(
            "model (validation slice)",
            f"v{m.get('model_version')}: AUC {m.get('validation_auc_roc', 0):.3f}, "
            f"AP {m.get('validation_average_precision', 0):.3f}, "
            f"card precision@100 {m.get('validation_card_precision_at_100', 0):.3f}, "
            f"recall {m.get('validation_recall', 0):.3f} and FPR {m.get('validation_fpr', 0):.3f} "
            f"at threshold {m.get('threshold', 0):.4f}",
        )
    table.add_row("promotion decisions", "\n".join(s.decisions) or "none")
    table.add_row("champion performance", "\n".join(s.performance) or "none")
    if s.scoring:
        c = s.scoring
        table.add_row(
            "scoring",
            f"{c['transactions']:,} tx of {c['day']}: {c['per_second']:,.0f} tx/s, "
            f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms; statuses {c['statuses']}; "
            f"{c['decisions']}. It is one of the last {DRIFT_FROM_END} days, drifted on purpose "
            "(amounts and volume × 1.5): expect many more blocks than on a normal day",
        )
    if s.desk:
        d = s.desk
        table.add_row(
            "investigators' desk",
            f"{d['queue']} cards checked, {d['confirmed']} confirmed fraud (card precision@100 "
            f"{d['precision']:.2f}); {d['labelled']} transactions labelled fraud the same day "
            f"instead of after the 7-day delay, so the next transactions at {d['terminals']} "
            "terminals and on those cards carry the confirmed-fraud feedback features "
            "(`fraud investigate --simulate` measures the uplift over months)",
        )
    table.add_row("total time", f"{seconds:.0f} s")
    console.print(table)
    console.rule("[bold]Where to look next")
    console.print(f"Dagster UI and drift reports: [bold]make ui[/] (DAGSTER_HOME={home})")
    from fraud_assets.settings import platform_settings

    uri = platform_settings().tracking_uri
    console.print(f"MLflow UI: [bold].venv/bin/mlflow ui --backend-store-uri {uri}")
    if s.drifted:
        console.print(f"Drift report of a drifted batch: {report_url('drift', s.drifted[-1])}")
    console.print("Scoring API: [bold]fraud serve[/] then http://127.0.0.1:8000/docs")


def _drift_cell(meta: dict) -> str:
    if "drift_share" not in meta:
        return str(meta.get("verdict", ""))
    color = "red" if meta.get("drifted") else "green"
    return f"[{color}]{meta['verdict']}[/] ({meta['drift_share']:.0%} of columns)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _latest_metadata(instance, batch_id: str, asset: str) -> dict:  # noqa: ANN001
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[batch_id]),
        limit=1,
    ).records
    if not records:
        return {}
    materialization = records[0].asset_materialization
    return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}
