"""The fast line parser gives exactly what the general parser gives, for any lines at all."""

from __future__ import annotations

import datetime as dt
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.cleaning import parsing
from fraud_assets.cleaning.parsing import ParsedBatch, parse_batch
from fraud_assets.raw_format import HEADER_LINE
from tests.conftest import write_days

MAX_TERMINAL = 999_999


def general_only(data: bytes) -> ParsedBatch:
    """The whole batch through the general (Polars string) parser: the reference."""
    return parsing._parse_all_generally(data, len(HEADER_LINE), MAX_TERMINAL)


def fast(data: bytes, block_bytes: int, min_lines_for_general: int = 100_000) -> ParsedBatch:
    with (
        mock.patch.object(parsing, "BLOCK_BYTES", block_bytes),
        mock.patch.object(parsing, "GENERAL_PARSER_MIN_LINES", min_lines_for_general),
    ):
        return parse_batch(data, "batch.txt", MAX_TERMINAL)


def assert_same(got: ParsedBatch, want: ParsedBatch) -> None:
    assert got.raw_rows == want.raw_rows
    assert got.valid.equals(want.valid), (got.valid, want.valid)
    assert got.rejected.equals(want.rejected), (got.rejected, want.rejected)


stamps = st.datetimes(dt.datetime(1999, 1, 1), dt.datetime(2031, 12, 31)).map(
    lambda t: t.strftime("%Y-%m-%d %H:%M:%S")
)
good_fields = st.tuples(
    st.integers(0, 10**12).map(str),
    stamps,
    st.integers(0, 10**6).map(str),
    st.integers(0, 2 * MAX_TERMINAL).map(str),  # half of them out of range
    st.integers(1, 10**9).map(lambda cents: f"{cents // 100}.{cents % 100:02d}"),
    st.integers(-(10**9), 10**9).map(str),
    st.integers(-(10**5), 10**5).map(str),
    st.sampled_from("01"),
    st.sampled_from("0123"),
)
# Spellings a broken export may use, valid or not: the general parser decides each.
ODD_VALUES = (
    ["", "Err", "-999999", "+5", "05", "5.", ".5", "5.5", "12.345", "1e3", "nan", "inf", " 5",
     "5 ", "0", "0.00", "-0", "00", "2", "4", "-", "99999999999999999999", "1234567890123456.7",
     "2019-02-29 10:00:00", "2020-02-29 10:00:00", "2019-11-20 24:00:00", "2019-11-20 24:00:01",
     "2019-13-01 00:00:00", "2019-11-20 23:59:60", "2019-11-20T10:00:00", "0000-01-01 00:00:00",
     "1.0000000000000003", "x", "é", "\r", "1\r"]
)  # fmt: skip
odd_values = st.sampled_from(ODD_VALUES)
GOOD_LINE = "17,2024-03-01 10:00:00,4,5,12.30,36000,0,1,3"


@st.composite
def lines(draw: st.DrawFn) -> str:
    fields = list(draw(good_fields))
    kind = draw(st.integers(0, 5))
    if kind == 1:  # one field spelled oddly
        fields[draw(st.integers(0, 8))] = draw(odd_values)
    elif kind == 2:  # a field too few or too many
        if draw(st.booleans()):
            fields.pop(draw(st.integers(0, 8)))
        else:
            fields.insert(draw(st.integers(0, 9)), draw(odd_values))
    elif kind == 3:  # another separator, or no line at all
        return draw(st.sampled_from([";".join(fields), "", " "]))
    line = ",".join(fields)
    if kind == 4:  # cut anywhere
        line = line[: draw(st.integers(0, len(line)))]
    if kind == 5:  # a stray carriage return at the end
        line += "\r"
    return line


batches = st.tuples(
    st.lists(lines(), max_size=40),
    st.sampled_from(["", "\n", "\r\n"]),  # how the file ends
).map(lambda t: HEADER_LINE + "\n".join(t[0]).encode() + (t[1].encode() if t[0] else b""))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=batches, block_bytes=st.integers(1, 600))
def test_the_fast_parser_agrees_with_the_general_one_on_any_lines(data, block_bytes):
    """Whatever the lines and however the file is cut into blocks and pieces."""
    assert_same(fast(data, block_bytes), general_only(data))


def test_every_odd_spelling_in_every_field_gets_the_general_parsers_verdict():
    good = GOOD_LINE.split(",")
    lines = [GOOD_LINE]
    for position in range(len(good)):
        for odd in ODD_VALUES:
            lines += [",".join(good[:position] + [odd] + good[position + 1 :]), GOOD_LINE]
    data = HEADER_LINE + "\n".join(lines).encode()
    for block_bytes in (50, 1 << 20):
        assert_same(fast(data, block_bytes), general_only(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=batches)
def test_a_batch_of_mostly_odd_lines_goes_to_the_general_parser_with_the_same_result(data):
    assert_same(fast(data, 300, min_lines_for_general=0), general_only(data))


def test_simulator_output_is_read_entirely_by_the_fast_parser(tmp_path):
    """The speed of cleaning rests on this: a well-formed export leaves nothing to the slow path."""
    write_days(tmp_path, days=2, seed=3)
    for path in sorted(tmp_path.glob("*.txt")):
        data = path.read_bytes()
        with mock.patch.object(parsing, "parse_text_lines", wraps=parsing.parse_text_lines) as slow:
            parsed = fast(data, 4096)
        assert parsed.raw_rows == data.count(b"\n") - 1 and parsed.rejected.height == 0
        assert parsed.valid.height == parsed.raw_rows
        (call,) = slow.call_args_list
        assert call.args[0].collect().height == 0  # the general parser got no line at all
        assert_same(parsed, general_only(data))


def test_a_line_that_is_not_utf8_is_quarantined_with_its_bytes_escaped():
    data = HEADER_LINE + b"1,2024-03-01 10:00:00,1,2,5.00,36000,0,0,0\n2,\xff\xfe,1\n"
    parsed = parse_batch(data, "batch.txt", MAX_TERMINAL)
    assert parsed.valid["transaction_id"].to_list() == [1]
    assert parsed.rejected.rows() == [(3, "2,\\xff\\xfe,1", "unparseable")]
