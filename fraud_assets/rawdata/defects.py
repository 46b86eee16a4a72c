"""Defect classes of raw batches (docs/raw-batches.md): the simulator injects them, cleaning handles
them.

The values double as quarantine reason codes for the classes that are quarantined.
"""

from enum import StrEnum


class Defect(StrEnum):
    """Defect classes; the values double as quarantine reason codes where a row is quarantined."""

    HOUR_24 = "hour_24"  # #1 and #2: 24:00:00 with the day count of the day before
    WRONG_SECONDS = "wrong_seconds"  # #3: seconds counted from a wrong origin
    DAYS_TOO_SMALL = "days_too_small"  # #4: days below seconds / 86400
    DUPLICATE = "duplicate"  # #5: an exact copy of another line
    EMPTY_TERMINAL = "empty_terminal"  # #6
    ERR_TERMINAL = "err_terminal"  # #7
    TERMINAL_OUT_OF_RANGE = "terminal_out_of_range"  # #8
    BAD_CUSTOMER = "bad_customer"  # #9: -999999
    NONPOSITIVE_AMOUNT = "nonpositive_amount"  # #10
    MISSING_CUSTOMER = "missing_customer"  # #11
    MISSING_AMOUNT = "missing_amount"  # #11
    UNPARSEABLE = "unparseable"  # #13


# Defects after which the row is still a good transaction once repaired.
REPAIRABLE = frozenset({Defect.HOUR_24, Defect.WRONG_SECONDS, Defect.DAYS_TOO_SMALL})
# Defects whose rows go to quarantine; an exact duplicate is dropped (counted), not quarantined.
QUARANTINED = frozenset(set(Defect) - REPAIRABLE - {Defect.DUPLICATE})
