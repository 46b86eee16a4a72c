"""The numpy tree evaluator scores single rows exactly as CatBoost does, or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from catboost import CatBoostClassifier, Pool
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.serving.fast_trees import ObliviousTrees
from fraud_assets.serving.model_source import LoadedModel

FEATURES = len(FEATURE_COLUMNS)
QUIET = {"verbose": False, "allow_writing_files": False, "thread_count": 1}


@pytest.fixture(scope="module")
def model() -> CatBoostClassifier:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, FEATURES)) * np.resize([1.0, 10.0, 100.0], FEATURES) * 5
    y = (x[:, 0] + 0.1 * x[:, 1] - 0.01 * x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    m = CatBoostClassifier(iterations=60, depth=6, random_seed=0, **QUIET)
    return m.fit(Pool(x, y, feature_names=FEATURE_COLUMNS))


@pytest.fixture(scope="module")
def trees(model: CatBoostClassifier) -> ObliviousTrees:
    trees = ObliviousTrees.from_catboost(model)
    assert trees is not None
    return trees


values = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@settings(max_examples=300, deadline=None)
@given(row=arrays(np.float64, FEATURES, elements=values), on_border=st.data())
def test_any_row_gets_catboosts_probability(model, trees, row, on_border):  # noqa: ANN001
    # Half of the features exactly on one of the borders the trees split on.
    for j in range(FEATURES):
        mine = trees.borders[trees.features == j]
        if mine.size and on_border.draw(st.booleans()):
            row[j] = on_border.draw(st.sampled_from(sorted(float(b) for b in mine)))
    x = row[None, :]
    assert trees.proba(x)[0] == pytest.approx(model.predict_proba(x)[0, 1], abs=1e-12)


def test_the_served_model_uses_the_trees_for_one_row_and_catboost_for_a_batch(model):  # noqa: ANN001
    loaded = LoadedModel.of(model, threshold=0.5, version=1)
    assert loaded.trees is not None
    x = np.random.default_rng(1).normal(size=(5, FEATURES)) * 50
    expected = model.predict_proba(x)[:, 1]
    assert loaded.probabilities(x) == pytest.approx(expected, abs=1e-12)
    assert loaded.probabilities(x[:1]) == pytest.approx(expected[:1], abs=1e-12)
    with_nan = x[:1].copy()
    with_nan[0, 3] = np.nan  # CatBoost decides what a missing value means
    assert loaded.probabilities(with_nan) == pytest.approx(
        model.predict_proba(with_nan)[:, 1], abs=1e-12
    )


def test_a_model_with_categorical_features_is_left_to_catboost():
    rng = np.random.default_rng(0)
    x = [[float(rng.normal()), str(rng.integers(0, 3))] for _ in range(200)]
    y = [int(r[0] > 0) for r in x]
    m = CatBoostClassifier(iterations=10, cat_features=[1], **QUIET).fit(x, y)
    assert ObliviousTrees.from_catboost(m) is None


def test_trees_that_disagree_with_catboost_are_refused(model, trees, monkeypatch):  # noqa: ANN001
    shifted = trees.leaves + 1e-6
    monkeypatch.setattr(
        ObliviousTrees, "_parse", classmethod(lambda cls, exported: _with(trees, shifted))
    )
    assert ObliviousTrees.from_catboost(model) is None


def _with(trees: ObliviousTrees, leaves: np.ndarray) -> ObliviousTrees:
    import dataclasses

    return dataclasses.replace(trees, leaves=leaves)
