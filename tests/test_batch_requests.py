"""How the landing sensor numbers deliveries and cuts batches into ranged runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fraud_assets.batch.requests import DeliveryCursor, contiguous_ranges, plan_runs


def test_every_change_of_content_is_a_new_delivery_even_back_to_an_earlier_one():
    cursor = DeliveryCursor()
    assert [d.number for d in cursor.arrivals([("2024-03-01", "A")])] == [1]
    assert cursor.arrivals([("2024-03-01", "A")]) == []  # the same delivery seen again
    assert [d.number for d in cursor.arrivals([("2024-03-01", "B")])] == [2]
    back = cursor.arrivals([("2024-03-01", "A")])  # A -> B -> A
    assert [(d.number, d.key) for d in back] == [(3, "2024-03-01:3")]
    assert "re-landed" in back[0].reason


def test_the_cursor_survives_a_round_trip_and_reads_the_older_format():
    cursor = DeliveryCursor()
    cursor.arrivals([("a", "x"), ("b", "y")])
    again = DeliveryCursor.from_json(cursor.to_json())
    assert again.arrivals([("a", "x"), ("b", "y")]) == []
    older = DeliveryCursor.from_json('{"a": "x"}')  # batch -> fingerprint, before numbering
    assert older.arrivals([("a", "x")]) == []
    assert older.arrivals([("a", "z")])[0].number == 2


@given(
    order=st.lists(st.text("abcdefgh", min_size=1, max_size=3), unique=True, max_size=40),
    data=st.data(),
    limit=st.integers(1, 7),
)
def test_ranges_cover_each_wanted_batch_once_contiguously_within_the_limit(order, data, limit):
    wanted = data.draw(st.sets(st.sampled_from(order))) if order else set()
    runs = contiguous_ranges(wanted, order, limit)
    flat = [b for run in runs for b in run]
    assert sorted(flat) == sorted(wanted) and len(flat) == len(set(flat))
    position = {b: i for i, b in enumerate(order)}
    for run in runs:
        assert 1 <= len(run) <= limit
        spots = [position[b] for b in run]
        assert spots == list(range(spots[0], spots[0] + len(run)))  # neighbours in order
    # Runs come in order, and two runs are only apart when a gap or the limit separates them.
    for before, after in zip(runs, runs[1:], strict=False):
        assert position[before[-1]] < position[after[0]]
        if position[after[0]] == position[before[-1]] + 1:
            assert len(before) == limit


def test_a_run_key_names_its_batches_and_the_situation():
    order = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-05"]
    items = {b: (f"{b}:1", "new batch") for b in order}
    runs = plan_runs(items, order, 2, "ingest")
    assert [r.batch_ids for r in runs] == [order[:2], order[2:]]
    assert runs[0].run_key.startswith("ingest:2024-03-01..2024-03-02:")
    assert runs[0].reason == "new batch: 2024-03-01..2024-03-02 (2)"
    same = plan_runs(items, order, 2, "ingest")
    assert [r.run_key for r in same] == [r.run_key for r in runs]
    items["2024-03-01"] = ("2024-03-01:2", "re-landed with new content (delivery 2)")
    changed = plan_runs(items, order, 2, "ingest")
    assert changed[0].run_key != runs[0].run_key and changed[1].run_key == runs[1].run_key
