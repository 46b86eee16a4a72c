"""Three outcomes: the review band is sized to the daily budget on the validation slice, and the
scorer answers block / review / allow by the two thresholds that travel with the version."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.modeling.threshold import review_threshold_for_budget
from fraud_assets.serving.model_source import LoadedModel
from fraud_assets.serving.scoring import _outcome


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 30), st.integers(0, 4), st.floats(0, 1, allow_nan=False)
        ),  # card, day, score
        min_size=1,
        max_size=200,
    ),
    budget=st.integers(1, 10),
)
def test_cards_reaching_the_review_threshold_fit_the_budget(rows, budget) -> None:
    card, day, score = (np.array(c) for c in zip(*rows, strict=True))
    r = review_threshold_for_budget(score, card, day, budget=budget)
    reached = {(d, c) for c, d, s in rows if s >= r}
    n_days = len(set(day.tolist()))
    assert len(reached) <= budget * n_days
    # And it is the lowest such threshold: any lower observed maximum would overflow the budget
    # (or take every card-day in).
    maxima: dict[tuple[int, int], float] = {}
    for c, d, s in rows:
        maxima[(d, c)] = max(maxima.get((d, c), 0.0), s)
    lower = [m for m in maxima.values() if m < r]
    if lower:
        below = max(lower)
        assert sum(1 for m in maxima.values() if m >= below) > budget * n_days


def test_review_threshold_never_exceeds_the_block_threshold() -> None:
    score = np.array([0.9, 0.8, 0.7])
    r = review_threshold_for_budget(score, [1, 2, 3], [0, 0, 0], budget=1, block_threshold=0.5)
    assert r == 0.5


class _Model:
    feature_names_: list[str] = []


def test_outcomes_by_the_two_thresholds() -> None:
    loaded = LoadedModel(_Model(), threshold=0.8, version=1, feature_names=(), review_threshold=0.3)
    assert [_outcome(p, loaded) for p in (0.1, 0.3, 0.5, 0.8, 0.99)] == [
        "allow", "review", "review", "block", "block",
    ]  # fmt: skip
    two = LoadedModel(_Model(), threshold=0.8, version=1, feature_names=())
    assert [_outcome(p, two) for p in (0.5, 0.9)] == ["allow", "block"]
