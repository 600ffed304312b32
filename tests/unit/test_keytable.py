"""KeyTable (the rows of every columnar view) against a plain dict model of the same operations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from freshrec.state.keytable import KeyTable

keys = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 2**40)), max_size=400)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(keys, min_size=1, max_size=6), drop_mod=st.integers(2, 5))
def test_upsert_find_group_and_keep_match_a_dict(batches: list[list[tuple[int, int]]], drop_mod: int) -> None:
    table = KeyTable({"value": np.int64})
    model: dict[tuple[int, int], int] = {}
    for batch in batches:
        a = np.array([k[0] for k in batch], dtype=np.int64)
        b = np.array([k[1] for k in batch], dtype=np.int64)
        rows, new = table.upsert(a, b)
        seen_here: set[tuple[int, int]] = set()
        for key, row, is_new in zip(batch, rows.tolist(), new.tolist(), strict=True):
            assert is_new == (key not in model and key not in seen_here)
            seen_here.add(key)
            assert (int(table.ka[row]), int(table.kb[row])) == key
        np.add.at(table.column("value"), rows, 1)
        for key in batch:
            model[key] = model.get(key, 0) + 1
    assert table.n == len(model)
    for (a_id, b_id), count in model.items():
        row = table.find_one(a_id, b_id)
        assert row >= 0 and int(table.column("value")[row]) == count
    assert table.find_one(301, 0) == -1
    for first in {k[0] for k in model}:
        got = {int(table.kb[r]) for r in table.group(first).tolist()}
        assert got == {k[1] for k in model if k[0] == first}

    # dropping rows keeps the others findable with their values, and their groups whole
    keep = (table.kb[: table.n] % drop_mod) != 0
    table.keep(keep)
    kept = {k: v for k, v in model.items() if k[1] % drop_mod != 0}
    assert table.n == len(kept)
    for (a_id, b_id), count in model.items():
        row = table.find_one(a_id, b_id)
        if (a_id, b_id) in kept:
            assert row >= 0 and int(table.column("value")[row]) == count
        else:
            assert row == -1
    for first in {k[0] for k in model}:
        assert {int(table.kb[r]) for r in table.group(first).tolist()} == {
            k[1] for k in kept if k[0] == first
        }


def test_a_snapshot_of_the_arrays_restores_every_row() -> None:
    table = KeyTable({"score": np.float64, "counts": (np.int32, 3)})
    rows, _ = table.upsert(np.arange(1000) % 37, np.arange(1000))
    table.column("score")[rows] = np.arange(1000) * 0.5
    table.column("counts")[rows, 1] = 7
    restored = KeyTable({"score": np.float64, "counts": (np.int32, 3)})
    restored.load(table.arrays())
    found = restored.find(np.arange(1000) % 37, np.arange(1000))
    assert (found >= 0).all()
    assert np.array_equal(restored.column("score")[found], np.arange(1000) * 0.5)
    assert (restored.column("counts")[found, 1] == 7).all()
    assert sorted(restored.group(5).tolist()) == sorted(found[np.arange(1000) % 37 == 5].tolist())
