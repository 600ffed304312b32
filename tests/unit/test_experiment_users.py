"""Distinct users of a variant in bounded memory: exact below the bound, a HyperLogLog above it."""

from __future__ import annotations

import pickle

from freshrec.experiments.distinct import EXACT_UP_TO, REGISTERS, UserCount


def test_the_count_is_exact_up_to_the_bound_whatever_the_repeats() -> None:
    users = UserCount()
    for n in range(EXACT_UP_TO):
        users.add(f"user-{n}")
        users.add(f"user-{n // 2}")
    assert len(users) == EXACT_UP_TO
    assert not users.approximate


def test_past_the_bound_the_memory_is_fixed_and_the_error_small() -> None:
    users = UserCount()
    distinct = 60_000
    for n in range(distinct):
        users.add(f"u{n}")
        if n % 3 == 0:
            users.add(f"u{n // 3}")  # repeats change nothing
    assert users.approximate and users.exact is None
    assert users.registers is not None and users.registers.nbytes == REGISTERS
    # the standard error is 1.04 / sqrt(2**14) = 0.81%: 4% is five of them
    assert abs(len(users) - distinct) / distinct < 0.04


def test_a_count_survives_a_snapshot() -> None:
    users = UserCount()
    for n in range(EXACT_UP_TO + 500):
        users.add(str(n))
    again = pickle.loads(pickle.dumps(users))
    assert len(again) == len(users)
    again.add("one more")
    assert again.approximate
