# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The fast path of raw batch parsing: well-formed rows straight from the file's bytes.

A line is accepted only in the canonical form the export writes for a good transaction: 9 fields,
plain digits, a valid `YYYY-MM-DD HH:MM:SS` (hours 00-23), an amount above zero with at most 15
significant digits, labels 0/1 and 0-3, customer and terminal ids in range. For every accepted
line the values are exactly what the general (Polars) parser gives for it; every other line
(defects, odd spellings, hour 24, CRLF quirks) is handed back untouched, so that the general
parser decides its fate. Amounts are exact: an integer mantissa over a power of ten, both exact
doubles, rounds like any correct decimal parser.

Lines end at '\n'; one '\r' before it (or before the end of the file) is not part of the line,
as in `polars.scan_lines`.
"""

from libc.stdint cimport int8_t, int64_t, uint8_t
from libc.string cimport memchr

cdef double[23] _POW10 = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]


cdef inline bint _store(int64_t* target, int64_t value) noexcept nogil:
    target[0] = value
    return True


cdef inline bint _digits(const uint8_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """1 to 18 ASCII digits."""
    cdef int64_t v = 0
    cdef Py_ssize_t i
    cdef unsigned int d
    if n < 1 or n > 18:
        return False
    for i in range(n):
        d = p[i] - 48
        if d > 9:
            return False
        v = v * 10 + d
    out[0] = v
    return True


cdef inline bint _signed(const uint8_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    if n > 1 and p[0] == 45:  # '-'
        if not _digits(p + 1, n - 1, out):
            return False
        out[0] = -out[0]
        return True
    return _digits(p, n, out)


cdef inline bint _two(const uint8_t* p, int* out) noexcept nogil:
    cdef unsigned int a = p[0] - 48, b = p[1] - 48
    if a > 9 or b > 9:
        return False
    out[0] = a * 10 + b
    return True


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline bint _timestamp(const uint8_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """`YYYY-MM-DD HH:MM:SS`, a real calendar day, hours 00-23: seconds since 1970-01-01."""
    cdef int y1, y2, month, day, hour, minute, second, dim
    cdef int64_t year
    if n != 19 or p[4] != 45 or p[7] != 45 or p[10] != 32 or p[13] != 58 or p[16] != 58:
        return False
    if not (_two(p, &y1) and _two(p + 2, &y2) and _two(p + 5, &month) and _two(p + 8, &day)
            and _two(p + 11, &hour) and _two(p + 14, &minute) and _two(p + 17, &second)):
        return False
    year = y1 * 100 + y2
    if year < 1 or month < 1 or month > 12 or day < 1 or hour > 23 or minute > 59 or second > 59:
        return False
    if month == 2:
        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        dim = 30
    else:
        dim = 31
    if day > dim:
        return False
    out[0] = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return True


cdef inline bint _amount(const uint8_t* p, Py_ssize_t n, double* out) noexcept nogil:
    """Digits with an optional fraction (`12`, `12.5`, `12.34`), above zero, exactly rounded."""
    cdef int64_t mantissa = 0
    cdef Py_ssize_t i, digits = 0, decimals = 0
    cdef bint point = False
    cdef unsigned int d
    for i in range(n):
        if p[i] == 46:  # '.'
            if point or digits == 0:
                return False
            point = True
            continue
        d = p[i] - 48
        if d > 9:
            return False
        mantissa = mantissa * 10 + d
        digits += 1
        decimals += point
        if digits > 15:  # beyond 2**53 the integer mantissa would not be exact
            return False
    if digits == 0 or (point and decimals == 0) or mantissa == 0:
        return False
    out[0] = mantissa / _POW10[decimals]
    return True


def count_lines(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end):
    """Lines in buf[start:end]: '\n'-terminated ones plus a last one without its newline."""
    cdef Py_ssize_t lines = 0, pos = start
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    cdef const void* hit
    if end <= start:
        return 0
    with nogil:
        while pos < end:
            hit = memchr(base + pos, 10, end - pos)
            lines += 1
            if hit == NULL:
                break
            pos = <const uint8_t*>hit - base + 1
    return lines


def parse_lines(
    const uint8_t[::1] buf,
    Py_ssize_t start,
    Py_ssize_t end,
    int64_t first_line_no,
    int64_t max_terminal_id,
    int64_t[::1] line_no,
    int64_t[::1] transaction_id,
    int64_t[::1] epoch_seconds,
    int64_t[::1] customer_id,
    int64_t[::1] terminal_id,
    double[::1] tx_amount,
    int64_t[::1] tx_time_seconds,
    int64_t[::1] tx_time_days,
    int8_t[::1] tx_fraud,
    int8_t[::1] tx_fraud_scenario,
):
    """Parse the lines of buf[start:end], numbered from `first_line_no`, into the arrays.

    The arrays hold one slot per line. Accepted rows fill them from the front; each other line
    is recorded from the back as (line_no, byte start, byte end) in `line_no`, `customer_id` and
    `terminal_id`. Returns the number of accepted rows; the rest of the slots are the others.
    """
    cdef Py_ssize_t capacity = line_no.shape[0]
    cdef Py_ssize_t accepted = 0, rejected = 0, pos = start, stop, cut, a, b, slot, f
    cdef Py_ssize_t[10] bounds
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    cdef const void* hit
    cdef int64_t number = first_line_no, value, terminal
    cdef double amount
    cdef bint ok
    if end <= start:
        return 0
    with nogil:
        while pos < end:
            hit = memchr(base + pos, 10, end - pos)
            stop = end if hit == NULL else <const uint8_t*>hit - base
            cut = stop - 1 if stop > pos and base[stop - 1] == 13 else stop  # CRLF
            # Field boundaries: exactly 8 commas.
            f = 0
            bounds[0] = pos
            ok = True
            a = pos
            while a < cut:
                if base[a] == 44:
                    f += 1
                    if f > 8:
                        ok = False
                        break
                    bounds[f] = a + 1
                a += 1
            ok = ok and f == 8
            if ok:
                bounds[9] = cut + 1
                slot = accepted
                ok = (
                    _digits(base + bounds[0], bounds[1] - bounds[0] - 1, &value)
                    and _store(&transaction_id[slot], value)
                    and _timestamp(base + bounds[1], bounds[2] - bounds[1] - 1, &epoch_seconds[slot])
                    and _digits(base + bounds[2], bounds[3] - bounds[2] - 1, &customer_id[slot])
                    and _digits(base + bounds[3], bounds[4] - bounds[3] - 1, &terminal)
                    and terminal <= max_terminal_id
                    and _store(&terminal_id[slot], terminal)
                    and _amount(base + bounds[4], bounds[5] - bounds[4] - 1, &tx_amount[slot])
                    and _signed(base + bounds[5], bounds[6] - bounds[5] - 1, &tx_time_seconds[slot])
                    and _signed(base + bounds[6], bounds[7] - bounds[6] - 1, &tx_time_days[slot])
                    and bounds[8] - bounds[7] == 2 and (base[bounds[7]] == 48 or base[bounds[7]] == 49)
                    and bounds[9] - bounds[8] == 2 and base[bounds[8]] >= 48 and base[bounds[8]] <= 51
                )
            if ok:
                line_no[slot] = number
                tx_fraud[slot] = base[bounds[7]] - 48
                tx_fraud_scenario[slot] = base[bounds[8]] - 48
                accepted += 1
            else:
                rejected += 1
                slot = capacity - rejected
                line_no[slot] = number
                customer_id[slot] = pos
                terminal_id[slot] = cut
            number += 1
            if hit == NULL:
                break
            pos = stop + 1
    return accepted
