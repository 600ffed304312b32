"""A snapshot on disk: a directory of ``.npy`` arrays and one small pickle of everything else.

An engine's state (:meth:`freshrec.engine.Engine.snapshot`) is a tree of dicts whose leaves are mostly numpy
arrays: the columns of the views. :func:`write` stores each array as its own ``.npy`` file, and the tree, with
the arrays replaced by their file numbers, as ``state.pickle``. :func:`read` maps the arrays back read-only
(``mmap``): loading costs one copy of each column from the page cache into the view that owns it, with no
decoding and no second copy of the whole state in memory.

A snapshot is written into ``NAME.tmp/``, every file fsynced, then renamed to ``NAME`` in one step: a
directory without the suffix is complete.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> write({"n": 3, "view": {"rows": np.arange(3)}, "names": ["a", "b"]}, root / "snap")
>>> back = read(root / "snap")
>>> back["n"], back["view"]["rows"].tolist(), back["names"]
(3, [0, 1, 2], ['a', 'b'])
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
_STATE = "state.pickle"
_ARRAYS = "arrays"
#: lists and tuples longer than this are leaves (a list of a million user names is not walked)
_WALK_LIST = 64


@dataclass(frozen=True, slots=True)
class _ArrayFile:
    number: int


class SnapshotError(Exception):
    """A snapshot directory that cannot be read (incomplete, corrupt or of an unknown format)."""


def write(state: dict[str, Any], final: Path) -> None:
    """Write ``state`` as the snapshot directory ``final`` (atomically: complete or absent)."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_into(state, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its space back
        raise
    tmp.rename(final)
    fsync_dir(final.parent)


def _write_into(state: dict[str, Any], tmp: Path) -> None:
    (tmp / _ARRAYS).mkdir(parents=True)
    arrays: list[np.ndarray[Any, Any]] = []
    tree = _strip(state, arrays)
    for number, array in enumerate(arrays):
        with (tmp / _ARRAYS / f"{number}.npy").open("wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    with (tmp / _STATE).open("wb") as fh:
        pickle.dump({"format": FORMAT, "arrays": len(arrays), "tree": tree}, fh, pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp / _ARRAYS)
    fsync_dir(tmp)


def read(path: Path) -> dict[str, Any]:
    """The state :func:`write` stored in ``path``; arrays are read-only memory maps of its files."""
    try:
        with (path / _STATE).open("rb") as fh:
            meta = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise SnapshotError(f"{path.name}: unreadable {_STATE}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError(f"{path.name}: unknown snapshot format {meta.get('format')!r}")
    arrays = []
    for number in range(meta["arrays"]):
        try:
            arrays.append(np.load(path / _ARRAYS / f"{number}.npy", mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path.name}: array {number}: {exc}") from exc
    state: dict[str, Any] = _fill(meta["tree"], arrays)
    return state


def size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _strip(node: Any, arrays: list[np.ndarray[Any, Any]]) -> Any:
    """``node`` with every numeric array replaced by an :class:`_ArrayFile` (appended to ``arrays``)."""
    if isinstance(node, np.ndarray) and node.dtype != object:
        arrays.append(node)
        return _ArrayFile(len(arrays) - 1)
    if isinstance(node, dict):
        return {key: _strip(value, arrays) for key, value in node.items()}
    if isinstance(node, (list, tuple)) and len(node) <= _WALK_LIST:
        return type(node)(_strip(value, arrays) for value in node)
    return node


def _fill(node: Any, arrays: list[np.ndarray[Any, Any]]) -> Any:
    if isinstance(node, _ArrayFile):
        return arrays[node.number]
    if isinstance(node, dict):
        return {key: _fill(value, arrays) for key, value in node.items()}
    if isinstance(node, (list, tuple)) and len(node) <= _WALK_LIST:
        return type(node)(_fill(value, arrays) for value in node)
    return node
