"""The fast line parser gives exactly what the general parser gives, for any lines at all."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.cleaning import parsing
from fraud_assets.cleaning.parsing import ParsedBatch, parse_batch
from fraud_assets.cleaning.rules import RowRules, committed_in
from fraud_assets.rawdata.format import HEADER_LINE, BatchPeriod
from tests.support import write_days

MAX_TERMINAL = 999_999
RULES = RowRules(max_terminal_id=MAX_TERMINAL)


def general_only(data: bytes, rules: RowRules = RULES) -> ParsedBatch:
    """The whole batch through the general (Polars string) parser: the reference."""
    start = len(HEADER_LINE)
    parsed = parsing._parse_all_generally(data, start, rules.terminal_bound)
    return parsing.apply_rules(parsed, data, start, rules)


def fast(
    data: bytes, block_bytes: int, min_lines_for_general: int = 100_000, rules: RowRules = RULES
) -> ParsedBatch:
    with (
        mock.patch.object(parsing, "BLOCK_BYTES", block_bytes),
        mock.patch.object(parsing, "GENERAL_PARSER_MIN_LINES", min_lines_for_general),
    ):
        return parse_batch(data, "batch.txt", rules)


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


def _committed(ids: list[int]):  # noqa: ANN202 - a CommittedLookup
    return committed_in({"other": np.unique(np.array(ids, dtype=np.int64))}, "batch")


small_ids = st.lists(st.integers(0, 40), max_size=20)
row_rules = st.builds(
    lambda registry, period, days, max_amount, committed: RowRules(
        max_amount=max_amount,
        max_terminal_id=MAX_TERMINAL,
        terminals=None if registry is None else np.unique(np.array(registry, dtype=np.int64)),
        period=None if period is None else BatchPeriod(period, period + dt.timedelta(days=days)),
        committed=None if committed is None else _committed(committed),
    ),
    st.none() | st.lists(st.integers(0, 2 * MAX_TERMINAL), max_size=30) | small_ids,
    st.none() | st.dates(dt.date(1999, 1, 1), dt.date(2031, 12, 31)),
    st.integers(0, 4000),
    st.floats(0.5, 2e7),
    st.none() | small_ids,
)
small_lines = st.tuples(st.integers(-5, 40), st.integers(0, 40), st.integers(1, 3000), stamps).map(
    lambda t: f"{t[0]},{t[3]},1,{t[1]},{t[2]}.00,0,0,0,0"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.one_of(lines(), small_lines), max_size=40),
    block_bytes=st.integers(1, 600),
    rules=row_rules,
)
def test_the_rules_give_the_same_verdicts_on_either_parsers_rows(rows, block_bytes, rules):
    """A row the fast parser accepted and a rule refuses is quarantined with its original text,
    exactly as if the general parser had read it."""
    data = HEADER_LINE + "\n".join(rows).encode()
    got = fast(data, block_bytes, rules=rules)
    assert_same(got, general_only(data, rules))
    assert got.raw_rows == got.valid.height + got.rejected.height


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
    parsed = parse_batch(data, "batch.txt", RULES)
    assert parsed.valid["transaction_id"].to_list() == [1]
    assert parsed.rejected.rows() == [(3, "2,\\xff\\xfe,1", "unparseable")]
