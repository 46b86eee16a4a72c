"""The evaluation metrics, threshold policies and paired bootstrap, specified (docs/models.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_assets.modeling.bootstrap import BootstrapComparison, paired_bootstrap, weighted_metric
from fraud_assets.modeling.metrics import (
    F_BETA,
    auc_roc,
    average_precision,
    card_precision_at_k,
    card_precision_at_k_strict,
    expected_money,
    summary,
    threshold_metrics,
)
from fraud_assets.modeling.threshold import ThresholdPolicy, choose_threshold

# ---------------------------------------------------------------------------------------------
# Ranking metrics


def test_auc_roc_counts_fraud_legit_pairs_in_order():
    # frauds .35 and .8, legits .1 and .4: pairs ranked right are (.35>.1), (.8>.1), (.8>.4);
    # (.35<.4) is wrong → 3 of 4 pairs.
    assert auc_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(3 / 4)
    # A tie between a fraud and a legit counts one half.
    assert auc_roc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_average_precision_is_recall_steps_times_precision():
    # Descending: .8 fraud, .4 legit, .35 fraud, .1 legit.
    # t=.8: P=1/1, R=1/2; t=.4: P=1/2, R=1/2 (no recall step); t=.35: P=2/3, R=2/2.
    # AP = (1/2 - 0)·1 + (1/2 - 1/2)·(1/2) + (1 - 1/2)·(2/3) = 1/2 + 1/3 = 5/6.
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_ranking_metrics_are_nan_with_one_class(labels):
    assert math.isnan(auc_roc(labels, [0.1, 0.5, 0.9]))
    assert math.isnan(average_precision(labels, [0.1, 0.5, 0.9]))


def test_labels_must_be_binary_and_scores_finite():
    with pytest.raises(ValueError, match="0/1"):
        auc_roc([0, 0.7], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        auc_roc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="shape"):
        auc_roc([0, 1], [0.1])


# ---------------------------------------------------------------------------------------------
# Card precision@k

D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)

# Day 1: card A (fraud, .9), B (legit, .8), C (legit, .1).
# Day 2: card A again (fraud, .95) — but A was caught on day 1, so it is dropped —,
#        B (legit, .5), C (fraud, .4).
CARD_DAYS = [D1, D1, D1, D2, D2, D2]
CARD_IDS = ["A", "B", "C", "A", "B", "C"]
CARD_LABELS = [1, 0, 0, 1, 0, 1]
CARD_SCORES = [0.9, 0.8, 0.1, 0.95, 0.5, 0.4]


def test_card_precision_drops_a_card_detected_on_an_earlier_day():
    # k=1. Day 1: top card A is a fraud → 1/1, A is detected. Day 2: A dropped, top card B is
    # legit → 0/1. Mean = (1 + 0) / 2 = 0.5. (Keeping A on day 2 would give 1.0.)
    got = card_precision_at_k(CARD_DAYS, CARD_IDS, CARD_LABELS, CARD_SCORES, k=1)
    assert got == pytest.approx(0.5)


def test_card_precision_keeps_a_fraudulent_card_nobody_checked():
    # k=1. Day 1: B (legit, .9) is checked; A (fraud, .1) is not, so it is not detected.
    # Day 2: A (fraud, .9) tops the list → 1/1. Handbook mean (0 + 1) / 2 = 0.5.
    # The strict rules drop A on day 2 (it had a fraud label on day 1) → B (legit) → 0.
    days, cards = [D1, D1, D2, D2], ["A", "B", "A", "B"]
    labels, scores = [1, 0, 1, 0], [0.1, 0.9, 0.9, 0.5]
    assert card_precision_at_k(days, cards, labels, scores, k=1) == pytest.approx(0.5)
    assert card_precision_at_k_strict(days, cards, labels, scores, k=1) == pytest.approx(0.0)


def test_card_precision_detection_is_chained_day_after_day():
    # k=1. Day 1: A fraud detected. Day 2: A dropped; C fraud (.8) beats B → detected.
    # Day 3: A and C dropped; B legit → 0. Mean (1 + 1 + 0) / 3.
    days = [D1, D1, D2, D2, D2, D3, D3, D3]
    cards = ["A", "B", "A", "B", "C", "A", "B", "C"]
    labels = [1, 0, 1, 0, 1, 1, 0, 1]
    scores = [0.9, 0.2, 0.9, 0.3, 0.8, 0.9, 0.4, 0.9]
    assert card_precision_at_k(days, cards, labels, scores, k=1) == pytest.approx(2 / 3)


def test_card_precision_shares_tied_places_and_counts_tied_frauds_detected():
    # Day 0, k=2: .7 fraud (a) takes place 1; b (fraud), c, d tie at .5 for one place → 1/3.
    # Day 1: a and b (checked in part) are dropped; c (fraud .9) → 1/2. Mean (4/3/2 + 1/2) / 2.
    days = [0] * 5 + [1, 1, 1]
    cards = ["a", "b", "c", "d", "e", "a", "b", "c"]
    labels = [1, 1, 0, 0, 0, 1, 1, 1]
    scores = [0.7, 0.5, 0.5, 0.5, 0.1, 0.99, 0.98, 0.9]
    expected = ((1 + 1 / 3) / 2 + 1 / 2) / 2
    assert card_precision_at_k(days, cards, labels, scores, k=2) == pytest.approx(expected)
    rev = slice(None, None, -1)
    got = card_precision_at_k(days[rev], cards[rev], labels[rev], scores[rev], k=2)
    assert got == pytest.approx(expected)


def _handbook_card_precision_reference(day, card, y, score, k):
    """The handbook's loop, in plain Python: per day, drop detected cards, rank the rest by
    their maximum score, and add the frauds of the top k to the detected cards."""
    detected, per_day = set(), []
    for d in sorted(set(day)):
        cards = {}
        for dd, c, label, s in zip(day, card, y, score, strict=True):
            if dd == d and c not in detected:
                best = cards.get(c, (-1.0, 0))
                cards[c] = (max(best[0], s), max(best[1], label))
        top = sorted(cards.items(), key=lambda kv: kv[1], reverse=True)[:k]
        found = [c for c, (_, label) in top if label]
        per_day.append(len(found) / k)
        detected.update(found)
    return sum(per_day) / len(per_day)


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 40), st.booleans()), min_size=1, max_size=300
    ),
    k=st.integers(1, 20),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=60, deadline=None)
def test_card_precision_matches_the_handbook_loop(rows, k, seed):
    day, card, y = (list(col) for col in zip(*rows, strict=True))
    score = np.random.default_rng(seed).permutation(len(rows)).tolist()  # distinct: no ties
    expected = _handbook_card_precision_reference(day, card, [int(v) for v in y], score, k)
    assert card_precision_at_k(day, card, y, score, k=k) == pytest.approx(expected)


def test_strict_card_precision_drops_card_caught_on_an_earlier_day():
    # k=1. Day 1: top card A is a fraud → 1/1. Day 2: A dropped, top card B is legit → 0/1.
    # Mean over days = (1 + 0) / 2 = 0.5. (Keeping A on day 2 would give 1.0.)
    got = card_precision_at_k_strict(CARD_DAYS, CARD_IDS, CARD_LABELS, CARD_SCORES, k=1)
    assert got == pytest.approx(0.5)


def test_strict_card_precision_divides_by_k_even_when_fewer_cards_remain():
    # k=2. Day 1: A, B → 1 fraud → 1/2. Day 2: B, C → 1 fraud → 1/2. Mean 1/2.
    assert card_precision_at_k_strict(
        CARD_DAYS, CARD_IDS, CARD_LABELS, CARD_SCORES, k=2
    ) == pytest.approx(0.5)
    # k=3. Day 1: 3 cards, 1 fraud → 1/3. Day 2: only B and C remain, 1 fraud → still 1/3.
    assert card_precision_at_k_strict(
        CARD_DAYS, CARD_IDS, CARD_LABELS, CARD_SCORES, k=3
    ) == pytest.approx(1 / 3)


def test_strict_card_precision_accepts_int_day_indices_and_object_date_arrays():
    ints = [0, 0, 0, 1, 1, 1]
    objects = np.array(CARD_DAYS, dtype=object)
    for days in (ints, objects, np.array(CARD_DAYS, dtype="datetime64[D]")):
        got = card_precision_at_k_strict(days, CARD_IDS, CARD_LABELS, CARD_SCORES, k=1)
        assert got == pytest.approx(0.5)


def test_strict_card_precision_takes_each_cards_max_score_and_max_label():
    # Card X: legit tx at .9 and fraud tx at .1 → card score .9, card label 1.
    # Card Y: legit tx at .8. k=1: top card X is compromised → 1/1 = 1.0.
    # (Ranking transactions instead would put X's legit .9 first and give 0.)
    got = card_precision_at_k_strict([0, 0, 0], ["X", "X", "Y"], [0, 1, 0], [0.9, 0.1, 0.8], k=1)
    assert got == pytest.approx(1.0)


def test_strict_card_precision_keeps_a_caught_card_out_on_all_later_days():
    # A: fraud on day 1, legit on day 2, top score on day 3 → dropped on days 2 and 3.
    # k=1. Day 1: A fraud → 1. Day 2: only B (legit) → 0. Day 3: B (fraud) → 1. Mean 2/3.
    days, cards = [D1, D2, D2, D3, D3], ["A", "A", "B", "A", "B"]
    got = card_precision_at_k_strict(days, cards, [1, 0, 0, 0, 1], [0.9, 0.9, 0.1, 0.9, 0.2], k=1)
    assert got == pytest.approx(2 / 3)


def test_strict_card_precision_counts_a_day_whose_cards_were_all_caught_as_zero():
    # Day 0: A fraud → 1/1. Day 1: only A, which is dropped → 0. Mean 1/2.
    assert card_precision_at_k_strict([0, 1], ["A", "A"], [1, 1], [0.9, 0.9], k=1) == pytest.approx(
        0.5
    )


def test_strict_card_precision_shares_the_last_places_among_tied_cards():
    # Scores .7 (fraud), then three cards tied at .5 (one fraud), then .1. k=2:
    # the .7 fraud takes place 1 (1 hit); one place is left for three tied cards of which one is
    # a fraud → 1 × 1/3 expected hits. (1 + 1/3) / 2 = 2/3, whatever the row order.
    labels, scores = [1, 1, 0, 0, 0], [0.7, 0.5, 0.5, 0.5, 0.1]
    cards = ["a", "b", "c", "d", "e"]
    assert card_precision_at_k_strict([0] * 5, cards, labels, scores, k=2) == pytest.approx(2 / 3)
    rev = slice(None, None, -1)
    got = card_precision_at_k_strict([0] * 5, cards[rev], labels[rev], scores[rev], k=2)
    assert got == pytest.approx(2 / 3)


def test_strict_card_precision_ignores_frauds_ranked_below_k():
    # k=1: the legit .9 card is checked; the frauds at .5 and .1 are below the cut → 0/1.
    assert (
        card_precision_at_k_strict([0, 0, 0], ["a", "b", "c"], [0, 1, 1], [0.9, 0.5, 0.1], k=1)
        == 0.0
    )


def _strict_card_precision_reference(day, card, y, score, k):
    """Plain-Python reading of the strict rules (distinct card scores, so no ties)."""
    first_fraud = {}
    for d, c, label in sorted(zip(day, card, y, strict=True)):
        if label and c not in first_fraud:
            first_fraud[c] = d
    per_day = []
    for d in sorted(set(day)):
        cards = {}
        for dd, c, label, s in zip(day, card, y, score, strict=True):
            if dd == d and not (c in first_fraud and first_fraud[c] < d):
                best = cards.get(c, (-1.0, 0))
                cards[c] = (max(best[0], s), max(best[1], label))
        top = sorted(cards.values(), reverse=True)[:k]
        per_day.append(sum(label for _, label in top) / k)
    return sum(per_day) / len(per_day)


@pytest.mark.parametrize("seed", range(5))
def test_strict_card_precision_matches_a_plain_reading_of_the_definition(seed):
    rng = np.random.default_rng(seed)
    n = 400
    day = rng.integers(0, 6, n).tolist()
    card = rng.integers(0, 60, n).tolist()
    y = (rng.random(n) < 0.1).astype(int).tolist()
    score = rng.permutation(n).tolist()  # distinct, so card maxima never tie
    for k in (1, 5, 30):
        expected = _strict_card_precision_reference(day, card, y, score, k)
        assert card_precision_at_k_strict(day, card, y, score, k=k) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# Threshold metrics and money

Y = [1, 1, 0, 0, 0, 1]
S = [0.9, 0.6, 0.6, 0.2, 0.7, 0.1]
AMOUNT = [100.0, 50.0, 10.0, 20.0, 30.0, 70.0]


def test_threshold_metrics_flag_scores_at_or_above_the_threshold_ties_included():
    # Threshold .6 flags .9 (fraud), .6 (fraud), .6 (legit, tied), .7 (legit).
    # tp=2 fp=2 fn=1 (the .1 fraud) tn=1 (the .2 legit).
    m = threshold_metrics(Y, S, 0.6)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    # F1 = 2·(1/2)(2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7.
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["fpr"] == pytest.approx(2 / 3)
    # F2.5 = (1 + 6.25)·(1/2)(2/3) / (6.25·(1/2) + 2/3) = (29/12) / (91/24) = 58/91.
    assert F_BETA == 2.5
    assert m["f_beta"] == pytest.approx(58 / 91)


def test_threshold_metrics_define_zero_over_zero_as_zero():
    m = threshold_metrics([0, 0], [0.1, 0.2], 0.5)  # no fraud, nothing flagged
    assert m["precision"] == m["recall"] == m["f1"] == m["f_beta"] == 0.0
    assert m["fpr"] == 0.0 and m["tn"] == 2


def test_expected_money_weighs_caught_fraud_against_alert_reviews():
    # Threshold .6, 5 per alert: caught frauds 100 + 50 = 150 saved; missed fraud 70 lost;
    # 4 alerts × 5 = 20; net = 150 - 20 = 130.
    money = expected_money(Y, S, AMOUNT, 0.6, cost_per_alert=5.0)
    assert money == {"saved": 150.0, "lost": 70.0, "alerts": 4, "alert_cost": 20.0, "net": 130.0}


def test_summary_is_flat_floats_and_skips_metrics_without_inputs():
    full = summary(Y, S, 0.6, day=[0] * 6, card=list("abcdef"), amount=AMOUNT, k=2)
    assert all(isinstance(v, float) for v in full.values())
    assert full["card_precision_at_2"] == pytest.approx(1 / 2)  # top cards .9 fraud, .7 legit
    assert full["card_precision_at_2_strict"] == pytest.approx(1 / 2)  # one day: no difference
    assert full["money_net"] == pytest.approx(150.0 - 4 * 5.0)  # default cost 5 per alert
    assert full["recall"] == pytest.approx(2 / 3) and full["tp"] == 2.0
    assert full["auc_roc"] == pytest.approx(roc_auc_score(Y, S))
    bare = summary(Y, S, 0.6)
    assert not any(k.startswith(("card_precision", "money_")) for k in bare)
    assert {"auc_roc", "average_precision", "precision", "f_beta", "fpr"} <= bare.keys()


# ---------------------------------------------------------------------------------------------
# Threshold policies


def test_max_recall_at_fpr_takes_the_highest_threshold_of_the_best_recall():
    # 20 legits at 0, .05, …, .95 and frauds at .97, .5, .2. max_fpr 5 % allows 1 of 20 legits.
    # t=.97: recall 1/3, fpr 0; t=.95: recall 1/3, fpr 1/20 (allowed, same recall, lower t);
    # t=.9: fpr 2/20 > 5 %. Best recall 1/3, highest threshold reaching it: .97.
    y = [0] * 20 + [1, 1, 1]
    s = [i / 20 for i in range(20)] + [0.97, 0.5, 0.2]
    choice = choose_threshold(y, s, max_fpr=0.05)
    assert choice.policy is ThresholdPolicy.MAX_RECALL_AT_FPR
    assert choice.threshold == 0.97
    assert choice.metrics["recall"] == pytest.approx(1 / 3) and choice.metrics["fpr"] == 0.0
    assert choice.max_fpr == 0.05


def test_max_recall_at_fpr_cannot_split_a_tie_so_flags_nothing():
    # The only fraud is tied at .9 with a legit; 10 legits, max_fpr 5 % allows 0 false alerts.
    # Flagging .9 would give fpr 1/10, so nothing can be caught: threshold just above .9.
    y, s = [1, 0] + [0] * 9, [0.9, 0.9] + [0.1] * 9
    choice = choose_threshold(y, s, max_fpr=0.05)
    assert choice.threshold > 0.9 and choice.threshold == np.nextafter(0.9, 1.0)
    assert choice.metrics["tp"] == choice.metrics["fp"] == 0


def test_max_expected_money_maximises_net():
    # cost 5: t=.9 → saved 100 − 1 alert = 95; t=.8 → 100 − 10 = 90; t=.3 → 104 − 15 = 89;
    # t=.2 → 104 − 20 = 84. Best: .9 with net 95.
    y, s, amount = [1, 0, 1, 0], [0.9, 0.8, 0.3, 0.2], [100.0, 999.0, 4.0, 1.0]
    choice = choose_threshold(y, s, "max_expected_money", amount=amount, cost_per_alert=5.0)
    assert choice.policy is ThresholdPolicy.MAX_EXPECTED_MONEY
    assert choice.threshold == 0.9 and choice.metrics["money_net"] == 95.0
    # Frauds worth 1 each never pay for a 5 review: flag nothing (net 0).
    cheap = choose_threshold(y, s, "max_expected_money", amount=[1.0] * 4, cost_per_alert=5.0)
    assert cheap.threshold > 0.9 and cheap.metrics["money_net"] == 0.0
    with pytest.raises(ValueError, match="amount"):
        choose_threshold(y, s, "max_expected_money")


def test_threshold_choice_is_frozen():
    choice = choose_threshold([0, 1], [0.1, 0.9])
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.threshold = 0.0  # type: ignore[misc]


rows = st.lists(
    st.tuples(st.booleans(), st.one_of(st.integers(0, 8).map(lambda i: i / 8), st.floats(0, 1))),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(rows=rows, max_fpr=st.floats(0.0, 1.0))
def test_max_recall_at_fpr_holds_the_bound_and_is_optimal(rows, max_fpr):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    choice = choose_threshold(y, s, max_fpr=max_fpr)
    applied = threshold_metrics(y, s, choice.threshold)
    assert applied["fpr"] <= max_fpr  # the bound holds on the rows it was chosen on
    assert applied == {k: choice.metrics[k] for k in applied}
    assert choice.threshold in set(s) or choice.threshold > s.max()
    # Brute force over every observed score: none allowed has higher recall, and none allowed
    # with the same (positive) recall is higher.
    for t in np.unique(s):
        m = threshold_metrics(y, s, t)
        if m["fpr"] <= max_fpr:
            assert m["recall"] <= applied["recall"]
            if m["recall"] == applied["recall"] and m["tp"] > 0:
                assert t <= choice.threshold


# ---------------------------------------------------------------------------------------------
# Paired bootstrap


def _data(n: int = 2000, fraud_rate: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < fraud_rate
    good = y + rng.normal(0, 0.5, n)  # informative but imperfect
    return rng, y, good


@pytest.mark.parametrize("metric", ["average_precision", "auc_roc"])
@pytest.mark.parametrize("ties", [True, False])
def test_bootstrap_metric_arithmetic_equals_sklearn_on_resampled_rows(metric, ties):
    sk = {"average_precision": average_precision_score, "auc_roc": roc_auc_score}[metric]
    rng, y, good = _data(n=1500, seed=3)
    score = np.round(good, 1) if ties else good
    assert weighted_metric(metric, y, score, np.ones(y.size)) == pytest.approx(sk(y, score))
    for _ in range(5):
        rows = rng.integers(0, y.size, y.size)
        counts = np.bincount(rows, minlength=y.size)
        got = weighted_metric(metric, y, score, counts)
        assert got == pytest.approx(sk(y[rows], score[rows]), abs=1e-12)


@pytest.mark.parametrize("metric", ["average_precision", "auc_roc"])
def test_identical_models_have_zero_difference_and_no_win(metric):
    _, y, good = _data()
    result = paired_bootstrap(y, good, good.copy(), metric=metric)
    assert result.difference == 0.0
    assert result.low <= 0.0 <= result.high
    assert not result.challenger_wins


@pytest.mark.parametrize("metric", ["average_precision", "auc_roc"])
def test_clearly_better_challenger_wins(metric):
    rng, y, _ = _data()
    champion = rng.random(y.size)  # random scores
    challenger = y + rng.normal(0, 0.1, y.size)  # label plus small noise
    result = paired_bootstrap(y, champion, challenger, metric=metric)
    assert result.challenger_wins
    assert result.low > 0 and result.difference > 0
    assert result.champion == pytest.approx(
        {"average_precision": average_precision, "auc_roc": auc_roc}[metric](y, champion)
    )


def test_degraded_challenger_does_not_win():
    rng, y, good = _data()
    shuffled = rng.permutation(good)  # same score distribution, no link to the label
    result = paired_bootstrap(y, good, shuffled)
    assert not result.challenger_wins
    assert result.high < 0


def test_same_seed_same_result_other_seed_other_interval():
    rng, y, good = _data()
    other = good + rng.normal(0, 0.5, y.size)
    first = paired_bootstrap(y, good, other, n_resamples=300, seed=7)
    again = paired_bootstrap(y, good, other, n_resamples=300, seed=7)
    assert first == again
    assert isinstance(first, BootstrapComparison) and first.n_resamples == 300
    assert paired_bootstrap(y, good, other, n_resamples=300, seed=8).low != first.low


def test_single_class_resamples_are_redrawn():
    # One fraud in 30 rows: about (29/30)^30 ≈ 36 % of resamples miss it and are redrawn.
    rng = np.random.default_rng(1)
    y = np.zeros(30, dtype=bool)
    y[0] = True
    result = paired_bootstrap(y, rng.random(30), rng.random(30), n_resamples=200)
    assert result.n_resamples == 200
    assert np.isfinite([result.low, result.high]).all()


def test_bootstrap_rejects_bad_arguments():
    _, y, good = _data(n=200)
    with pytest.raises(ValueError, match="both classes"):
        paired_bootstrap(np.zeros(200), good, good)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(y, good, good, metric="f1")
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(y, good, good, n_resamples=0)
