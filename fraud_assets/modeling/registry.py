"""The MLflow 3 model registry as the platform uses it: aliases, not stages (docs/models.md).

- `challenger`: the newest trained model, waiting for the champion–challenger review.
- `champion`: the model serving scores. Promotion moves this alias; the champions it replaced are
  kept, newest last, in the registered model's tag `champion_history`, and the alias
  `previous-champion` shows the one `rollback()` would restore.
- A version's tags `threshold` and `threshold_policy` carry its operating point, so serving reads
  the model and its threshold from the same version.

Every read and write goes through an explicit `MlflowClient` bound to this registry's URI. Only
logging and registering a model need MLflow's process-wide (fluent) tracking URI (MLflow 3's SQL
registry store resolves `models:/m-...` sources through it): it is set for that call and restored
afterwards, so two registries in one process do not leak into each other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import catboost
import mlflow
import mlflow.catboost
import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

from fraud_assets.modeling.training import TrainedModel

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous-champion"
HISTORY_TAG = "champion_history"  # JSON list of former champion versions, newest last
HISTORY_KEPT = 50
MODEL_ARTIFACT = "model"
FEATURES_ARTIFACT = "features.json"
CARD_ARTIFACT, CARD_TEXT = "model_card.json", "model_card.md"


class RegistryError(LookupError):
    """The registry lacks what was asked for (a version, an alias, a previous champion)."""


class NoPreviousChampionError(RegistryError):
    """`rollback()` found no earlier champion to restore."""


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    run_id: str | None
    threshold: float | None
    threshold_policy: str | None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def review_threshold(self) -> float | None:
        """Scores from here up to `threshold` go to the investigators (absent: no review band)."""
        value = self.tags.get("review_threshold")
        return float(value) if value is not None else None

    @classmethod
    def of(cls, mv: ModelVersion) -> ModelVersionInfo:
        tags = dict(mv.tags or {})
        threshold = tags.get("threshold")
        return cls(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id,
            threshold=float(threshold) if threshold is not None else None,
            threshold_policy=tags.get("threshold_policy"),
            aliases=list(mv.aliases or []),
            tags=tags,
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _has_code(error: MlflowException, *codes: int) -> bool:
    return error.error_code in {ErrorCode.Name(c) for c in codes}


def default_artifact_location(tracking_uri: str) -> str | None:
    """Where artifacts go when the caller does not say: beside a SQLite file, or the server's
    choice for an http(s) tracking server. Other database URIs must be given one."""
    scheme = urlparse(tracking_uri).scheme
    if scheme == "sqlite":
        db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        return (db.parent / "mlartifacts").as_uri()
    if scheme in ("http", "https", "databricks", "file", ""):
        return None
    raise ValueError(
        f"Tracking URI {tracking_uri.split('@')[-1]!r} is a database: pass artifact_location "
        "(a local folder, s3:// or hdfs:// URL) for the model files."
    )


@contextlib.contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at `uri` for one call, then put it back."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


class ModelRegistry:
    """One registered model in one MLflow tracking store (SQLite, PostgreSQL or a server)."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = "fraud-detector",
        experiment: str = "fraud-detection",
        artifact_location: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        if artifact_location is None:
            artifact_location = default_artifact_location(tracking_uri)
        elif "://" not in artifact_location:
            artifact_location = Path(artifact_location).resolve().as_uri()
        self.artifact_location = artifact_location
        self._experiment_id: str | None = None

    @functools.cached_property
    def client(self) -> MlflowClient:
        """Made on first use: opening a SQL store checks (or creates) its schema, which takes
        seconds, so a registry object costs nothing until it is used."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @classmethod
    def embedded(cls, folder: str | Path, **kwargs: str | None) -> ModelRegistry:
        """The laptop default: `folder/mlflow.db` (SQLite) and `folder/mlartifacts`."""
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{folder / 'mlflow.db'}", **kwargs)

    # -- logging ------------------------------------------------------------------------------

    @property
    def experiment_id(self) -> str:
        """The experiment, created on first use with this registry's artifact location."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location=self.artifact_location
                    )
                except MlflowException as e:  # created concurrently by another process
                    if not _has_code(e, RESOURCE_ALREADY_EXISTS):
                        raise
                    self._experiment_id = self.client.get_experiment_by_name(
                        self.experiment
                    ).experiment_id
            else:
                self._experiment_id = found.experiment_id
        return self._experiment_id

    def log_challenger(
        self,
        trained: TrainedModel,
        tags: dict[str, str] | None = None,
        card: dict | None = None,
    ) -> ModelVersionInfo:
        """Log one run (params, validation metrics, features, window, model) and register it as a
        new version carrying its threshold, with the alias `challenger`.

        `tags` (e.g. the Dagster run id and partitions) go on both the run and the version;
        `card` (`model_card.build_card`) is logged as model_card.json and model_card.md.
        """
        tags = {k: str(v) for k, v in (tags or {}).items()}
        window = trained.window
        params = {
            **trained.params,
            **window.as_params(),
            "best_iteration": str(trained.best_iteration),
            "n_features": str(len(trained.feature_names)),
            "feature_names": ",".join(trained.feature_names),
            "threshold": repr(trained.threshold.threshold),
            "threshold_policy": str(trained.threshold.policy),
        }
        metrics = {f"valid_{k}": float(v) for k, v in trained.validation_metrics.items()}
        example = self._example(trained)
        signature = mlflow.models.infer_signature(
            example, pd.Series(trained.model.predict_proba(example)[:, 1], name="fraud_probability")
        )
        run_name = f"train-{window.data_end or window.valid_end}"
        version_tags = {
            **tags,
            "threshold": repr(trained.threshold.threshold),
            "threshold_policy": str(trained.threshold.policy),
            "max_fpr": str(trained.threshold.max_fpr),
            **(
                {"review_threshold": repr(trained.review_threshold)}
                if trained.review_threshold is not None
                else {}
            ),
            "data_end": str(window.data_end),
            "train_window": f"{window.train_start}..{window.train_end}",
            "validation_window": f"{window.valid_start}..{window.valid_end}",
        }
        # MLflow's SQL registry store looks the logged model up through the process-wide URI
        # when creating the version, so registration stays inside the scoped URI too.
        with _fluent_tracking_uri(self.tracking_uri):
            with mlflow.start_run(
                experiment_id=self.experiment_id, run_name=run_name, tags=tags
            ) as run:
                mlflow.log_params(params)
                mlflow.log_dict({"feature_names": trained.feature_names}, FEATURES_ARTIFACT)
                if card is not None:
                    from fraud_assets.modeling.model_card import render

                    mlflow.log_dict(card, CARD_ARTIFACT)
                    mlflow.log_text(render(card, f"{self.model_name}, {run_name}"), CARD_TEXT)
                info = mlflow.catboost.log_model(
                    trained.model,
                    name=MODEL_ARTIFACT,
                    signature=signature,
                    input_example=example,
                    # Stated rather than inferred: inference loads the model in a subprocess.
                    pip_requirements=[
                        f"catboost=={catboost.__version__}",
                        f"mlflow=={mlflow.__version__}",
                        f"numpy=={np.__version__}",
                        f"pandas=={pd.__version__}",
                    ],
                )
                # After the model, so the metrics are linked to it (MLflow 3 logged models) and
                # log_model has no earlier run metrics to copy onto it again.
                mlflow.log_metrics(metrics, model_id=info.model_id)
            self._ensure_registered_model()
            mv = self.client.create_model_version(
                name=self.model_name,
                source=info.model_uri,
                run_id=run.info.run_id,
                tags=version_tags,
                model_id=info.model_id,
            )
        self._link_logged_model(info.model_id, mv)
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, mv.version)
        return self.version(mv.version)

    @staticmethod
    def _example(trained: TrainedModel) -> pd.DataFrame:
        """A few input rows as float64: the type `training.score` feeds the model."""
        if trained.input_example is not None and trained.input_example.height:
            frame = trained.input_example.select(trained.feature_names).to_pandas()
        else:
            frame = pd.DataFrame(np.zeros((1, len(trained.feature_names))))
            frame.columns = trained.feature_names
        return frame.astype("float64")

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(
                self.model_name, description="Card-fraud CatBoost model (fraud_assets.modeling)."
            )
        except MlflowException as e:
            if not _has_code(e, RESOURCE_ALREADY_EXISTS):
                raise

    def _link_logged_model(self, model_id: str | None, mv: ModelVersion) -> None:
        """Tag the logged model with its registered version, as `mlflow.register_model` does."""
        if model_id:
            link = [{"name": mv.name, "version": mv.version}]
            self.client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(link)})

    # -- reading ------------------------------------------------------------------------------

    def version(self, version: int | str) -> ModelVersionInfo:
        try:
            return ModelVersionInfo.of(self.client.get_model_version(self.model_name, str(version)))
        except MlflowException as e:
            if _has_code(e, RESOURCE_DOES_NOT_EXIST):
                raise RegistryError(f"Model {self.model_name!r} has no version {version}.") from e
            raise

    def _registered(self) -> RegisteredModel | None:
        try:
            return self.client.get_registered_model(self.model_name)
        except MlflowException as e:
            if _has_code(e, RESOURCE_DOES_NOT_EXIST):
                return None
            raise

    def by_alias(self, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at, or None.

        Read from the registered model's alias map: a missing alias makes MLflow's
        `get_model_version_by_alias` raise INVALID_PARAMETER_VALUE, which a typo'd name also does.
        """
        model = self._registered()
        if model is None or alias not in (model.aliases or {}):
            return None
        return self.version(model.aliases[alias])

    def champion(self) -> ModelVersionInfo | None:
        return self.by_alias(CHAMPION)

    def challenger(self) -> ModelVersionInfo | None:
        return self.by_alias(CHALLENGER)

    def versions(self) -> list[ModelVersionInfo]:
        """Every version of the model, newest first (none before the first registration)."""
        if self._registered() is None:
            return []
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        return sorted((self.version(mv.version) for mv in found), key=lambda v: -v.version)

    def resolve(self, version_or_alias: int | str) -> ModelVersionInfo:
        """A version number (int or digits) or an alias, resolved once to a fixed version."""
        if isinstance(version_or_alias, int) or str(version_or_alias).isdigit():
            return self.version(version_or_alias)
        found = self.by_alias(str(version_or_alias))
        if found is None:
            raise RegistryError(
                f"Model {self.model_name!r} has no version with alias {version_or_alias!r}."
            )
        return found

    def load(self, version_or_alias: int | str = CHAMPION) -> tuple[CatBoostClassifier, float]:
        """The CatBoost model and its threshold, both from the same resolved version.

        Resolving the alias first means a promotion happening meanwhile cannot pair one version's
        model with another's threshold. The files are read from the version's storage location
        through this registry's client, the same files `models:/name@alias` points at, without
        relying on MLflow's process-wide registry URI.
        """
        info = self.resolve(version_or_alias)
        if info.threshold is None:
            raise RegistryError(f"{self.model_name} v{info.version} has no 'threshold' tag.")
        uri = self.client.get_model_version_download_uri(self.model_name, str(info.version))
        return mlflow.catboost.load_model(uri), info.threshold

    # -- promotion ----------------------------------------------------------------------------

    def history(self) -> list[int]:
        """Former champions, newest last: what successive `rollback()` calls restore."""
        model = self._registered()
        if model is None:
            return []
        return [int(v) for v in json.loads((model.tags or {}).get(HISTORY_TAG, "[]"))]

    def _save_history(self, history: list[int]) -> None:
        history = history[-HISTORY_KEPT:]
        self.client.set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history))
        if history:
            self.client.set_registered_model_alias(
                self.model_name, PREVIOUS_CHAMPION, str(history[-1])
            )
        elif self.by_alias(PREVIOUS_CHAMPION) is not None:
            self.client.delete_registered_model_alias(self.model_name, PREVIOUS_CHAMPION)

    def tag(self, version: int | str, tags: dict[str, str]) -> None:
        """Record facts on a version (e.g. a review decision); values are stored as strings."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, str(value))

    def promote(self, version: int | str, reason: str) -> None:
        """Make `version` the champion; the champion it replaces can be restored by rollback().

        Not safe against two promotions of the same model at the same moment (the history is
        read, then written): promotion runs from one sensor/job at a time.
        """
        target = self.version(version)  # a clear error for a version that does not exist
        current = self.champion()
        now = _now()
        self.tag(target.version, {"promoted_at": now, "promotion_reason": reason})
        if current is not None and current.version == target.version:
            return  # already the champion: the decision is recorded, nothing moves
        history = self.history()
        if current is not None:
            history.append(current.version)
            self.tag(current.version, {"replaced_at": now, "replaced_by": str(target.version)})
        self.client.set_registered_model_alias(self.model_name, CHAMPION, str(target.version))
        self._save_history(history)

    def rollback(self, reason: str = "manual rollback") -> int:
        """Restore the champion that the current one replaced; returns its version."""
        history = self.history()
        if not history:
            current = self.champion()
            holder = f"v{current.version}" if current else "none"
            raise NoPreviousChampionError(
                f"Model {self.model_name!r} has no previous champion to roll back to "
                f"(current champion: {holder}); promote another version instead."
            )
        previous = history.pop()
        current = self.champion()
        now = _now()
        self.client.set_registered_model_alias(self.model_name, CHAMPION, str(previous))
        self._save_history(history)
        self.tag(previous, {"restored_at": now, "restore_reason": reason})
        if current is not None:
            self.tag(
                current.version,
                {"rolled_back_at": now, "rollback_reason": reason, "replaced_by": str(previous)},
            )
        return previous
