"""The online feature state: what the scoring service needs from the lake, published to its
store, and the check that online and batch features agree. No Dagster imports here."""
