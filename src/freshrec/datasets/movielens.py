"""MovieLens ratings and movies in every GroupLens layout, and RecBole atomic files.

Layouts: ml-100k (``u.data``, ``u.item``), ml-1m / ml-10m (``ratings.dat``, ``movies.dat``), ml-latest /
ml-20m / ml-25m (``ratings.csv``, ``movies.csv``) and RecBole (``NAME.inter``, ``NAME.item``). Movies become
items (first genre = category, all genres = tags); ratings become events whose type follows a
:class:`RatingMapping`, with the rating in ``properties``. Items come first, then events in time order.
"""

from __future__ import annotations

import csv
import io
import math
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.datasets.files import BadFile, Kind, _stable_id

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = frozenset({"unknown", "(no genres listed)"})
# layout, ratings file, movies file
LAYOUTS = (
    ("ml-100k", "u.data", "u.item"),
    ("ml-1m", "ratings.dat", "movies.dat"),  # also ml-10m
    ("ml-latest", "ratings.csv", "movies.csv"),  # also ml-latest-small, ml-20m, ml-25m
)
_RECBOLE_TYPES = frozenset({"token", "token_seq", "float", "float_seq"})
_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


@dataclass(frozen=True, slots=True)
class RatingMapping:
    """A rating >= ``strong_min`` becomes a ``strong_type`` event, a lower one a ``weak_type`` event."""

    strong_min: float = 4.0
    strong_type: str = "purchase"
    weak_type: str = "view"

    def type_of(self, rating: float) -> str:
        return self.strong_type if rating >= self.strong_min else self.weak_type


DEFAULT_MAPPING = RatingMapping()


@dataclass(frozen=True, slots=True)
class Dataset:
    """Where a data set's files are; ``ratings`` is None when only the movies file was named."""

    layout: str  # "ml-100k", "ml-1m", "ml-latest" or "recbole"
    ratings: Path | None
    movies: Path | None


def load_movielens(
    path: Path, mapping: RatingMapping = DEFAULT_MAPPING
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(items, events)`` of a data set directory, or of the data set a file in it belongs to."""
    items: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for kind, record in read_movielens(path, mapping):
        (items if kind == "item" else events).append(record)
    return items, events


def read_movielens(
    path: Path, mapping: RatingMapping = DEFAULT_MAPPING, *, fmt: str = "movielens", kind: Kind | None = None
) -> Iterator[tuple[Kind, dict[str, Any]]]:
    """Items, then events in time order. ``fmt="recbole"`` looks for RecBole files only; ``kind`` keeps
    only items or only events. Every file is checked before the first record is yielded."""
    dataset = find_dataset(path, fmt)
    ratings = _read_ratings(dataset.ratings, dataset.layout) if dataset.ratings and kind != "item" else None
    if dataset.movies is not None and kind != "event":
        for record in _read_movies(dataset.layout, dataset.movies):
            yield "item", record
    if ratings is not None:
        for record in ratings.events(mapping):
            yield "event", record


def find_dataset(path: Path, fmt: str = "movielens") -> Dataset:
    """The data set at ``path``: a directory, its ratings file (the whole data set) or its movies file
    (the items only). ``fmt`` is ``"movielens"`` (any layout) or ``"recbole"``."""
    if path.is_file():
        found = _named_file(path, fmt)
        if found is not None:
            return found
    directory = path if path.is_dir() else path.parent
    if fmt == "movielens":
        for layout, ratings, movies in LAYOUTS:
            if (directory / ratings).is_file():
                return Dataset(layout, directory / ratings, _existing(directory / movies))
    inter = _inter_file(directory, path.stem if path.is_file() else directory.name)
    if inter is not None:
        return Dataset("recbole", inter, _existing(_item_file(inter)))
    expected = "u.data, ratings.dat, ratings.csv, *.inter" if fmt == "movielens" else "*.inter"
    raise BadFile(f"no ratings file found in {directory}; expected one of {expected}")


def dataset_format(path: Path) -> str | None:
    """``"movielens"`` or ``"recbole"`` when ``path`` is such a data set or one of its files, else None."""
    if path.is_dir():
        try:
            layout = find_dataset(path).layout
        except BadFile:
            return None
        return "recbole" if layout == "recbole" else "movielens"
    name = path.name
    if name in ("u.data", "u.item", "ratings.dat", "movies.dat"):
        return "movielens"
    if name in ("ratings.csv", "movies.csv"):
        return "movielens" if _first_line(path).startswith(("userId,movieId", "movieId,title")) else None
    if path.suffix == ".inter" or (path.suffix in (".item", ".user") and _is_recbole(_first_line(path))):
        return "recbole"
    return None


def _named_file(path: Path, fmt: str) -> Dataset | None:
    if fmt == "movielens":
        for layout, ratings, movies in LAYOUTS:
            if path.name == ratings:
                return Dataset(layout, path, _existing(path.with_name(movies)))
            if path.name == movies:
                return Dataset(layout, None, path)
    if path.suffix == ".inter":
        return Dataset("recbole", path, _existing(_item_file(path)))
    if path.suffix == ".item":
        return Dataset("recbole", None, path)
    return None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _inter_file(directory: Path, name: str) -> Path | None:
    if not directory.is_dir():
        return None
    if (directory / f"{name}.inter").is_file():
        return directory / f"{name}.inter"
    found = sorted(directory.glob("*.inter"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise BadFile(f"several RecBole .inter files in {directory} ({names}); name the one to read")
    return found[0] if found else None


def _item_file(inter: Path) -> Path:
    same = inter.with_suffix(".item")
    return same if same.is_file() else inter.with_name(inter.name.split(".")[0] + ".item")


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        return fh.readline().strip()


def _is_recbole(header: str) -> bool:
    fields = header.split("\t")
    return all(":" in f and f.rsplit(":", 1)[1] in _RECBOLE_TYPES for f in fields)


# ---------------------------------------------------------------------------------------------------------
# ratings


@dataclass(slots=True)
class _Ratings:
    """Ratings as compact columns (ids are indexes into ``users`` / ``items``), in file order."""

    users: list[str]
    items: list[str]
    user_ix: array[int]
    item_ix: array[int]
    rating: array[float]
    ts: array[float]

    def events(self, mapping: RatingMapping, chunk: int = 65_536) -> Iterator[dict[str, Any]]:
        order = np.argsort(np.frombuffer(self.ts, dtype=np.float64), kind="stable")
        for start in range(0, len(order), chunk):
            for i in order[start : start + chunk].tolist():
                user, item = self.users[self.user_ix[i]], self.items[self.item_ix[i]]
                rating, ts = self.rating[i], self.ts[i]
                yield {
                    "event_id": _stable_id(f"{user}|{item}|{ts!r}|{rating!r}"),
                    "user_id": user,
                    "item_id": item,
                    "type": mapping.type_of(rating),
                    "timestamp": ts,
                    "properties": {"rating": rating},
                }


_RATING_COLUMNS = {
    "ml-100k": None,
    "ml-1m": None,
    "ml-latest": ("userId", "movieId", "rating", "timestamp"),
    "recbole": ("user_id", "item_id", "rating", "timestamp"),
}
_SEPARATORS = {"ml-100k": "\t", "ml-1m": "::", "ml-latest": ",", "recbole": "\t"}


def _read_ratings(path: Path, layout: str) -> _Ratings:
    sep = _SEPARATORS[layout]
    out = _Ratings([], [], array("i"), array("i"), array("d"), array("d"))
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    number = 0
    try:
        with path.open(encoding="utf-8-sig") as fh:
            names = _RATING_COLUMNS[layout]
            if names is None:
                first, (cu, ci, cr, ct, width) = 1, (0, 1, 2, 3, 4)
            else:
                first, (cu, ci, cr, ct, width) = 2, _header_columns(path, fh.readline(), sep, names)
            for number, line in enumerate(fh, first):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split(sep)
                if len(parts) != width:
                    raise BadFile(
                        f"{path}:{number}: expected {width} fields separated by {sep!r}, found {len(parts)}"
                    )
                user, item = parts[cu].strip(), parts[ci].strip()
                if not user or not item:
                    raise BadFile(f"{path}:{number}: empty user or item id")
                rating = _number(path, number, "rating", parts[cr])
                ts = _number(path, number, "timestamp", parts[ct])
                if ts < 0:
                    raise BadFile(f"{path}:{number}: timestamp {parts[ct]!r} is negative")
                ux = users.get(user)
                if ux is None:
                    ux = users[user] = len(out.users)
                    out.users.append(user)
                ix = items.get(item)
                if ix is None:
                    ix = items[item] = len(out.items)
                    out.items.append(item)
                out.user_ix.append(ux)
                out.item_ix.append(ix)
                out.rating.append(rating)
                out.ts.append(ts)
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not UTF-8 text (near line {number + 1})") from None
    return out


def _header_columns(
    path: Path, header: str, sep: str, names: tuple[str, str, str, str]
) -> tuple[int, int, int, int, int]:
    fields = [f.strip().split(":", 1)[0] for f in header.rstrip("\r\n").split(sep)]
    missing = [n for n in names if n not in fields]
    if missing:
        raise BadFile(f"{path}:1: the header has no {', '.join(missing)} column (it has {', '.join(fields)})")
    cu, ci, cr, ct = (fields.index(n) for n in names)
    return cu, ci, cr, ct, len(fields)


def _number(path: Path, number: int, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadFile(f"{path}:{number}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadFile(f"{path}:{number}: {what} {text!r} is not a finite number")
    return value


# ---------------------------------------------------------------------------------------------------------
# movies


def _read_movies(layout: str, path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # ml-100k and ml-1m
    if layout == "ml-100k":
        return list(_movies_100k(path, text))
    if layout == "ml-1m":
        return list(_movies_dat(path, text))
    if layout == "ml-latest":
        return list(_movies_csv(path, text))
    return list(_movies_recbole(path, text))


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield number, line.rstrip("\r")


def _movies_100k(path: Path, text: str) -> Iterator[dict[str, Any]]:
    width = 5 + len(GENRES_100K)
    for number, line in _lines(text):
        fields = line.split("|")
        if len(fields) != width:
            raise BadFile(
                f"{path}:{number}: expected {width} fields separated by '|' (id, title, release date, "
                f"video release date, IMDb URL, {len(GENRES_100K)} genre flags), found {len(fields)}"
            )
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise BadFile(f"{path}:{number}: genre flags must be 0 or 1, found {'|'.join(flags)}")
        title, date = fields[1].strip(), fields[2].strip()
        year = _year_of_title(title) or (int(date[-4:]) if date[-4:].isdigit() else None)
        genres = [g for g, flag in zip(GENRES_100K, flags, strict=True) if flag == "1"]
        yield _item(path, number, fields[0], title, genres, year, fields[4].strip())


def _movies_dat(path: Path, text: str) -> Iterator[dict[str, Any]]:
    for number, line in _lines(text):
        fields = line.split("::")
        if len(fields) != 3:
            raise BadFile(f"{path}:{number}: expected MovieID::Title::Genres, found {len(fields)} fields")
        title = fields[1].strip()
        yield _item(path, number, fields[0], title, fields[2].split("|"), _year_of_title(title))


def _movies_csv(path: Path, text: str) -> Iterator[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or header[:3] != ["movieId", "title", "genres"]:
        raise BadFile(f"{path}:1: expected the header movieId,title,genres, found {header}")
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise BadFile(f"{path}:{reader.line_num}: expected {len(header)} columns, found {len(row)}")
        title = row[1].strip()
        yield _item(path, reader.line_num, row[0], title, row[2].split("|"), _year_of_title(title))


def _movies_recbole(path: Path, text: str) -> Iterator[dict[str, Any]]:
    lines = _lines(text)
    _, header = next(lines, (1, ""))
    names = [f.strip().split(":", 1)[0] for f in header.split("\t")]
    if "item_id" not in names:
        raise BadFile(f"{path}:1: the header has no item_id column (it has {', '.join(names)})")
    title_col = _column(names, "movie_title", "title")
    year_col = _column(names, "release_year", "year")
    genre_col = _column(names, "class", "genre", "genres")
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(names):
            raise BadFile(f"{path}:{number}: expected {len(names)} tab-separated fields, found {len(fields)}")
        title = fields[title_col].strip() if title_col is not None else ""
        year_text = fields[year_col].strip() if year_col is not None else ""
        year = int(year_text) if year_text.isdigit() else None
        if year is not None and title and _year_of_title(title) is None:
            title = f"{title} ({year})"  # as GroupLens writes it
        raw = fields[genre_col].strip() if genre_col is not None else ""
        genres = [] if raw in NO_GENRE else raw.split()
        yield _item(path, number, fields[names.index("item_id")], title, genres, year)


def _column(names: list[str], *candidates: str) -> int | None:
    return next((names.index(c) for c in candidates if c in names), None)


def _year_of_title(title: str) -> int | None:
    found = _YEAR_IN_TITLE.search(title)
    return int(found.group(1)) if found else None


def _item(
    path: Path, number: int, item_id: str, title: str, genres: list[str], year: int | None, url: str = ""
) -> dict[str, Any]:
    item_id = item_id.strip()
    if not item_id:
        raise BadFile(f"{path}:{number}: empty movie id")
    tags = [g for g in (g.strip() for g in genres) if g and g not in NO_GENRE]
    record: dict[str, Any] = {"item_id": item_id, "content_type": "movie", "tags": tags}
    if title:
        record["title"] = title
    text = ". ".join(part for part in (title, ", ".join(tags)) if part)
    if text:
        record["text"] = text
    if tags:
        record["category"] = tags[0]
    if url:
        record["url"] = url
    if year is not None:
        record["properties"] = {"year": year}
    return record
