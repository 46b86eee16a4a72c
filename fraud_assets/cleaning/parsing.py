"""Raw batch bytes -> typed rows and the lines that need a closer look, with their line numbers.

Two parsers share one outcome. The general one (`parse_text_lines`, Polars string expressions)
decides every line: it repairs hour 24 and gives each defective line its reason. The fast one
(`_line_parser`, compiled) reads the canonical well-formed lines straight from the bytes, in
blocks and on every core, and hands every other line to the general one; for the lines it
accepts it gives exactly the general parser's values (a property test holds it to that). A batch
whose lines are mostly not canonical (a CRLF export, say) is parsed by the general one alone.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from fraud_assets.cleaning._line_parser import count_lines, parse_lines
from fraud_assets.cleaning.rules import RowRules
from fraud_assets.rawdata.defects import Defect
from fraud_assets.rawdata.format import COLUMNS, DATETIME_FORMAT, HEADER
from fraud_assets.rawdata.inspection import RawBatchError

INVALID_LABEL = "invalid_label"  # tx_fraud not 0/1 or scenario not 0-3: a label we cannot trust
FIRST_DATA_LINE = 2  # line 1 is the header
BLOCK_BYTES = 64 << 20  # parsed at a time; a block's pages are released after it
# Above this share of lines the fast path does not pay (each line would cost a Python object):
# the general parser takes the whole batch.
GENERAL_PARSER_SHARE = 0.02
GENERAL_PARSER_MIN_LINES = 100_000

# The typed columns of a raw row, in file order.
ROW_SCHEMA = {
    "transaction_id": pl.Int64,
    "tx_datetime": pl.Datetime("us"),
    "customer_id": pl.Int64,
    "terminal_id": pl.Int64,
    "tx_amount": pl.Float64,
    "tx_time_seconds": pl.Int64,
    "tx_time_days": pl.Int64,
    "tx_fraud": pl.Int8,
    "tx_fraud_scenario": pl.Int8,
}
VALUE_SCHEMA = {"line_no": pl.Int64, "hour_24": pl.Boolean, **ROW_SCHEMA}
# What the fast parser fills, in its argument order; tx_datetime holds seconds until the end.
_NUMPY = {pl.Int64: np.int64, pl.Int8: np.int8, pl.Float64: np.float64, pl.Datetime("us"): np.int64}
_FAST_ARRAYS = {"line_no": np.int64, **{name: _NUMPY[kind] for name, kind in ROW_SCHEMA.items()}}
REJECTED_SCHEMA = {"line_no": pl.Int64, "line": pl.String, "reason": pl.String}


@dataclass
class ParsedBatch:
    valid: pl.DataFrame  # VALUE_SCHEMA, in file order: lines that are good transactions
    rejected: pl.DataFrame  # REJECTED_SCHEMA, in file order: quarantined lines and why
    raw_rows: int  # data lines in the file


def parse_batch(
    source: str | Path | IO[bytes] | bytes, name: str, rules: RowRules | None = None
) -> ParsedBatch:
    """Every data line of a raw batch, parsed and held to `rules` (default: the parser's own
    checks only); the header must match byte for byte."""
    rules = rules or RowRules()
    with _raw_bytes(source) as data:
        newline = data.find(b"\n")
        check_header(bytes(data[: len(data) if newline < 0 else newline]), name, len(data) == 0)
        body = len(data) if newline < 0 else newline + 1
        return apply_rules(_parse_body(data, body, rules.terminal_bound), data, body, rules)


def check_header(first_line: bytes, name: str, empty_file: bool = False) -> None:
    """Raise RawBatchError unless `first_line` (without its newline) is the format's header."""
    first = first_line.rstrip(b"\r")
    if first.decode("utf-8", "replace") != HEADER:
        found = "<empty file>" if empty_file else first[:200].decode("utf-8", "replace")
        raise RawBatchError(
            f"{name} line 1: header does not match the raw batch format.\n"
            f"  expected: {HEADER}\n  found:    {found}"
        )


def apply_rules(
    parsed: ParsedBatch,
    data: bytes | mmap.mmap,
    start: int,
    rules: RowRules,
    first_line: int = FIRST_DATA_LINE,
) -> ParsedBatch:
    """Move the parsed rows that break a rule to the rejected ones, with their original text.

    The text of a row the fast parser accepted is not kept (that is what makes it fast), so it is
    read back from the bytes, only for the rows that need it.
    """
    reasons = rules.reasons(parsed.valid)
    if reasons is None:
        return parsed
    failing = reasons.is_not_null()
    broken = parsed.valid.filter(failing)
    line_nos = broken["line_no"].to_numpy()
    moved = pl.DataFrame(
        {
            "line_no": line_nos,
            "line": _lines_at(data, start, line_nos, first_line),
            "reason": reasons.filter(failing),
        },
        schema=REJECTED_SCHEMA,
    )
    rejected = (
        parsed.rejected.merge_sorted(moved, key="line_no") if parsed.rejected.height else moved
    )
    return ParsedBatch(parsed.valid.filter(~failing), rejected, parsed.raw_rows)


def _lines_at(
    data: bytes | mmap.mmap, start: int, line_nos: np.ndarray, first_line: int = FIRST_DATA_LINE
) -> list[str]:
    """The text of data lines by number (ascending), as the general parser keeps it: one
    trailing '\r' dropped, bytes that are not UTF-8 escaped. Blocks without a wanted line are
    only counted."""
    buffer = memoryview(data) if isinstance(data, bytes | bytearray) else data
    out: list[str] = []
    want = 0
    for begin, end in _cuts(data, start, len(data), BLOCK_BYTES):
        if want == len(line_nos):
            break
        lines = count_lines(buffer, begin, end)
        if line_nos[want] < first_line + lines:
            chunk = np.frombuffer(buffer, dtype=np.uint8, count=end - begin, offset=begin)
            ends = np.flatnonzero(chunk == 10)
            while want < len(line_nos) and line_nos[want] < first_line + lines:
                index = int(line_nos[want]) - first_line
                a = begin + (int(ends[index - 1]) + 1 if index else 0)
                b = begin + int(ends[index]) if index < len(ends) else end
                text = bytes(data[a:b])
                out.append(text.removesuffix(b"\r").decode("utf-8", "backslashreplace"))
                want += 1
            del chunk
        _release(data, begin, end)
        first_line += lines
    return out


@contextmanager
def _raw_bytes(source: str | Path | IO[bytes] | bytes) -> Iterator[bytes | mmap.mmap]:
    """The batch's bytes; a local file is memory-mapped, not read."""
    if isinstance(source, bytes | bytearray):
        yield source
    elif isinstance(source, str | Path):
        with open(source, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                yield b""
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                mapped.madvise(mmap.MADV_SEQUENTIAL)
                yield mapped
    else:
        yield source.read()


def parse_range(
    data: bytes | mmap.mmap,
    start: int,
    end: int,
    first_line: int,
    rules: RowRules,
    workers: int = 1,
) -> ParsedBatch:
    """`parse_batch` for the lines of data[start:end] (whole lines), numbered from `first_line`:
    what one Spark task does with its byte range of a raw file (batch/spark_clean.py)."""
    parsed = _parse_body(data, start, rules.terminal_bound, end, first_line, workers)
    return apply_rules(parsed, data, start, rules, first_line)


def _parse_body(
    data: bytes | mmap.mmap,
    start: int,
    max_terminal_id: int,
    end: int | None = None,
    first_line: int = FIRST_DATA_LINE,
    workers: int | None = None,
) -> ParsedBatch:
    """Parse the lines of data[start:end] (no rules yet); terminal ids above `max_terminal_id`
    are out of range. Blocks of lines, each cut into one piece per core; rows land in one set of
    arrays."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    end = len(data) if end is None else end
    buffer = memoryview(data) if isinstance(data, bytes | bytearray) else data
    blocks = []  # per block: [(piece start, piece end, index of its first line, its lines)]
    rows = 0
    for block in _cuts(data, start, end, BLOCK_BYTES):
        pieces = []
        for piece in _cuts(data, *block, -(-(block[1] - block[0]) // workers)):
            lines = count_lines(buffer, *piece)
            pieces.append((*piece, rows, lines))
            rows += lines
        blocks.append(pieces)
        _release(data, *block)
    out = {name: np.empty(rows, dtype=dtype) for name, dtype in _FAST_ARRAYS.items()}

    def parse(piece: tuple[int, int, int, int]) -> int:
        begin, end, first, lines = piece
        views = [array[first : first + lines] for array in out.values()]
        return parse_lines(buffer, begin, end, first_line + first, max_terminal_id, *views)

    filled, rejected_no, rejected_text = 0, [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for pieces in blocks:
            for (_, _, first, lines), accepted in zip(pieces, pool.map(parse, pieces), strict=True):
                # The other lines were recorded at the back of the piece, last first.
                back = slice(first + accepted, first + lines)
                rejected_no.append(out["line_no"][back][::-1].copy())
                spans = zip(
                    out["customer_id"][back][::-1].tolist(),
                    out["terminal_id"][back][::-1].tolist(),
                    strict=True,
                )
                rejected_text += [
                    bytes(data[a:b]).decode("utf-8", "backslashreplace") for a, b in spans
                ]
                if filled < first:  # close the gap the rejected lines before left
                    for array in out.values():
                        array[filled : filled + accepted] = array[first : first + accepted]
                filled += accepted
            if len(rejected_text) > max(GENERAL_PARSER_MIN_LINES, GENERAL_PARSER_SHARE * rows):
                return _parse_all_generally(data, start, max_terminal_id, end, first_line)
            _release(data, pieces[0][0], pieces[-1][1])
    out["tx_datetime"][:filled] *= 1_000_000  # seconds -> microseconds, in place
    valid = pl.DataFrame({name: array[:filled] for name, array in out.items()}).with_columns(
        hour_24=pl.lit(False), tx_datetime=pl.col("tx_datetime").cast(pl.Datetime("us"))
    )
    lines = pl.DataFrame(
        {"line_no": np.concatenate(rejected_no) if rejected_no else [], "line": rejected_text},
        schema={"line_no": pl.Int64, "line": pl.String},
    )
    general = parse_text_lines(lines.lazy(), max_terminal_id).collect()
    return _merge(valid.select(list(VALUE_SCHEMA)), general, rows)


def _release(data: bytes | mmap.mmap, start: int, end: int) -> None:
    """Drop a mapped file's pages we are done with from the resident set (not from the cache)."""
    if isinstance(data, mmap.mmap) and end > start:
        aligned = start - start % mmap.PAGESIZE
        data.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)


def _cuts(data: bytes | mmap.mmap, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """[start, end) cut into pieces of at least `size` bytes (the last may be shorter), each
    ending at a line end."""
    cuts, at = [], start
    while at < end:
        newline = data.find(b"\n", at + size - 1, end) if end - at > size else -1
        stop = end if newline < 0 else newline + 1
        cuts.append((at, stop))
        at = stop
    return cuts


def _merge(valid_fast: pl.DataFrame, general: pl.DataFrame, rows: int) -> ParsedBatch:
    """Fast rows and the general parser's verdicts on the other lines, back in file order."""
    good = general.filter(pl.col("reason").is_null()).select(list(VALUE_SCHEMA))
    rejected = general.filter(pl.col("reason").is_not_null()).select(list(REJECTED_SCHEMA))
    valid = valid_fast if good.height == 0 else valid_fast.merge_sorted(good, key="line_no")
    return ParsedBatch(valid=valid, rejected=rejected, raw_rows=rows)


def _parse_all_generally(
    data: bytes | mmap.mmap,
    start: int,
    max_terminal_id: int,
    end: int | None = None,
    first_line: int = FIRST_DATA_LINE,
) -> ParsedBatch:
    lines = pl.scan_lines(bytes(data[start:end]), row_index_name="line_no").with_columns(
        pl.col("line_no").cast(pl.Int64) + first_line
    )
    parsed = parse_text_lines(lines, max_terminal_id).collect(engine="streaming")
    return _merge(pl.DataFrame(schema=VALUE_SCHEMA), parsed, parsed.height)


def parse_text_lines(lines: pl.LazyFrame, max_terminal_id: int) -> pl.LazyFrame:
    """The general parser: (line_no, line) -> line_no, reason, line, hour_24 and the columns.

    `reason` is null for a good transaction; `line` is kept only where there is a reason.
    """
    line = pl.col("line").str.strip_chars_end("\r")
    fields = [f"f{i}" for i in range(9)]
    split = lines.with_columns(
        commas=line.str.count_matches(",", literal=True),
        parts=line.str.split_exact(",", 8).struct.rename_fields(fields),
    ).unnest("parts")

    stamp = pl.col("f1")
    hour_24 = stamp.str.slice(11) == "24:00:00"
    typed = split.with_columns(
        transaction_id=pl.col("f0").cast(pl.Int64, strict=False),
        hour_24=hour_24.fill_null(False),
        tx_datetime=pl.when(hour_24)
        .then(
            stamp.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
            + pl.duration(days=1)
        )
        .otherwise(stamp.str.to_datetime(DATETIME_FORMAT, time_unit="us", strict=False)),
        customer_id=pl.col("f2").cast(pl.Int64, strict=False),
        terminal_id=pl.col("f3").cast(pl.Int64, strict=False),
        tx_amount=pl.col("f4").cast(pl.Float64, strict=False),
        tx_time_seconds=pl.col("f5").cast(pl.Int64, strict=False),
        tx_time_days=pl.col("f6").cast(pl.Int64, strict=False),
        tx_fraud=pl.col("f7").cast(pl.Int8, strict=False),
        tx_fraud_scenario=pl.col("f8").cast(pl.Int8, strict=False),
    )
    c = pl.col
    required = ["transaction_id", "tx_datetime", "tx_time_seconds", "tx_time_days"]
    reason = (
        pl.when(c("commas") != 8)
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(pl.any_horizontal(c(r).is_null() for r in required))
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(~c("tx_fraud").is_in([0, 1]).fill_null(False))
        .then(pl.lit(INVALID_LABEL))
        .when(~c("tx_fraud_scenario").is_between(0, 3).fill_null(False))
        .then(pl.lit(INVALID_LABEL))
        .when(c("f2") == "")
        .then(pl.lit(Defect.MISSING_CUSTOMER.value))
        .when(c("customer_id").is_null() | (c("customer_id") < 0))
        .then(pl.lit(Defect.BAD_CUSTOMER.value))
        .when(c("f3") == "")
        .then(pl.lit(Defect.EMPTY_TERMINAL.value))
        .when(c("terminal_id").is_null())
        .then(pl.lit(Defect.ERR_TERMINAL.value))
        .when((c("terminal_id") < 0) | (c("terminal_id") > max_terminal_id))
        .then(pl.lit(Defect.TERMINAL_OUT_OF_RANGE.value))
        .when(c("f4") == "")
        .then(pl.lit(Defect.MISSING_AMOUNT.value))
        .when(c("tx_amount").is_null() | c("tx_amount").is_nan() | c("tx_amount").is_infinite())
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(c("tx_amount") <= 0)
        .then(pl.lit(Defect.NONPOSITIVE_AMOUNT.value))
        .otherwise(None)
        .alias("reason")
    )
    return typed.with_columns(reason).select(
        pl.col("line_no").cast(pl.Int64),
        "reason",
        # The text is kept only where it is needed: quarantined rows keep their original line.
        pl.when(pl.col("reason").is_not_null()).then(pl.col("line")).alias("line"),
        "hour_24",
        *COLUMNS,
    )
