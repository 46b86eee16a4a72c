# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled O(n) window scans over one entity's rows in (entity, time, id) order.

Every window's first row only moves forward as the scan does, so one pointer per window finds all
starts in a single pass, with the arithmetic `spec` states. Results are written straight to frame
order: `order[i]` is the frame row of sorted row i, and `out[j]` is window j's column. The GIL is
released, so the customer and the terminal scan run side by side in two threads.
"""

from libc.stdint cimport int64_t


def customer_windows(
    const int64_t[::1] order,
    const int64_t[::1] ids,
    const int64_t[::1] seconds,
    const double[::1] amount,
    const int64_t[::1] widths,
    int64_t[:, ::1] counts,
    double[:, ::1] means,
    double[::1] running_sums,
):
    """Count and mean amount of the customer's rows in (t - width, t], the current one included.

    `running_sums` is scratch space of one double per row.
    """
    cdef Py_ssize_t n = order.shape[0], k = widths.shape[0], i, j, start, row
    cdef Py_ssize_t starts[16]
    cdef int64_t entity, upto, count
    cdef double running = 0.0
    if k > 16:
        raise ValueError("at most 16 windows")
    for j in range(k):
        starts[j] = 0
    with nogil:
        for i in range(n):
            entity = ids[i]
            # Running sums restart for each customer: a global running sum would carry a rounding
            # error that grows with the whole dataset into every customer's averages.
            if i == 0 or entity != ids[i - 1]:
                running = 0.0
            running = running + amount[i]
            running_sums[i] = running
            row = order[i]
            for j in range(k):
                upto = seconds[i] - widths[j]
                start = starts[j]
                # Stops at i: the current row is always inside its own window.
                while start < i and (ids[start] != entity or seconds[start] <= upto):
                    start += 1
                starts[j] = start
                count = i + 1 - start
                counts[j, row] = count
                means[j, row] = (running - (running_sums[start] - amount[start])) / count


def terminal_windows(
    const int64_t[::1] order,
    const int64_t[::1] ids,
    const int64_t[::1] seconds,
    const int64_t[::1] fraud,
    int64_t delay,
    const int64_t[::1] widths,
    int64_t[:, ::1] counts,
    double[:, ::1] risks,
    int64_t[::1] fraud_sums,
):
    """Count and fraud share of the terminal's rows in (t - delay - width, t - delay].

    Risk is 0 when the window is empty. `fraud_sums` is scratch space of rows + 1 int64.
    """
    cdef Py_ssize_t n = order.shape[0], k = widths.shape[0], i, j, start, end = 0, row
    cdef Py_ssize_t starts[16]
    cdef int64_t entity, end_at, upto, count
    if k > 16:
        raise ValueError("at most 16 windows")
    for j in range(k):
        starts[j] = 0
    with nogil:
        fraud_sums[0] = 0
        for i in range(n):
            fraud_sums[i + 1] = fraud_sums[i] + fraud[i]
        for i in range(n):
            entity = ids[i]
            end_at = seconds[i] - delay
            # First row younger than the label delay (or of a later entity): the window's end.
            while end < n:
                if ids[end] == entity:
                    if seconds[end] > end_at:
                        break
                elif end >= i:  # a later terminal
                    break
                end += 1
            row = order[i]
            for j in range(k):
                upto = end_at - widths[j]
                start = starts[j]
                while start < end and (ids[start] != entity or seconds[start] <= upto):
                    start += 1
                starts[j] = start
                count = end - start
                counts[j, row] = count
                risks[j, row] = (
                    <double>(fraud_sums[end] - fraud_sums[start]) / count if count > 0 else 0.0
                )
