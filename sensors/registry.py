"""The terminal registry sensor: a changed `terminals.csv` in the landing zone is loaded."""

from __future__ import annotations

import hashlib

import dagster as dg

from fraud_assets.defs.registry import refresh_terminal_registry
from fraud_assets.rawdata.format import TERMINALS_FILE
from fraud_assets.settings import batch_settings
from resources.storage import LandingZone


@dg.sensor(
    job=refresh_terminal_registry,
    minimum_interval_seconds=batch_settings().landing_sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Requests a terminal_registry run when {TERMINALS_FILE} in the landing zone "
    "is new or has changed (one run per content).",
)
def terminal_registry_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZone
) -> dg.SensorResult | dg.SkipReason:
    data = landing_zone.read_file(TERMINALS_FILE)
    if data is None:
        return dg.SkipReason(f"No {TERMINALS_FILE} in {landing_zone.url}")
    digest = hashlib.sha256(data).hexdigest()[:16]
    if digest == context.cursor:
        return dg.SkipReason(f"{TERMINALS_FILE} unchanged ({digest})")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"terminals:{digest}")], cursor=digest
    )
