"""MovieLens and RecBole readers (:mod:`freshrec.datasets.movielens`) on the real ml-100k files."""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from freshrec.catalog import validate_items
from freshrec.cli import main
from freshrec.config import EventSettings, load_settings
from freshrec.datasets.files import BadFile, detect_format, read_records
from freshrec.datasets.movielens import GENRES_100K, RatingMapping, load_movielens
from freshrec.events import validate_events
from freshrec.storage.datadir import DataDir
from shared_data import MOVIELENS_100K, needs, path_of, require

ML100K = path_of(MOVIELENS_100K)
INTER = ML100K / "ml-100k.inter"
ITEM = ML100K / "ml-100k.item"
Records = list[dict[str, Any]]


@functools.cache
def real() -> tuple[Records, Records]:
    return load_movielens(ML100K)


@needs(MOVIELENS_100K)
def test_the_reference_data_is_where_the_tests_expect_it() -> None:
    assert INTER.is_file(), INTER
    assert ITEM.is_file(), ITEM


# ---------------------------------------------------------------------------------------------------------
# the real RecBole ml-100k files


@needs(MOVIELENS_100K)
def test_recbole_ml100k_has_every_movie_rating_and_user() -> None:
    items, events = real()
    assert len(items) == 1_682
    assert len({i["item_id"] for i in items}) == 1_682
    assert len(events) == 100_000
    assert len({e["user_id"] for e in events}) == 943
    assert {e["item_id"] for e in events} <= {i["item_id"] for i in items}
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)
    assert 874_724_710.0 == times[0] < times[-1] == 893_286_638.0  # 1997-09-20 .. 1998-04-22
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert [e["event_id"] for e in load_movielens(INTER)[1]] == ids  # stable across reads


@needs(MOVIELENS_100K)
def test_recbole_ratings_equal_an_independent_read_with_duckdb() -> None:
    rows = duckdb.execute(
        'SELECT "user_id:token"::VARCHAR, "item_id:token"::VARCHAR, "rating:float"::DOUBLE, '
        "\"timestamp:float\"::DOUBLE FROM read_csv(?, delim = '\t', header = true, all_varchar = true)",
        [str(INTER)],
    ).fetchall()
    _, events = real()
    mine = [(e["user_id"], e["item_id"], e["properties"]["rating"], e["timestamp"]) for e in events]
    assert sorted(mine) == sorted(rows)
    strong = sum(1 for row in rows if row[2] >= 4.0)
    assert strong == 55_375
    assert Counter(e["type"] for e in events) == {"purchase": strong, "view": len(rows) - strong}
    assert all((e["type"] == "purchase") == (e["properties"]["rating"] >= 4.0) for e in events)


@needs(MOVIELENS_100K)
def test_movies_become_items_with_genres_as_category_and_tags() -> None:
    items = {i["item_id"]: i for i in real()[0]}
    assert items["1"] == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "text": "Toy Story (1995). Animation, Children's, Comedy",
        "category": "Animation",
        "tags": ["Animation", "Children's", "Comedy"],
        "content_type": "movie",
        "properties": {"year": 1995},
    }
    assert items["1633"]["title"] == "Á köldum klaka (Cold Fever) (1994)"
    # "unknown" is no genre: no category, no tags
    assert items["1373"]["tags"] == [] and "category" not in items["1373"]
    # the RecBole file spells the unknown movie "unkonwn", year included: kept as a title, not a year
    assert items["267"] == {
        "item_id": "267",
        "title": "unkonwn",
        "text": "unkonwn",
        "tags": [],
        "content_type": "movie",
    }
    genres = Counter(tag for item in items.values() for tag in item["tags"])
    assert set(genres) == set(GENRES_100K) - {"unknown"}
    assert genres["Drama"] == 725


@needs(MOVIELENS_100K)
def test_every_record_passes_freshrecs_own_validators() -> None:
    items, events = real()
    settings = EventSettings()
    accepted = []
    for start in range(0, len(events), settings.max_batch):
        accepted.extend(validate_events(events[start : start + settings.max_batch], settings))
    assert len(accepted) == len(events)
    assert accepted[0].ts == events[0]["timestamp"] and accepted[0].event_id == events[0]["event_id"]
    assert len(validate_items(items)) == len(items)


# ---------------------------------------------------------------------------------------------------------
# every GroupLens layout, written from a sample of the real data


EXTRA_MOVIES = ("12", "267", "543", "1373", "1633")  # a comma title, "unkonwn", non-ASCII, unknown genre


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first 500 ratings, their movies and a few awkward ones, in RecBole and each GroupLens layout."""
    require(MOVIELENS_100K)
    root = tmp_path_factory.mktemp("layouts")
    header, *lines = INTER.read_text(encoding="utf-8").splitlines()
    ratings = [line.split("\t") for line in lines[:500]]
    wanted = {r[1] for r in ratings} | set(EXTRA_MOVIES)
    item_header, *item_lines = ITEM.read_text(encoding="utf-8").splitlines()
    movies = [m.split("\t") for m in item_lines if m.split("\t", 1)[0] in wanted]
    assert len(movies) == len(wanted)

    def title(movie: list[str]) -> str:
        return f"{movie[1]} ({movie[2]})" if movie[2].isdigit() else movie[1]

    def genres(movie: list[str]) -> list[str]:
        return [g for g in movie[3].split() if g != "unknown"]

    dirs = {name: root / name for name in ("recbole", "ml-100k", "ml-1m", "ml-10m", "ml-latest")}
    for path in dirs.values():
        path.mkdir()
    (dirs["recbole"] / "sample.inter").write_text("\n".join([header, *lines[:500]]) + "\n", encoding="utf-8")
    (dirs["recbole"] / "sample.item").write_text(
        "\n".join([item_header, *("\t".join(m) for m in movies)]) + "\n", encoding="utf-8"
    )

    (dirs["ml-100k"] / "u.data").write_text("".join("\t".join(r) + "\n" for r in ratings))
    u_item = []
    for m in movies:
        flags = ["1" if g in m[3].split() else "0" for g in GENRES_100K]
        date = f"01-Jan-{m[2]}" if m[2].isdigit() else ""
        u_item.append("|".join([m[0], title(m), date, "", "", *flags]) + "\n")
    (dirs["ml-100k"] / "u.item").write_bytes("".join(u_item).encode("latin-1"))

    for name, encoding in (("ml-1m", "latin-1"), ("ml-10m", "utf-8")):
        (dirs[name] / "ratings.dat").write_text("".join("::".join(r) + "\n" for r in ratings))
        dat = "".join(f"{m[0]}::{title(m)}::{'|'.join(genres(m)) or '(no genres listed)'}\n" for m in movies)
        (dirs[name] / "movies.dat").write_bytes(dat.encode(encoding))

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["userId", "movieId", "rating", "timestamp"])
    writer.writerows([u, i, f"{float(r):.1f}", t] for u, i, r, t in ratings)
    (dirs["ml-latest"] / "ratings.csv").write_text(out.getvalue(), encoding="utf-8")
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    writer.writerows([m[0], title(m), "|".join(genres(m)) or "(no genres listed)"] for m in movies)
    (dirs["ml-latest"] / "movies.csv").write_text(out.getvalue(), encoding="utf-8")
    return dirs


def test_the_sample_files_are_as_awkward_as_promised(sample: dict[str, Path]) -> None:
    u_item = (sample["ml-100k"] / "u.item").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        u_item.decode("utf-8")
    assert "Á köldum klaka (Cold Fever) (1994)".encode("latin-1") in u_item
    assert '"Usual Suspects, The (1995)"' in (sample["ml-latest"] / "movies.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "ml-10m", "ml-latest"])
def test_every_grouplens_layout_reads_as_the_recbole_files(sample: dict[str, Path], layout: str) -> None:
    expected = load_movielens(sample["recbole"])
    assert (len(expected[0]), len(expected[1])) == (362, 500)
    assert load_movielens(sample[layout]) == expected


@needs(MOVIELENS_100K)
def test_the_recbole_sample_is_part_of_the_full_data(sample: dict[str, Path]) -> None:
    items, events = load_movielens(sample["recbole"])
    full_items = {i["item_id"]: i for i in real()[0]}
    assert all(full_items[i["item_id"]] == i for i in items)
    full_events = {e["event_id"]: e for e in real()[1]}
    assert all(full_events[e["event_id"]] == e for e in events)
    assert {i["item_id"] for i in items} >= {e["item_id"] for e in events}


@pytest.mark.parametrize(
    ("layout", "fmt"),
    [("recbole", "recbole"), ("ml-100k", "movielens"), ("ml-1m", "movielens"), ("ml-latest", "movielens")],
)
def test_read_records_detects_each_layout(sample: dict[str, Path], layout: str, fmt: str) -> None:
    directory = sample[layout]
    assert detect_format(directory) == fmt
    records = list(read_records(directory, "auto"))
    kinds = [k for k, _ in records]
    assert kinds == sorted(kinds, key=lambda k: k == "event")  # items first
    assert Counter(kinds)["event"] == 500
    # the ratings file stands for its data set; the movies file for its items only
    ratings = {
        "recbole": "sample.inter",
        "ml-100k": "u.data",
        "ml-1m": "ratings.dat",
        "ml-latest": "ratings.csv",
    }
    movies = {"recbole": "sample.item", "ml-100k": "u.item", "ml-1m": "movies.dat", "ml-latest": "movies.csv"}
    assert detect_format(directory / ratings[layout]) == fmt
    assert list(read_records(directory / ratings[layout])) == records
    assert detect_format(directory / movies[layout]) == fmt
    items = [r for k, r in records if k == "item"]
    assert list(read_records(directory / movies[layout])) == [("item", r) for r in items]
    assert list(read_records(directory, fmt, "item")) == [("item", r) for r in items]


@needs(MOVIELENS_100K)
def test_the_real_directory_and_a_file_in_it_are_read_alike() -> None:
    assert detect_format(ML100K) == "recbole"
    assert detect_format(ML100K / "ml-100k.user") == "recbole"
    assert sum(1 for k, _ in read_records(ML100K / "ml-100k.user") if k == "event") == 100_000


def test_a_recbole_only_read_ignores_grouplens_files(sample: dict[str, Path]) -> None:
    with pytest.raises(BadFile, match=r"no ratings file found in .*; expected one of \*\.inter"):
        list(read_records(sample["ml-100k"], "recbole"))


def test_a_grouplens_file_without_its_movies_gives_events_only(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t5\t100\n")
    assert [k for k, _ in read_records(tmp_path / "u.data")] == ["event"]


# ---------------------------------------------------------------------------------------------------------
# order, ids and the mapping


def test_events_are_ordered_by_time_then_line(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::300\n2::10::1::100\n1::11::3::300\n2::12::4::100\n")
    _, events = load_movielens(tmp_path)
    assert [(e["user_id"], e["item_id"]) for e in events] == [
        ("2", "10"),
        ("2", "12"),
        ("1", "10"),
        ("1", "11"),
    ]
    assert events[0] == {
        "event_id": events[0]["event_id"],
        "user_id": "2",
        "item_id": "10",
        "type": "view",
        "timestamp": 100.0,
        "properties": {"rating": 1.0},
    }


def test_the_rating_mapping_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,5.0,1\n1,2,4.5,2\n1,3,4.0,3\n1,4,0.5,4\n"
    )
    default = [e["type"] for e in load_movielens(tmp_path)[1]]
    assert default == ["purchase", "purchase", "purchase", "view"]
    mapping = RatingMapping(strong_min=4.5, strong_type="save", weak_type="click")
    _, events = load_movielens(tmp_path, mapping)
    assert [e["type"] for e in events] == ["save", "save", "click", "click"]
    assert [e["properties"] for e in events] == [{"rating": r} for r in (5.0, 4.5, 4.0, 0.5)]
    # the type is not part of the event id: the same rating read with another mapping is the same event
    assert [e["event_id"] for e in events] == [e["event_id"] for e in load_movielens(tmp_path)[1]]


@needs(MOVIELENS_100K)
def test_the_mapping_on_the_real_data() -> None:
    _, events = load_movielens(ML100K, RatingMapping(strong_min=5.0, strong_type="wishlist"))
    assert Counter(e["type"] for e in events) == {"wishlist": 21_201, "view": 78_799}


# ---------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("u.data", "1\t2\t3\t100\n1\t2\t3\n", r"u\.data:2: expected 4 fields separated by '\\t', found 3"),
        ("u.data", "1\t2\tthree\t100\n", r"u\.data:1: rating 'three' is not a number"),
        ("u.data", "1\t2\t3\tyesterday\n", r"u\.data:1: timestamp 'yesterday' is not a number"),
        ("u.data", "1\t2\tnan\t100\n", r"u\.data:1: rating 'nan' is not a finite number"),
        ("u.data", "1\t2\t3\t-5\n", r"u\.data:1: timestamp '-5' is negative"),
        ("u.data", "1\t\t3\t100\n", r"u\.data:1: empty user or item id"),
        ("ratings.dat", "1::2::3::100\n1:2:3:100\n", r"ratings\.dat:2: expected 4 fields"),
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,2,4.0,1\n1,3,x,2\n",
            r"ratings\.csv:3: rating 'x'",
        ),
        (
            "ratings.csv",
            "user,movie,rating,timestamp\n1,2,4.0,1\n",
            r"ratings\.csv:1: the header has no userId",
        ),
        (
            "d.inter",
            "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t100\n",
            r"d\.inter:1: the header has no rating column",
        ),
        (
            "d.inter",
            "timestamp:float\tuser_id:token\titem_id:token\trating:float\n100\t1\t2\t4\n\n200\t1\t2\n",
            r"d\.inter:4: expected 4 fields",
        ),
    ],
)
def test_a_bad_ratings_line_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(BadFile, match=message):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("u.item", "1|Toy Story (1995)|01-Jan-1995||\n", r"u\.item:1: expected 24 fields separated by '\|'"),
        ("u.item", "1|A|||" + "|2" * 19 + "\n", r"u\.item:1: genre flags must be 0 or 1"),
        ("movies.dat", "1::Toy Story (1995)::Comedy\n2::Heat (1995)\n", r"movies\.dat:2: expected MovieID::"),
        (
            "movies.csv",
            "movieId,title,genres\n1,Heat (1995),Crime,Drama\n",
            r"movies\.csv:2: expected 3 columns",
        ),
        ("movies.csv", "id,name\n", r"movies\.csv:1: expected the header movieId,title,genres"),
        ("d.item", "title:token_seq\nHeat\n", r"d\.item:1: the header has no item_id column"),
    ],
)
def test_a_bad_movies_line_names_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    fmt = "recbole" if name.startswith("d.") else "movielens"
    with pytest.raises(BadFile, match=message):
        list(read_records(tmp_path / name, fmt))


def test_a_bad_line_is_reported_before_any_record(tmp_path: Path) -> None:
    (tmp_path / "u.item").write_text("1|A|||" + "|0" * 19 + "\n")
    (tmp_path / "u.data").write_text("1\t1\t4\t100\n1\t1\t4\n")
    records = read_records(tmp_path)
    with pytest.raises(BadFile, match=r"u\.data:2:"):
        next(records)


def test_a_directory_without_ratings_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    expected = r"no ratings file found in .*; expected one of u\.data, ratings\.dat, ratings\.csv, \*\.inter"
    with pytest.raises(BadFile, match=expected):
        load_movielens(tmp_path)
    with pytest.raises(BadFile, match=expected):
        list(read_records(tmp_path))
    with pytest.raises(BadFile, match="is a directory"):
        list(read_records(tmp_path, "jsonl"))


def test_several_inter_files_must_be_told_apart(tmp_path: Path) -> None:
    for name in ("a.inter", "b.inter"):
        (tmp_path / name).write_text(
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t4\t1\n"
        )
    with pytest.raises(BadFile, match=r"several RecBole \.inter files .*\(a\.inter, b\.inter\)"):
        load_movielens(tmp_path)
    assert len(load_movielens(tmp_path / "b.inter")[1]) == 1


# ---------------------------------------------------------------------------------------------------------
# the command line takes a data set directory


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``FRESHREC_...`` variable of the calling shell, and the root logger as it was before."""
    for name in list(os.environ):
        if name.startswith("FRESHREC_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("quiet_cli")
@pytest.mark.parametrize(
    ("layout", "args"),
    [("recbole", ["--format", "recbole"]), ("ml-100k", []), ("ml-1m/ratings.dat", []), ("ml-latest", [])],
)
def test_replay_of_a_movielens_directory_or_its_ratings_file(
    sample: dict[str, Path], tmp_path: Path, layout: str, args: list[str]
) -> None:
    name, _, file = layout.partition("/")
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["replay", str(sample[name] / file), *args, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "500 events, 362 items" in result.output
    datadir = DataDir(data, load_settings(clock="event"))
    engine = datadir.open_engine()
    try:
        assert engine.applied_events == 500
        toy = engine.catalog.get("1")
        assert toy is not None and toy.category == "Animation" and toy.title == "Toy Story (1995)"
    finally:
        datadir.close(snapshot=False)


def test_import_items_from_a_movies_file(sample: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(
        main, ["import-items", str(sample["ml-1m"] / "movies.dat"), "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert "362 items" in result.output
