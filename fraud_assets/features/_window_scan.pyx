# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled O(n) window scans over one entity's rows, grouped by entity in (time, id) order.

`group_rows` groups the rows of a frame in (time, id) order by entity without a comparison
sort: each entity gets a number from a hash table, and a counting sort by that number keeps each
entity's rows in their order (the entities themselves come in order of first appearance, which is
all the scans need). Every window's first row then only moves forward as a scan does, so one
pointer per window finds all starts in a single pass, with the arithmetic `spec` states. Results
are written straight to frame order: `order[i]` is the frame row of grouped row i, and `out[j]` is
window j's column. The GIL is released throughout, so customers and terminals run side by side.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

ctypedef fused value_t:
    double
    int64_t


cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15  # multiplicative hashing: 2**64 / golden ratio


cdef inline uint64_t _slot(int64_t key, int bits) noexcept nogil:
    return (<uint64_t>key * _GOLDEN) >> (64 - bits)


cdef bint _grow(int64_t** keys, int64_t** codes, int* bits) noexcept nogil:
    """Double the hash table, keeping every key's code; False when out of memory."""
    cdef int new_bits = bits[0] + 1
    cdef uint64_t size = (<uint64_t>1) << new_bits, mask = size - 1, h, slot
    cdef int64_t* new_keys = <int64_t*>malloc(size * sizeof(int64_t))
    cdef int64_t* new_codes = <int64_t*>malloc(size * sizeof(int64_t))
    if new_keys == NULL or new_codes == NULL:
        free(new_keys)
        free(new_codes)
        return False
    for slot in range(size):
        new_codes[slot] = -1
    for slot in range((<uint64_t>1) << bits[0]):
        if codes[0][slot] >= 0:
            h = _slot(keys[0][slot], new_bits)
            while new_codes[h] >= 0:
                h = (h + 1) & mask
            new_keys[h] = keys[0][slot]
            new_codes[h] = codes[0][slot]
    free(keys[0])
    free(codes[0])
    keys[0], codes[0], bits[0] = new_keys, new_codes, new_bits
    return True


def group_rows(
    const int64_t[::1] entity,
    const int64_t[::1] seconds,
    const value_t[::1] values,
    int64_t[::1] order,
    int64_t[::1] grouped_entity,
    int64_t[::1] grouped_seconds,
    value_t[::1] grouped_values,
):
    """Rows grouped by entity, each entity's rows in frame order: their frame rows and values."""
    cdef Py_ssize_t n = entity.shape[0], i
    cdef int64_t groups = 0, code, slot
    cdef int bits = 12
    cdef uint64_t h, mask
    cdef bint ok = True
    cdef int64_t* row_code = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    cdef int64_t* keys = <int64_t*>malloc(((<uint64_t>1) << bits) * sizeof(int64_t))
    cdef int64_t* codes = <int64_t*>malloc(((<uint64_t>1) << bits) * sizeof(int64_t))
    cdef int64_t* starts = NULL
    try:
        if row_code == NULL or keys == NULL or codes == NULL:
            raise MemoryError()
        with nogil:
            for h in range((<uint64_t>1) << bits):
                codes[h] = -1
            for i in range(n):
                # Open addressing with linear probing; the table doubles when half full.
                mask = ((<uint64_t>1) << bits) - 1
                h = _slot(entity[i], bits)
                while codes[h] >= 0 and keys[h] != entity[i]:
                    h = (h + 1) & mask
                code = codes[h]
                if code < 0:
                    code = groups
                    keys[h], codes[h] = entity[i], code
                    groups += 1
                    if 2 * groups > ((<int64_t>1) << bits) and not _grow(&keys, &codes, &bits):
                        ok = False
                        break
                row_code[i] = code
        if not ok:
            raise MemoryError()
        starts = <int64_t*>calloc(groups + 1, sizeof(int64_t))
        if starts == NULL:
            raise MemoryError()
        with nogil:
            # Counting sort by entity number: stable, so each entity keeps its rows' order.
            for i in range(n):
                starts[row_code[i] + 1] += 1
            for code in range(groups):
                starts[code + 1] += starts[code]
            for i in range(n):
                slot = starts[row_code[i]]
                starts[row_code[i]] = slot + 1
                order[slot] = i
                grouped_entity[slot] = entity[i]
                grouped_seconds[slot] = seconds[i]
                grouped_values[slot] = values[i]
    finally:
        free(row_code)
        free(keys)
        free(codes)
        free(starts)


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


def customer_windows_exact(
    const int64_t[::1] order,
    const int64_t[::1] ids,
    const int64_t[::1] seconds,
    const int64_t[::1] scaled_amount,
    double scale,
    const int64_t[::1] widths,
    int64_t[:, ::1] counts,
    double[:, ::1] means,
    int64_t[::1] running_sums,
):
    """`customer_windows` with amounts as exact integers (amount * scale, e.g. cents).

    Window sums are then exact, so a mean is (sum / scale) / count rounded once each way: the
    same double whatever the scale and wherever the customer's history starts. That makes a
    batch's features identical whether it is computed alone or inside a range of batches.
    """
    cdef Py_ssize_t n = order.shape[0], k = widths.shape[0], i, j, start, row
    cdef Py_ssize_t starts[16]
    cdef int64_t entity, upto, count, running = 0
    if k > 16:
        raise ValueError("at most 16 windows")
    for j in range(k):
        starts[j] = 0
    with nogil:
        for i in range(n):
            entity = ids[i]
            if i == 0 or entity != ids[i - 1]:
                running = 0
            running = running + scaled_amount[i]
            running_sums[i] = running
            row = order[i]
            for j in range(k):
                upto = seconds[i] - widths[j]
                start = starts[j]
                while start < i and (ids[start] != entity or seconds[start] <= upto):
                    start += 1
                starts[j] = start
                count = i + 1 - start
                counts[j, row] = count
                means[j, row] = (
                    <double>(running - (running_sums[start] - scaled_amount[start])) / scale
                ) / count


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


def terminal_fraud_runs(
    const int64_t[::1] order,
    const int64_t[::1] ids,
    const int64_t[::1] seconds,
    const int64_t[::1] fraud,
    const double[::1] amount,
    int64_t delay,
    int64_t width,
    double seconds_per_day,
    double[::1] run_days,
    double[::1] run_min_amount,
    int64_t[::1] scratch,
):
    """The unbroken run of frauds ending the terminal's window (t - delay - width, t - delay]:
    its age in days from its first row inside the window, and its smallest amount; 0 and 0 when
    the window's last row is genuine or the window is empty.

    One walk per terminal: the window's two ends only move forward; each row knows where its
    run of frauds began and the smallest amount since then; a run cut by the window's start takes
    the window's smallest amount, kept by a queue of increasing amounts (every row of such a
    window is a fraud). `scratch` is 3 * rows int64 of working space.
    """
    cdef Py_ssize_t n = order.shape[0], block, block_end, i, start, end, s, head, tail, row, p
    cdef Py_ssize_t* run_start
    cdef Py_ssize_t* queue
    cdef double* run_min
    cdef int64_t entity, end_at, upto
    if scratch.shape[0] < 3 * n:
        raise ValueError("scratch needs 3 * rows")
    if n == 0:
        return
    run_start = <Py_ssize_t*>&scratch[0]
    queue = <Py_ssize_t*>&scratch[n]
    run_min = <double*>&scratch[2 * n]
    with nogil:
        # Where each fraud's run began, and the run's smallest amount up to it.
        for p in range(n):
            if fraud[p] and p > 0 and fraud[p - 1] and ids[p - 1] == ids[p]:
                run_start[p] = run_start[p - 1]
                run_min[p] = amount[p] if amount[p] < run_min[p - 1] else run_min[p - 1]
            else:
                run_start[p] = p
                run_min[p] = amount[p]
        block = 0
        while block < n:
            entity = ids[block]
            block_end = block
            while block_end < n and ids[block_end] == entity:
                block_end += 1
            start = block
            end = block
            head = 0
            tail = 0
            for i in range(block, block_end):
                end_at = seconds[i] - delay
                upto = end_at - width
                while end < block_end and seconds[end] <= end_at:
                    while tail > head and amount[queue[tail - 1]] >= amount[end]:
                        tail -= 1
                    queue[tail] = end
                    tail += 1
                    end += 1
                while start < end and seconds[start] <= upto:
                    start += 1
                while head < tail and queue[head] < start:
                    head += 1
                row = order[i]
                if end > start and fraud[end - 1]:
                    s = run_start[end - 1]
                    if s >= start:
                        run_min_amount[row] = run_min[end - 1]
                    else:
                        s = start
                        run_min_amount[row] = amount[queue[head]]
                    run_days[row] = <double>(seconds[i] - seconds[s]) / seconds_per_day
                else:
                    run_days[row] = 0.0
                    run_min_amount[row] = 0.0
            block = block_end


def prior_flag_counts(
    const int64_t[::1] order,
    const int64_t[::1] ids,
    const int64_t[::1] seconds,
    const int64_t[::1] flags,
    int64_t width,
    int64_t[::1] counts,
    int64_t[::1] flag_sums,
):
    """How many of the entity's rows *before* this one (in (time, id) order) with time in
    (t - width, t] are flagged; the row itself is never counted.

    `flags` is in grouped order like `ids`; `counts` is written in frame order. `flag_sums` is
    scratch space of rows + 1 int64.
    """
    cdef Py_ssize_t n = order.shape[0], i, start = 0
    cdef int64_t entity, upto
    with nogil:
        flag_sums[0] = 0
        for i in range(n):
            flag_sums[i + 1] = flag_sums[i] + (1 if flags[i] else 0)
        for i in range(n):
            entity = ids[i]
            upto = seconds[i] - width
            while start < i and (ids[start] != entity or seconds[start] <= upto):
                start += 1
            counts[order[i]] = flag_sums[i] - flag_sums[start]
