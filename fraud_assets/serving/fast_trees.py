"""A served CatBoost model's oblivious trees evaluated with numpy, for requests and small batches.

CatBoost's Python `predict_proba` spends ~90 µs on one row, most of it building a `Pool`; the
same trees evaluated here take ~15 µs: a fifth of a scored request's CPU. The trees come from
CatBoost's own JSON export, and `from_catboost` checks them against CatBoost on random rows
(borders and their neighbours included) before they are used; a model they do not reproduce,
or one with anything but float features, is served by CatBoost itself.

A tree of depth d sends a row to leaf sum_i [x[f_i] > b_i] << i (features compared as float32,
as CatBoost stores them); the raw score is scale * sum of leaves + bias, and the probability
its logistic.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CHECK_ROWS = 512
TOLERANCE = 1e-9


@dataclass(frozen=True)
class ObliviousTrees:
    features: np.ndarray  # (trees, depth) feature index of each level
    borders: np.ndarray  # (trees, depth) float32; +inf pads shallower trees (never true)
    leaves: np.ndarray  # (trees, 2**depth)
    scale: float
    bias: float
    n_features: int

    def raw(self, x: np.ndarray) -> np.ndarray:
        x32 = np.asarray(x, dtype=np.float32)
        bits = x32[:, self.features] > self.borders  # (rows, trees, depth)
        index = bits @ (1 << np.arange(self.features.shape[1]))
        picked = np.take_along_axis(self.leaves[None, :, :], index[:, :, None], axis=2)
        return self.scale * picked[:, :, 0].sum(axis=1) + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        """P(fraud) per row; rows with NaN are not supported (the caller uses CatBoost)."""
        return 1.0 / (1.0 + np.exp(-self.raw(x)))

    @classmethod
    def from_catboost(cls, model: Any) -> ObliviousTrees | None:
        """The model's trees, checked against CatBoost; None when they cannot stand in for it."""
        try:
            trees = cls._parse(_export_json(model))
        except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
            log.info("scoring with CatBoost itself: %s", e)
            return None
        if trees is None:
            return None
        rows = trees._check_rows()
        expected = model.predict_proba(rows, thread_count=1)[:, 1]
        worst = float(np.max(np.abs(trees.proba(rows) - expected)))
        if worst > TOLERANCE:
            log.warning("tree evaluator differs from CatBoost by %.3g: not used", worst)
            return None
        return trees

    @classmethod
    def _parse(cls, exported: dict[str, Any]) -> ObliviousTrees | None:
        info = exported["features_info"]
        if set(info) - {"float_features"} or "oblivious_trees" not in exported:
            log.info("scoring with CatBoost itself: the model has non-float features")
            return None
        trees = exported["oblivious_trees"]
        depth = max(len(t["splits"]) for t in trees)
        features = np.zeros((len(trees), depth), dtype=np.int64)
        borders = np.full((len(trees), depth), np.inf, dtype=np.float32)
        leaves = np.zeros((len(trees), 2**depth), dtype=np.float64)
        for t, tree in enumerate(trees):
            for level, split in enumerate(tree["splits"]):
                if split["split_type"] != "FloatFeature":
                    return None
                features[t, level] = split["float_feature_index"]
                borders[t, level] = split["border"]
            values = tree["leaf_values"]
            leaves[t, : len(values)] = values
        scale, biases = exported.get("scale_and_bias", [1.0, [0.0]])
        if len(biases) != 1:  # multi-dimensional output: not a binary classifier
            return None
        n_features = len(info["float_features"])
        return cls(features, borders, leaves, float(scale), float(biases[0]), n_features)

    def _check_rows(self) -> np.ndarray:
        """Random rows; most values sit on a border of their feature or one float32 either side."""
        rng = np.random.default_rng(0)
        rows = rng.normal(0.0, 50.0, size=(CHECK_ROWS, self.n_features))
        for j in range(self.n_features):
            mine = self.borders[(self.features == j) & np.isfinite(self.borders)]
            if mine.size == 0:
                continue
            at = rng.choice(mine, size=CHECK_ROWS)
            near = np.stack(
                [np.nextafter(at, np.float32(-np.inf)), at, np.nextafter(at, np.float32(np.inf))]
            )
            on_border = rng.random(CHECK_ROWS) < 0.7
            pick = rng.integers(0, 3, size=CHECK_ROWS)
            rows[on_border, j] = near[pick, np.arange(CHECK_ROWS)][on_border]
        return rows


def _export_json(model: Any) -> dict[str, Any]:
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.unlink(path)
