"""Where the embedded state's bytes go: a deep ``sys.getsizeof`` of each namespace of ``MemoryState``.

Resident memory says how much; this says which view holds it. Objects shared between namespaces (interned
strings such as item ids) are counted once, where first met.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from freshrec.state.memory import _PARTS, MemoryState


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it holds that ``seen`` does not hold yet (iterative, no recursion)."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, np.ndarray):
            continue
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.append(vars(o))
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, a) for a in o.__slots__ if hasattr(o, a))
    return total


def breakdown(
    store: MemoryState, per: int, columnar: Iterable[Any] = (), names: Any = None
) -> dict[str, float]:
    """Bytes per ``per`` (e.g. users) of each ``part/namespace`` of ``store``, of each columnar view (its
    arrays) and of the interned names, largest first."""
    seen: set[int] = set()
    out: dict[str, float] = {}
    for view in columnar:
        out[f"columns/{view.name}"] = view.nbytes() / per
    if names is not None:
        out["interned names"] = deep_size(names.arrays(), seen) / per
    for part in _PARTS:
        value = getattr(store, part)
        if isinstance(value, dict) and value and all(isinstance(v, dict | list) for v in value.values()):
            for ns, held in value.items():
                out[f"{part.strip('_')}/{ns}"] = deep_size(held, seen) / per
        else:
            out[part.strip("_")] = deep_size(value, seen) / per
    return dict(sorted(((k, v) for k, v in out.items() if v >= 1), key=lambda kv: -kv[1]))
