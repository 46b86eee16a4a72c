"""Tick a sensor and carry out its result in this process, as the Dagster daemon would.

`make demo` and the tests use it, so neither needs a daemon: partitions the tick adds are added,
and each run request whose run key has not run yet executes in process on the given instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG


@dataclass
class TickOutcome:
    added_partitions: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)  # partition keys
    failed: dict[str, str] = field(default_factory=dict)  # partition key -> error message
    already_run: list[str] = field(default_factory=list)  # run keys seen before
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
    """`on_run(key, succeeded)` is called after each requested run (progress bars)."""
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
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
        key = request.partition_key or run.run_id
        if run.success:
            outcome.succeeded.append(key)
        else:
            outcome.failed[key] = _failure_message(run)
        if on_run is not None:
            on_run(key, run.success)
    return outcome


def _has_run(instance: dg.DagsterInstance, run_key: str) -> bool:
    return bool(instance.get_run_ids(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def _failure_message(run: dg.ExecuteInProcessResult) -> str:
    for event in run.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            return error.message.strip() if error is not None else "step failed"
    return "run failed"
