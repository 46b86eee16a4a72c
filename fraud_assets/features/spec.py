"""The feature definitions (docs/features.md), in the one place every engine and serving follow.

Time is `tx_time_seconds` (recomputed by cleaning from the timestamp). Within a customer or a
terminal, transactions are ordered by (tx_time_seconds, transaction_id): the id breaks ties inside
one second the way arrival order does online, so "the current transaction included" means the
same in batch and in serving.

Customer windows, w in WINDOWS_DAYS, for the transaction at time t:
    the customer's transactions up to and including this one in that order, minus those with
    time <= t - w*86400  ->  (t - w, t], current included.
    customer_nb_tx_{w}d = their count, customer_avg_amount_{w}d = their mean amount.
Terminal risk, delay d = LABEL_DELAY_DAYS:
    the terminal's transactions with time in (t - (d+w)*86400, t - d*86400].
    terminal_nb_tx_{w}d = their count, terminal_risk_{w}d = frauds / count (0 when none).
tx_during_weekend: Saturday or Sunday; tx_during_night: hour <= 6.
tx_amount: the amount itself, a model input as it is.
customer_amount_ratio_{w}d, w in RATIO_WINDOWS_DAYS: tx_amount / customer_avg_amount_{w}d.
terminal_fraud_run_days: among the terminal's transactions with time in (t - (d+R)*86400,
    t - d*86400], R = RUN_WINDOW_DAYS, in (time, id) order: when the last of them is a fraud,
    (t - s) / 86400 with s the time of the first of the unbroken run of frauds that ends with it
    (cut at the window's start); 0.0 when the last is genuine or there are none.
terminal_fraud_run_min_amount: over that same run (same window, same cut), the smallest
    tx_amount of its frauds; 0.0 when the last is genuine or there are none.
terminal_fraud_run_min_ratio: over that same run, the smallest customer_amount_ratio_30d of its
    frauds (each its own, at its own time); 0.0 when the last is genuine or there are none.
customer_prior_outliers_7d: how many of the customer's transactions *before* this one in
    (time, id) order, with time in (t - 7*86400, t], had their own customer_amount_ratio_30d
    above OUTLIER_RATIO (3); the current transaction is never counted.
"""

from __future__ import annotations

SECONDS_PER_DAY = 86_400
WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
LABEL_DELAY_DAYS = 7
NIGHT_LAST_HOUR = 6

CALENDAR_FEATURES = ["tx_during_weekend", "tx_during_night"]
CUSTOMER_FEATURES = [
    name for w in WINDOWS_DAYS for name in (f"customer_nb_tx_{w}d", f"customer_avg_amount_{w}d")
]
TERMINAL_FEATURES = [
    name for w in WINDOWS_DAYS for name in (f"terminal_nb_tx_{w}d", f"terminal_risk_{w}d")
]
BASELINE_FEATURES = CALENDAR_FEATURES + CUSTOMER_FEATURES + TERMINAL_FEATURES

# The amount itself: fraud scenario 1 is every amount above a fixed limit, which no ratio shows.
AMOUNT_FEATURES = ["tx_amount"]

# Extra: fraud scenario 3 multiplies a card's amounts by 5, so an amount far above the card's own
# recent mean is a strong signal that the absolute amount alone does not give. The 1- and 7-day
# means react to a burst the 30-day mean dilutes.
RATIO_WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
EXTRA_FEATURES = [f"customer_amount_ratio_{w}d" for w in RATIO_WINDOWS_DAYS]

# A compromised terminal produces frauds for a while and is then repaired: how long its known
# frauds have run tells a terminal still compromised from one whose run is over (or a one-off).
RUN_WINDOW_DAYS = max(WINDOWS_DAYS)
# A run's amounts tell a compromised terminal (scenario 2: every card pays its usual amount there)
# from one fraud of a compromised card or a large amount (scenarios 3 and 1: amounts far above
# the card's usual ones) that happened to be the terminal's newest known transaction.
# The same told by each fraud's amount against its own card's mean, which a scenario-3 fraud
# stands far above and a scenario-2 fraud does not, whatever the card's usual amount.
TERMINAL_RUN_FEATURES = [
    "terminal_fraud_run_days",
    "terminal_fraud_run_min_amount",
    "terminal_fraud_run_min_ratio",
]

# A compromised card (scenario 3) pays x5 about one time in three for 14 days, but a x5 drawn
# from a low amount hides beside the card's mean: what gives it away is the card's *earlier*
# transactions of the week that stood far above their own 30-day mean.
OUTLIER_RATIO = 3.0
OWN_RATIO_WINDOW_DAYS = 30  # the ratio a transaction keeps: its customer_amount_ratio_30d
PRIOR_OUTLIER_WINDOW_DAYS = 7
CARD_HISTORY_FEATURES = [f"customer_prior_outliers_{PRIOR_OUTLIER_WINDOW_DAYS}d"]

# Integer features (every other is a double, the calendar flags 0/1).
COUNT_FEATURES = [n for n in CUSTOMER_FEATURES + TERMINAL_FEATURES if "_nb_tx_" in n] + [
    *CARD_HISTORY_FEATURES
]

# Days of earlier history a batch needs: the terminal windows reach back the label delay plus
# the longest window, and the oldest transaction they hold keeps its own 30-day ratio
# (terminal_fraud_run_min_ratio), which looks back 30 days more.
LOOKBACK_DAYS = LABEL_DELAY_DAYS + max(WINDOWS_DAYS) + OWN_RATIO_WINDOW_DAYS

FEATURE_COLUMNS = (
    AMOUNT_FEATURES
    + BASELINE_FEATURES
    + EXTRA_FEATURES
    + TERMINAL_RUN_FEATURES
    + CARD_HISTORY_FEATURES
)
