"""The simulator follows the generative process of docs/simulator.md, deterministically."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from fraud_assets.simulation import FraudScenarios, SimulationParams, TransactionSimulator


def simulate(**kwargs) -> tuple[TransactionSimulator, list]:
    sim = TransactionSimulator(SimulationParams(**kwargs))
    return sim, list(sim.days())


def all_rows(days) -> pl.DataFrame:
    return pl.concat([d.frame.with_columns(day=pl.lit(d.day)) for d in days])


def test_same_seed_same_transactions_other_seed_other_transactions():
    _, a = simulate(customers=300, terminals=500, days=5, seed=7)
    _, b = simulate(customers=300, terminals=500, days=5, seed=7)
    _, c = simulate(customers=300, terminals=500, days=5, seed=8)
    assert all_rows(a).equals(all_rows(b))
    assert not all_rows(a).equals(all_rows(c))


def test_transaction_count_matches_what_the_process_implies():
    sim, days = simulate(customers=2_000, terminals=2_000, days=30, seed=3)
    prof = sim.profiles
    # Poisson(lambda_c) draws per customer per day, kept when the time of day falls inside it;
    # customers with no terminal in reach make none.
    p_inside = stats.norm.cdf(86_400, 43_200, 20_000) - stats.norm.cdf(1, 43_200, 20_000)
    expected = 30 * prof.tx_per_day[prof.degree > 0].sum() * p_inside
    observed = sum(d.frame.height for d in days)
    assert abs(observed - expected) < 5 * np.sqrt(expected)


def test_amounts_and_times_follow_their_distributions():
    sim, days = simulate(customers=2_000, terminals=2_000, days=30, seed=4)
    rows = all_rows(days)
    mean = sim.profiles.mean_amount[rows["customer_id"].to_numpy()]
    # Normal(m, m/2) with negative draws replaced by U(0, 2m) has expectation m(1 + phi(2)/2).
    expected = mean.sum() * (1 + stats.norm.pdf(2) / 2)
    assert rows["base_amount"].sum() == pytest.approx(expected, rel=0.01)
    assert rows["base_amount"].min() >= 0

    stamp = rows["tx_datetime"]
    midnight = stamp.dt.truncate("1d")
    seconds = (stamp - midnight).dt.total_seconds().to_numpy()
    a, b = (0 - 43_200) / 20_000, (86_400 - 43_200) / 20_000
    assert seconds.mean() == pytest.approx(43_200, abs=200)
    assert seconds.std() == pytest.approx(stats.truncnorm.std(a, b, 43_200, 20_000), rel=0.02)


def test_customers_only_use_terminals_within_the_radius():
    sim, days = simulate(customers=500, terminals=1_000, days=3, radius=7.0)
    rows = all_rows(days)
    c = sim.profiles.customer_xy[rows["customer_id"].to_numpy()]
    t = sim.profiles.terminal_xy[rows["terminal_id"].to_numpy()]
    assert np.linalg.norm(c - t, axis=1).max() <= 7.0


def test_reference_run_matches_the_reference_figures():
    """5 000 customers, 10 000 terminals, 183 days: ≈ 1.75 M transactions, ≈ 0.84 % fraud."""
    _, days = simulate()
    rows = all_rows(days)
    assert rows.height == pytest.approx(1_750_000, rel=0.05)
    assert rows["tx_fraud"].mean() == pytest.approx(0.0084, abs=0.0015)
    assert set(rows["tx_fraud_scenario"].unique()) == {0, 1, 2, 3}


def test_scenario_1_is_exactly_the_amounts_above_the_threshold():
    _, days = simulate(customers=1_000, terminals=1_000, days=20, seed=1)
    rows = all_rows(days)
    big = rows["base_amount"] > 220
    unaffected = rows.filter(pl.col("tx_fraud_scenario") < 2)
    assert (unaffected["tx_fraud_scenario"] == 1).to_list() == (
        unaffected["base_amount"] > 220
    ).to_list()
    assert big.sum() > 0
    # A later scenario overwrites the label of an earlier one, never the reverse.
    assert rows.filter((pl.col("base_amount") > 220) & (pl.col("tx_fraud") == 0)).height == 0


def test_scenario_2_compromises_two_terminals_a_day_for_28_days():
    sim, days = simulate(customers=3_000, terminals=300, days=45, seed=2)
    started: dict[int, list[int]] = {}
    for d in days:
        assert len(d.newly_compromised_terminals) == 2
        for t in d.newly_compromised_terminals:
            started.setdefault(int(t), []).append(d.day)
    for d in days:
        # Compromised on day s means compromised on days s .. s+27, and not on s+28.
        expected = {t for t, ss in started.items() if any(s <= d.day < s + 28 for s in ss)}
        assert set(d.compromised_terminals.tolist()) == expected
        f = d.frame
        at_bad = f["terminal_id"].is_in(list(expected))
        assert (f.filter(at_bad)["tx_fraud"] == 1).all()
        assert f.filter(at_bad)["tx_fraud_scenario"].is_in([2, 3]).all()
        assert (f.filter(~at_bad)["tx_fraud_scenario"] != 2).all()
    # The windows really close: some terminal was compromised on day 0 and clean on day 28.
    first = set(days[0].newly_compromised_terminals.tolist())
    assert first - set(days[28].compromised_terminals.tolist())


def test_scenario_3_multiplies_a_third_of_compromised_customers_amounts_for_14_days():
    scenarios = FraudScenarios(customers_per_day=20)
    sim, days = simulate(customers=500, terminals=2_000, days=40, seed=5, scenarios=scenarios)
    started: dict[int, list[int]] = {}
    for d in days:
        for c in d.newly_compromised_customers:
            started.setdefault(int(c), []).append(d.day)
    chosen = eligible = 0
    for d in days:
        expected = {c for c, ss in started.items() if any(s <= d.day < s + 14 for s in ss)}
        assert set(d.compromised_customers.tolist()) == expected
        f = d.frame
        s3 = f.filter(pl.col("tx_fraud_scenario") == 3)
        assert s3["customer_id"].is_in(list(expected)).all()
        assert (s3["tx_amount"] == (s3["base_amount"] * 5).round(2)).all()
        untouched = f.filter(pl.col("tx_fraud_scenario") != 3)
        assert (untouched["tx_amount"] == untouched["base_amount"]).all()
        chosen += s3.height
        eligible += f["customer_id"].is_in(list(expected)).sum()
    # Each eligible transaction is chosen with probability 1/3: a binomial 4-sigma band.
    sd = np.sqrt(eligible * (1 / 3) * (2 / 3))
    assert abs(chosen - eligible / 3) < 4 * sd


def test_days_carry_their_own_date_and_time_counters():
    _, days = simulate(
        customers=200,
        terminals=300,
        days=3,
        start_date=dt.date(2024, 2, 28),
        origin_date=dt.date(2024, 2, 1),
    )
    assert [d.date for d in days] == [
        dt.date(2024, 2, 28),
        dt.date(2024, 2, 29),
        dt.date(2024, 3, 1),
    ]
    for d in days:
        f = d.frame
        origin = dt.datetime(2024, 2, 1)
        since = (f["tx_datetime"] - origin).dt.total_seconds()
        assert (since == f["tx_time_seconds"]).all()
        assert (f["tx_time_days"] == f["tx_time_seconds"] // 86_400).all()
        assert (f["tx_datetime"].dt.date() == d.date).all()


def test_invalid_parameters_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="origin date"):
        SimulationParams(start_date=dt.date(2024, 1, 1), origin_date=dt.date(2024, 2, 1))
    with pytest.raises(ValueError, match="at least 1"):
        SimulationParams(customers=0)
