"""Tick a sensor and carry out its result in this process, as the Dagster daemon would.

`make demo` and the tests use it, so neither needs a daemon: partitions the tick adds are added,
and each run request whose run key has not run yet executes in process on the given instance,
over one batch or a range of batches, with the assets the request selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

# Dagster's own run tags, by value (they are data on every run, read by the daemon and the UI).
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class TickOutcome:
    added_partitions: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)  # partition keys
    failed: dict[str, str] = field(default_factory=dict)  # partition key -> error message
    already_run: list[str] = field(default_factory=list)  # run keys seen before
    runs: list[str] = field(default_factory=list)  # run ids, in the order they ran
    skip_reason: str | None = None
    cursor: str | None = None


def tick_sensor(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    sensor_name: str,
    cursor: str | None = None,
    log_level: str = "DEBUG",
    on_run: Callable[[str, bool], None] | None = None,
) -> TickOutcome:
    """`on_run(key, succeeded)` is called for each batch of each requested run (progress bars)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    # instance_ref, not instance: only then does the tick resolve dynamic partition keys.
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        definitions=defs,
        sensor_name=sensor_name,
        cursor=cursor,
        resources=defs.resources,
    ) as context:
        result = sensor.evaluate_tick(context)

    outcome = TickOutcome(cursor=result.cursor if result.cursor is not None else cursor)
    outcome.skip_reason = result.skip_message
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            outcome.added_partitions.extend(request.partition_keys)

    for request in result.run_requests or []:
        if request.run_key and _has_run(instance, request.run_key):
            outcome.already_run.append(request.run_key)
            continue
        job = defs.resolve_job_def(request.job_name or sensor.job_name)
        tags = {**request.tags, SENSOR_NAME_TAG: sensor_name}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        run = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            tags=tags,
            asset_selection=list(request.asset_selection) if request.asset_selection else None,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
        outcome.runs.append(run.run_id)
        keys = _partition_keys(job, request, instance) or [run.run_id]
        failures = {} if run.success else _failures(run, keys)
        for key in keys:
            if key in failures:
                outcome.failed[key] = failures[key]
            else:
                outcome.succeeded.append(key)
            if on_run is not None:
                on_run(key, key not in failures)
    return outcome


def _partition_keys(
    job: dg.JobDefinition, request: dg.RunRequest, instance: dg.DagsterInstance
) -> list[str]:
    if request.partition_key:
        return [request.partition_key]
    start, end = request.tags.get(RANGE_START_TAG), request.tags.get(RANGE_END_TAG)
    partitions = job.partitions_def
    if start is None or end is None or not isinstance(partitions, dg.DynamicPartitionsDefinition):
        return []
    keys = list(instance.get_dynamic_partitions(partitions.name))
    return keys[keys.index(start) : keys.index(end) + 1]


def _has_run(instance: dg.DagsterInstance, run_key: str) -> bool:
    return bool(instance.get_run_ids(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def _failures(run: dg.ExecuteInProcessResult, keys: list[str]) -> dict[str, str]:
    """Failed batch -> message. A ranged step names its failed batches; else all of them failed."""
    for event in run.all_events:
        if not (event.is_step_failure and event.step_failure_data is not None):
            continue
        data = event.step_failure_data
        error = data.error.message.strip() if data.error is not None else "step failed"
        named = (
            data.user_failure_data.metadata.get("failed_batches")
            if data.user_failure_data
            else None
        )
        if named is None:
            return dict.fromkeys(keys, error)
        failed = str(named.value).split(", ")
        lines = {line.split(" ", 1)[0]: line for line in error.splitlines()}
        return {b: lines.get(b, error) for b in failed}
    return dict.fromkeys(keys, "run failed")


def publish_after(
    defs: dg.Definitions, instance: dg.DagsterInstance, run_ids: list[str], log_level: str = "DEBUG"
) -> list[str]:
    """The publish runs `online_state_sensor` requests after these ingest runs, executed in
    process as the daemon would; returns the ids of the publish runs that failed."""
    from fraud_assets.defs.online_state import online_state_request

    job = defs.resolve_job_def("online_state")
    failed = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
            continue
        request = online_state_request(dict(run.tags), run_id)
        if request is None or (request.run_key and _has_run(instance, request.run_key)):
            continue
        tags = {**request.tags, SENSOR_NAME_TAG: "online_state_sensor"}
        tags[RUN_KEY_TAG] = request.run_key or ""
        result = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            tags=tags,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
        if not result.success:
            failed.append(result.run_id)
    return failed
