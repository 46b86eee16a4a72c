"""Ingestion's first look at a batch: header, counts, checksum, marker agreement."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud_assets.rawdata.format import HEADER_LINE, BatchMarker
from fraud_assets.rawdata.inspection import RawBatchError, inspect_raw_batch

ROWS = b"0,2024-01-01 00:00:01,1,2,3.00,1,0,0,0\n1,2024-01-01 00:00:02,1,2,4.50,2,0,0,0\n"


def marker_for(content: bytes) -> bytes:
    digest = hashlib.sha256(content).hexdigest()
    return BatchMarker("2024-01-01", 2, len(content), digest, "2024-01-01").to_json().encode()


def test_counts_rows_bytes_and_hashes_the_file():
    content = HEADER_LINE + ROWS
    stats = inspect_raw_batch(io.BytesIO(content), "x.txt", marker_for(content))
    assert (stats.rows, stats.bytes) == (2, len(content))
    assert stats.sha256 == hashlib.sha256(content).hexdigest()


@given(
    st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b), max_size=50),
    st.booleans(),
)
def test_row_count_is_the_number_of_lines_after_the_header(lines, trailing_newline):
    body = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    assert inspect_raw_batch(io.BytesIO(HEADER_LINE + body), "x.txt").rows == len(lines)


def test_a_wrong_header_names_the_file_and_the_line():
    content = b"transaction_id,tx_datetime\n" + ROWS
    with pytest.raises(RawBatchError) as err:
        inspect_raw_batch(io.BytesIO(content), "s3://bank/landing/2024-01-01.txt")
    message = str(err.value)
    assert "s3://bank/landing/2024-01-01.txt line 1" in message
    assert "found:    transaction_id,tx_datetime" in message


def test_a_file_changed_after_its_marker_is_refused():
    content = HEADER_LINE + ROWS
    marker = marker_for(content)
    with pytest.raises(RawBatchError, match="does not match its completion marker"):
        inspect_raw_batch(io.BytesIO(content[:-5]), "2024-01-01.txt", marker)


def test_a_foreign_marker_only_means_complete():
    content = HEADER_LINE + ROWS
    assert inspect_raw_batch(io.BytesIO(content), "x.txt", b"").rows == 2
    assert inspect_raw_batch(io.BytesIO(content), "x.txt", b"_SUCCESS").rows == 2
