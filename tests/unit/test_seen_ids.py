"""SeenIds against a dict model: membership, re-marking, forgetting by time and beyond a count, snapshots."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from freshrec.state.seen import SeenIds

ids = st.text(min_size=0, max_size=12)  # any Unicode, the empty id too
# (operation, ids to add, a time or a count)
operation = st.tuples(
    st.sampled_from(["add", "add", "forget_before", "forget_beyond", "reload"]),
    st.lists(ids, max_size=40),
    st.integers(0, 60),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=30), st.lists(ids, max_size=30))
def test_seen_ids_behave_like_a_dict_of_times(
    ops: list[tuple[str, list[str], int]], probes: list[str]
) -> None:
    model: dict[str, float] = {}
    seen = SeenIds()
    for name, batch, number in ops:
        if name == "add":
            seen.add(batch, float(number))
            model.update(dict.fromkeys(batch, float(number)))
        elif name == "forget_before":
            seen.forget_before(float(number))
            model = {k: t for k, t in model.items() if t >= number}
        elif name == "forget_beyond":
            keep = number
            seen.forget_beyond(keep)
            if len(model) > keep:
                # which of equally old ids go is the implementation's choice: check the times kept
                kept_times = sorted(model.values(), reverse=True)[:keep]
                assert sorted(seen.arrays()["ts"].tolist(), reverse=True) == kept_times
                model = {k: model[k] for k in model if bool(seen.contains([k])[0])}
        else:
            again = SeenIds()
            again.load({k: np.array(v) for k, v in seen.arrays().items()})
            seen = again
        assert len(seen) == len(model)
    candidates = list(model) + probes
    assert seen.contains(candidates).tolist() == [c in model for c in candidates]


def test_a_million_ids_keep_their_answers_as_the_table_grows() -> None:
    seen = SeenIds()
    names = [f"event-{n}" for n in range(1_000_000)]
    for lo in range(0, len(names), 100_000):
        seen.add(names[lo : lo + 100_000], float(lo))
    assert bool(seen.contains(names).all())
    others = [f"event-{n}" for n in range(1_000_000, 1_200_000)] + ["Event-1", "event-01", "event-1 "]
    assert not bool(seen.contains(others).any())
    assert seen.nbytes() / len(seen) < 48
