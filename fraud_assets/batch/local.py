"""Raw batches named on the command line: files or folders of them, as a batch source.

`fraud clean` and `fraud features` run the same range code as the Dagster assets over this
source, so a local run checks headers, completion markers, periods and the terminal registry
exactly as the platform does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fraud_assets.rawdata.format import (
    DATA_SUFFIX,
    MARKER_SUFFIX,
    TERMINALS_FILE,
    is_batch_id,
    looks_like_batch_id,
)


@dataclass
class LocalBatches:
    """Batch id -> file; the marker is `YYYY-MM-DD.done` beside the file, when there is one."""

    paths: dict[str, str] = field(default_factory=dict)
    # Files that look like batches but cannot be one (`2025-13-45.txt`), with the reason.
    refused: dict[str, str] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)  # where the inputs are

    def open_batch(self, batch_id: str) -> IO[bytes]:
        return open(self.paths[batch_id], "rb")

    def local_path(self, batch_id: str) -> str:
        return self.paths[batch_id]

    def marker(self, batch_id: str) -> bytes | None:
        path = Path(self.paths[batch_id]).with_suffix(MARKER_SUFFIX)
        return path.read_bytes() if path.exists() else None

    def display_path(self, batch_id: str) -> str:
        return self.paths[batch_id]

    def row_estimate(self, batch_id: str) -> int:
        return Path(self.paths[batch_id]).stat().st_size // 60  # ≈ bytes per raw line

    def terminals_file(self) -> Path | None:
        """The bank's terminal file delivered beside the batches, if any."""
        for folder in self.folders:
            if (folder / TERMINALS_FILE).is_file():
                return folder / TERMINALS_FILE
        return None


class NoSuchInput(ValueError):
    """An input that is neither a file nor a folder."""


def find_batches(inputs: list[str]) -> LocalBatches:
    """Batch files given directly or as folders. A folder's other files are skipped, as the
    landing zone skips them; a file given by name that is no batch is refused with its reason."""
    found = LocalBatches()
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise NoSuchInput(f"{item}: no such file or folder")
        folder = path if path.is_dir() else path.parent
        if folder not in found.folders:
            found.folders.append(folder)
        files = sorted(path.glob(f"*{DATA_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            stem = file.name.removesuffix(DATA_SUFFIX)
            if file.name.endswith(DATA_SUFFIX) and is_batch_id(stem):
                found.paths[stem] = str(file)
            elif file.name.endswith(DATA_SUFFIX) and looks_like_batch_id(stem):
                found.refused[str(file)] = f"batch id {stem!r} is not a real date (YYYY-MM-DD)"
            elif not path.is_dir():
                found.refused[str(file)] = "not a raw batch file (expected YYYY-MM-DD.txt)"
    found.paths = dict(sorted(found.paths.items()))
    return found
