"""Data quality of a batch against a reference: missing values, values outside the reference's
range, and categories the reference never saw.

Counts are always reported; `issues()` names what exceeds the tolerances. Values above the
reference maximum are not errors by themselves (a large amount is fraud scenario 1, a busy day
has more transactions per card): they are counted and become an issue only when their share of
the batch is larger than the tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

# Tolerances of `issues()`, as shares of the batch's rows.
MAX_MISSING_SHARE = 0.0  # the clean and feature tables have no nulls: any missing value is news
# Windowed counts and amounts pass the reference's extremes now and then; 5 % of a batch is news.
MAX_OUT_OF_RANGE_SHARE = 0.05
MAX_NEW_CATEGORY_SHARE = 0.01
DEFAULT_CATEGORICAL = ["terminal_id"]
_EXAMPLES = 5


@dataclass(frozen=True)
class ColumnQuality:
    column: str
    rows: int  # rows of the current batch
    missing: int  # nulls (and NaN for floats), or every row when the column is absent
    absent: bool = False  # the column is not in the current batch at all
    categorical: bool = False
    # Numerical columns: values outside the reference's [min, max] (nulls not counted).
    reference_min: float | None = None
    reference_max: float | None = None
    below_range: int = 0
    above_range: int = 0
    # Categorical columns: distinct values the reference never saw, and the rows carrying them.
    new_categories: int = 0
    new_category_rows: int = 0
    new_category_examples: list[str] = field(default_factory=list)

    @property
    def out_of_range(self) -> int:
        return self.below_range + self.above_range

    @property
    def new_category_share(self) -> float:
        """Share of the batch's rows whose value is a new category."""
        return self.new_category_rows / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class QualityResult:
    columns: list[ColumnQuality]
    rows: int
    max_missing_share: float = MAX_MISSING_SHARE
    max_out_of_range_share: float = MAX_OUT_OF_RANGE_SHARE
    max_new_category_share: float = MAX_NEW_CATEGORY_SHARE

    def column(self, name: str) -> ColumnQuality:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def issues(self) -> list[str]:
        out: list[str] = []
        for c in self.columns:
            if c.absent:
                out.append(f"{c.column}: column missing from the batch")
                continue
            if c.missing and c.missing > self.max_missing_share * c.rows:
                out.append(
                    f"{c.column}: {c.missing:,} missing values ({_share(c.missing, c.rows)})"
                )
            if c.out_of_range and c.out_of_range > self.max_out_of_range_share * c.rows:
                out.append(
                    f"{c.column}: {c.out_of_range:,} values outside the reference range "
                    f"[{c.reference_min:g}, {c.reference_max:g}] "
                    f"({_share(c.out_of_range, c.rows)}; "
                    f"{c.below_range:,} below, {c.above_range:,} above)"
                )
            if c.new_category_rows and c.new_category_share > self.max_new_category_share:
                out.append(
                    f"{c.column}: {c.new_categories:,} new categories in {c.new_category_rows:,} "
                    f"rows ({_share(c.new_category_rows, c.rows)}), e.g. "
                    + ", ".join(c.new_category_examples)
                )
        return out

    @property
    def ok(self) -> bool:
        return not self.issues()

    def to_markdown(self) -> str:
        lines = [
            "| column | missing | out of range (below / above) | reference range | "
            "new categories (rows, share) |",
            "|---|---:|---:|---|---:|",
        ]
        for c in self.columns:
            if c.absent:
                lines.append(f"| {c.column} | absent | | | |")
                continue
            if c.categorical:
                rng, oor = "", ""
                new = f"{c.new_categories:,} ({c.new_category_rows:,}, {c.new_category_share:.2%})"
            else:
                rng = (
                    f"[{c.reference_min:g}, {c.reference_max:g}]"
                    if c.reference_min is not None and c.reference_max is not None
                    else "n/a"
                )
                oor = f"{c.out_of_range:,} ({c.below_range:,} / {c.above_range:,})"
                new = ""
            lines.append(f"| {c.column} | {c.missing:,} | {oor} | {rng} | {new} |")
        issues = self.issues()
        lines += ["", f"{self.rows:,} rows checked: " + ("no issues." if not issues else "issues:")]
        lines += [f"- {i}" for i in issues]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["issues"] = self.issues()
        out["ok"] = self.ok
        return out


def _share(n: int, total: int) -> str:
    return f"{n / total:.2%}" if total else "n/a"


def _missing(s: pl.Series) -> int:
    n = s.null_count()
    if s.dtype.is_float():
        n += int(s.is_nan().sum() or 0)
    return n


def data_quality(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str],
    categorical: list[str] | None = None,
    max_missing_share: float = MAX_MISSING_SHARE,
    max_out_of_range_share: float = MAX_OUT_OF_RANGE_SHARE,
    max_new_category_share: float = MAX_NEW_CATEGORY_SHARE,
) -> QualityResult:
    """Quality of `current` judged against `reference`, column by column.

    Numerical columns: missing values and values outside the reference's [min, max].
    `categorical` columns (default: terminal_id, when listed in `columns` or present): missing
    values and values never seen in the reference. Columns must exist in the reference; a column
    absent from the current batch is reported as such.
    """
    categorical = list(DEFAULT_CATEGORICAL if categorical is None else categorical)
    wanted = list(dict.fromkeys([*columns, *(c for c in categorical if c in current.columns)]))
    unknown = [c for c in wanted if c not in reference.columns]
    if unknown:
        raise ValueError(f"columns missing from the reference: {', '.join(unknown)}")
    rows = current.height
    result: list[ColumnQuality] = []
    for name in wanted:
        is_cat = name in categorical
        if name not in current.columns:
            result.append(ColumnQuality(name, rows, rows, absent=True, categorical=is_cat))
            continue
        cur, ref = current[name], reference[name]
        missing = _missing(cur)
        if is_cat:
            seen = ref.drop_nulls().unique()
            present = cur.drop_nulls()
            new_mask = ~present.is_in(seen.cast(present.dtype, strict=False))
            new_values = present.filter(new_mask).unique().sort()
            result.append(
                ColumnQuality(
                    name,
                    rows,
                    missing,
                    categorical=True,
                    new_categories=new_values.len(),
                    new_category_rows=int(new_mask.sum()),
                    new_category_examples=[str(v) for v in new_values.head(_EXAMPLES).to_list()],
                )
            )
            continue
        ref_values = ref.drop_nulls()
        if ref_values.dtype.is_float():
            ref_values = ref_values.drop_nans()
        lo, hi = (ref_values.min(), ref_values.max()) if ref_values.len() else (None, None)
        values = cur.drop_nulls()
        if values.dtype.is_float():
            values = values.drop_nans()
        below = int((values < lo).sum()) if lo is not None else 0
        above = int((values > hi).sum()) if hi is not None else 0
        result.append(
            ColumnQuality(
                name,
                rows,
                missing,
                reference_min=None if lo is None else float(lo),
                reference_max=None if hi is None else float(hi),
                below_range=below,
                above_range=above,
            )
        )
    return QualityResult(
        result, rows, max_missing_share, max_out_of_range_share, max_new_category_share
    )
