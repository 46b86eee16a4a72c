"""The model the service scores with: the registry's champion, hot-swapped when the alias moves.

`ModelSource.current` is one immutable `LoadedModel` (CatBoost model, threshold, version, input
column order) held in a single attribute. `refresh()` reads the alias; when it points at another
version it loads that version completely (model and threshold from the same version, see
`ModelRegistry.load`) and only then replaces the reference. A request reads `current` once and
uses that object throughout, so it never sees a half-swapped state or a model paired with another
version's threshold.

When the registry cannot be reached (or a load fails) the last good model keeps serving:
`healthy` turns False and `last_error` says why, until a later refresh succeeds. An alias that
disappears also leaves the current model in place (reported in `last_error`, still healthy).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraud_assets.features.feedback import FEEDBACK_FEATURES
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.serving.fast_trees import ObliviousTrees

log = logging.getLogger(__name__)

# Up to this many rows (a request or a micro-batch of them) the numpy trees beat CatBoost's
# per-call overhead; beyond, CatBoost's own multithreaded evaluation wins.
TREES_MAX_ROWS = 256


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # catboost.CatBoostClassifier
    threshold: float
    version: int
    feature_names: tuple[str, ...]
    trees: ObliviousTrees | None = None  # the same model for single rows, without a Pool each
    review_threshold: float | None = None  # [review, threshold): the investigators' queue
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def probabilities(self, x: np.ndarray) -> list[float]:
        """P(fraud) for the rows of x, in input column order `feature_names`."""
        if len(x) <= TREES_MAX_ROWS and self.trees is not None and not np.isnan(x).any():
            return self.trees.proba(x).tolist()
        # One thread: for the few rows of a request, starting a thread pool costs more than it
        # saves; large batches get all cores.
        threads = 1 if len(x) < 64 else -1
        return [float(p) for p in self.model.predict_proba(x, thread_count=threads)[:, 1]]

    @classmethod
    def of(
        cls, model: Any, threshold: float, version: int, review_threshold: float | None = None
    ) -> LoadedModel:
        names = tuple(model.feature_names_ or ()) or tuple(FEATURE_COLUMNS)
        missing = [n for n in names if n not in FEATURE_COLUMNS and n not in FEEDBACK_FEATURES]
        if missing:
            raise ValueError(
                f"model v{version} needs inputs serving does not compute: {', '.join(missing)}"
            )
        return cls(
            model=model,
            threshold=float(threshold),
            version=int(version),
            feature_names=names,
            trees=ObliviousTrees.from_catboost(model),
            review_threshold=None if review_threshold is None else float(review_threshold),
        )


@dataclass(frozen=True)
class SourceStatus:
    """A consistent view for /readyz and metrics."""

    loaded: bool
    version: int | None
    threshold: float | None
    healthy: bool
    last_error: str | None
    last_check: dt.datetime | None
    last_success: dt.datetime | None
    swaps: int


class ModelSource:
    """Holds the served model; `refresh()` polls the registry alias and swaps atomically.

    `registry` is a `fraud_assets.modeling.registry.ModelRegistry` (anything with
    `by_alias(alias)` and `load(version)` works). It may be replaced at run time (e.g. pointed at
    another tracking server); the next refresh uses the new one.
    """

    def __init__(
        self,
        registry: Any,
        alias: str = "champion",
        on_swap: Callable[[LoadedModel | None, LoadedModel], None] | None = None,
    ) -> None:
        self.registry = registry
        self.alias = alias
        self.on_swap = on_swap
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()  # one load at a time; readers never take it
        self.healthy = True
        self.last_error: str | None = None
        self.last_check: dt.datetime | None = None
        self.last_success: dt.datetime | None = None
        self.swaps = 0

    @classmethod
    def from_settings(cls, settings: Any) -> ModelSource:
        from fraud_assets.modeling.registry import ModelRegistry  # mlflow: heavy, import late

        registry = ModelRegistry(
            settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            artifact_location=settings.mlflow_artifacts,
        )
        return cls(registry, alias=settings.model_alias)

    @classmethod
    def fixed(
        cls, model: Any, threshold: float, version: int, review_threshold: float | None = None
    ) -> ModelSource:
        """A source serving one given model (no registry): for tests and offline tools."""
        source = cls(registry=None)
        source._current = LoadedModel.of(model, threshold, version, review_threshold)
        return source

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def status(self) -> SourceStatus:
        current = self._current
        return SourceStatus(
            loaded=current is not None,
            version=current.version if current else None,
            threshold=current.threshold if current else None,
            healthy=self.healthy,
            last_error=self.last_error,
            last_check=self.last_check,
            last_success=self.last_success,
            swaps=self.swaps,
        )

    def refresh(self) -> bool:
        """Re-read the alias; load and swap in a new version. True when the model changed.

        Never raises for registry problems: they are recorded in `healthy` / `last_error` and the
        current model stays.
        """
        if self.registry is None:
            return False
        with self._refresh_lock:
            self.last_check = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            try:
                info = self.registry.by_alias(self.alias)
                if info is None:
                    self.healthy = True
                    self.last_success = self.last_check
                    self.last_error = (
                        f"model {self._model_name()!r} has no version with alias {self.alias!r}"
                    )
                    return False
                current = self._current
                if current is not None and current.version == info.version:
                    self.healthy, self.last_error = True, None
                    self.last_success = self.last_check
                    return False
                # Load by fixed version number: model and threshold come from that version even
                # if the alias moves again meanwhile.
                model, threshold = self.registry.load(info.version)
                loaded = LoadedModel.of(model, threshold, info.version, info.review_threshold)
            except Exception as e:  # noqa: BLE001 - any registry/load failure keeps the old model
                self.healthy = False
                self.last_error = f"{type(e).__name__}: {e}"[:500]
                served = f"v{self._current.version}" if self._current else "nothing"
                log.warning("Model registry refresh failed (serving %s): %s", served, e)
                return False
            previous, self._current = self._current, loaded  # the one atomic swap
            self.swaps += 1
            self.healthy, self.last_error = True, None
            self.last_success = self.last_check
            log.info(
                "Now serving %s v%d (threshold %.6g), was %s; loaded in %.2fs",
                self._model_name(),
                loaded.version,
                loaded.threshold,
                f"v{previous.version}" if previous else "nothing",
                time.perf_counter() - started,
            )
        if self.on_swap is not None:
            self.on_swap(previous, loaded)
        return True

    def _model_name(self) -> str:
        return str(getattr(self.registry, "model_name", "model"))
