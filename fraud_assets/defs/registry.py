"""The terminal registry asset: the bank's terminal master data, checked and kept in the lake.

Batch cleaning reads it to quarantine rows whose terminal the bank does not know. It is refreshed
from `terminals.csv` in the landing zone (by `terminal_registry_sensor` when the file changes, or
from the UI). A new file that drops many known terminals at once is refused until someone has
looked at it: a truncated export would otherwise send most rows to quarantine.
"""

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, DATA_PLATFORM, tags
from fraud_assets.rawdata.format import TERMINALS_FILE
from resources.storage import LakeStore, LandingZone

TERMINAL_REGISTRY = dg.AssetKey("terminal_registry")


class RegistrySettings(dg.Config):
    max_removed_share: float = 0.2  # refuse a file that drops more of the known terminals
    accept_removals: bool = False  # set after reviewing such a file, to take it anyway


@dg.asset(
    key=TERMINAL_REGISTRY,
    group_name="ingestion",
    kinds={"csv", "parquet"},
    owners=[DATA_PLATFORM],
    tags=tags("reference", "none"),
    code_version=CODE_VERSIONS["terminal_registry"],
    description=f"Terminal master data from `{TERMINALS_FILE}` in the landing zone: the terminals "
    "batch cleaning accepts (others are quarantined as unknown_terminal).",
)
def terminal_registry(
    context: dg.AssetExecutionContext,
    config: RegistrySettings,
    landing_zone: LandingZone,
    lake: LakeStore,
) -> dg.MaterializeResult:
    import numpy as np

    from fraud_assets.cleaning.terminal_registry import (
        RegistryError,
        parse_registry,
        read_registry,
        write_registry,
    )

    source = landing_zone.display_file(TERMINALS_FILE)
    data = landing_zone.read_file(TERMINALS_FILE)
    if data is None:
        raise dg.Failure(f"{source}: no terminal file in the landing zone", allow_retries=False)
    try:
        registry = parse_registry(data, source)
    except RegistryError as e:
        raise dg.Failure(str(e), allow_retries=False) from None
    store = lake.lake()
    previous = read_registry(store)
    removed = (
        np.setdiff1d(previous.ids, registry.ids, assume_unique=True)
        if previous is not None
        else np.empty(0, dtype=np.int64)
    )
    added = (
        np.setdiff1d(registry.ids, previous.ids, assume_unique=True)
        if previous is not None
        else registry.ids
    )
    if previous is not None and len(previous) and not config.accept_removals:
        share = len(removed) / len(previous)
        if share > config.max_removed_share:
            raise dg.Failure(
                f"{source} drops {len(removed):,} of the {len(previous):,} known terminals "
                f"({share:.0%} > {config.max_removed_share:.0%}): review the file, then "
                "materialize with accept_removals: true to take it.",
                allow_retries=False,
            )
    write_registry(store, registry)
    context.log.info(registry.describe())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(registry),
            "source": source,
            "sha256": registry.sha256,
            "min_terminal_id": int(registry.ids[0]) if len(registry) else -1,
            "max_terminal_id": int(registry.ids[-1]) if len(registry) else -1,
            "added": len(added),
            "removed": len(removed),
        }
    )


refresh_terminal_registry = dg.define_asset_job(
    "refresh_terminal_registry",
    selection=[TERMINAL_REGISTRY],
    description=f"Reload the terminal registry from {TERMINALS_FILE} in the landing zone.",
)
