"""A copy of the champion kept in the lake, so batch runs score without importing MLflow.

MLflow's registry stays the source of truth (aliases `champion`, `challenger`). Importing MLflow
and CatBoost costs several seconds in every fresh run process, which the drift step of a daily
batch cannot afford; what it needs is the champion's trees, threshold and feature list. So each
time the platform reads the registry (the champion review, `fraud model promote/rollback`, and
the retraining sensor on every tick, which also notices aliases moved in MLflow's own UI), it
writes the current champion here:

    {lake}/models/{model}/v{version}.json     the version: threshold, features, CatBoost JSON trees
    {lake}/models/champion.json               which version is champion (or none), and when synced

Scoring uses the numpy evaluation of oblivious trees that serving uses (checked against CatBoost
when the snapshot is written); a model it cannot represent is scored by CatBoost from the JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

MODELS = "models"
POINTER = "champion.json"


@dataclass(frozen=True)
class ChampionSnapshot:
    name: str
    version: int
    threshold: float | None
    features: list[str]
    train_window: str | None = None  # "YYYY-MM-DD..YYYY-MM-DD", the version's tag
    # The numpy trees reproduced CatBoost when the snapshot was written (else CatBoost scores).
    trees_checked: bool = False
    model_json: dict[str, Any] = field(default_factory=dict, repr=False)

    def train_dates(self) -> tuple[dt.date, dt.date] | None:
        if not self.train_window:
            return None
        first, last = self.train_window.split("..")
        return dt.date.fromisoformat(first), dt.date.fromisoformat(last)

    def scorer(self) -> Callable[[pl.DataFrame], np.ndarray]:
        """P(fraud) for each row of a feature frame, with this version's trees."""
        from fraud_assets.serving.fast_trees import ObliviousTrees

        names = list(self.features)
        trees = ObliviousTrees._parse(self.model_json) if self.trees_checked else None  # noqa: SLF001
        if trees is not None:
            return lambda frame: trees.proba(_matrix(frame, names))
        model = _catboost_from_json(self.model_json)
        return lambda frame: model.predict_proba(_matrix(frame, names))[:, 1]


def _matrix(frame: pl.DataFrame, names: list[str]) -> np.ndarray:
    return frame.select(names).cast(pl.Float64).to_numpy()


def _catboost_from_json(exported: dict[str, Any]) -> Any:  # noqa: ANN401 - CatBoost is optional
    import os
    import tempfile

    from catboost import CatBoostClassifier

    handle, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(exported, f)
        model = CatBoostClassifier()
        model.load_model(path, format="json")
        return model
    finally:
        os.unlink(path)


def _version_path(lake: Any, name: str, version: int) -> str:  # noqa: ANN401 - a Lake
    return lake.path(MODELS, name, f"v{version}.json")


def read_version(lake: Any, name: str, version: int) -> ChampionSnapshot | None:  # noqa: ANN401
    path = _version_path(lake, name, version)
    if not lake.fs.exists(path):
        return None
    data = json.loads(lake.fs.cat_file(path))
    return ChampionSnapshot(**data)


def read_champion(lake: Any) -> tuple[bool, ChampionSnapshot | None]:  # noqa: ANN401 - a Lake
    """(whether a sync ever happened, the champion it found or None)."""
    lake.fs.invalidate_cache(lake.root)
    pointer = lake.path(MODELS, POINTER)
    if not lake.fs.exists(pointer):
        return False, None
    data = json.loads(lake.fs.cat_file(pointer))
    if data.get("version") is None:
        return True, None
    return True, read_version(lake, data["name"], int(data["version"]))


def write_champion(lake: Any, snapshot: ChampionSnapshot | None, model_name: str) -> None:  # noqa: ANN401
    lake.fs.makedirs(lake.path(MODELS, model_name), exist_ok=True)
    if snapshot is not None:
        path = _version_path(lake, snapshot.name, snapshot.version)
        if not lake.fs.exists(path):
            _write_json(lake, path, asdict(snapshot))
    pointer = {
        "name": model_name,
        "version": snapshot.version if snapshot else None,
        "synced_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json(lake, lake.path(MODELS, POINTER), pointer)


def _write_json(lake: Any, path: str, data: dict) -> None:  # noqa: ANN401
    from fraud_assets.lake.atomic import write_json_atomic

    write_json_atomic(lake.fs, path, data)  # readers see the old file or the new, never half


def sync_champion(registry: Any, lake: Any) -> ChampionSnapshot | None:  # noqa: ANN401
    """Write the registry's current champion (or its absence) to the lake; return it.

    Cheap when nothing changed: one alias lookup. A new champion is exported from CatBoost once.
    """
    champion = registry.champion()
    if champion is None:
        write_champion(lake, None, registry.model_name)
        return None
    known = read_version(lake, registry.model_name, champion.version)
    if known is None:
        model, threshold = registry.load(champion.version)
        known = snapshot_of(
            model,
            registry.model_name,
            champion.version,
            threshold,
            champion.tags.get("train_window"),
        )
    write_champion(lake, known, registry.model_name)
    return known


def snapshot_of(
    model: Any,  # noqa: ANN401 - a fitted CatBoostClassifier
    name: str,
    version: int,
    threshold: float | None,
    train_window: str | None = None,
) -> ChampionSnapshot:
    return ChampionSnapshot(
        name=name,
        version=version,
        threshold=threshold,
        features=list(model.feature_names_),
        train_window=train_window,
        trees_checked=_trees_reproduce(model),
        model_json=_export(model),
    )


def _trees_reproduce(model: Any) -> bool:  # noqa: ANN401 - a CatBoost model
    from fraud_assets.serving.fast_trees import ObliviousTrees

    return ObliviousTrees.from_catboost(model) is not None


def _export(model: Any) -> dict[str, Any]:  # noqa: ANN401 - a CatBoost model
    from fraud_assets.serving.fast_trees import _export_json

    return _export_json(model)
