"""Named points where a lake writer can be made to die, for the crash tests.

`FRAUD_LAKE_CRASH_AT=[stage:]point` ends the process with `os._exit` (no clean-up, no `finally`,
as `kill -9` would) when a commit reaches that point; the stage (`clean`, `features`) narrows it
to one stage's commits. Unset, each check is one dictionary look-up.
"""

from __future__ import annotations

import os

# Declared in fraud_assets.settings (TestHookSettings); read here directly: it is looked at on
# every commit point, where building a settings object each time would show.
CRASH_ENV = "FRAUD_LAKE_CRASH_AT"
KILLED = 137  # the exit status a shell reports for kill -9

BEFORE_FIRST_FILE = "before_first_file"
MID_FILE = "mid_file"  # half of the first data file is on disk
AFTER_FIRST_FILE = "after_first_file"
BEFORE_MANIFEST = "before_manifest"  # every data file written, the commit not yet
MID_MANIFEST = "mid_manifest"  # half of the manifest's temporary file is on disk
AFTER_MANIFEST = "after_manifest"  # committed, superseded files not yet removed
POINTS = (
    BEFORE_FIRST_FILE,
    MID_FILE,
    AFTER_FIRST_FILE,
    BEFORE_MANIFEST,
    MID_MANIFEST,
    AFTER_MANIFEST,
)


def armed(stage: str, point: str) -> bool:
    wanted = os.environ.get(CRASH_ENV)
    return wanted is not None and wanted in (point, f"{stage}:{point}")


def crash_if(stage: str, point: str) -> None:
    if armed(stage, point):
        die()


def die() -> None:
    os._exit(KILLED)
