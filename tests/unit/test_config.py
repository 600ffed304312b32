"""Settings (:mod:`freshrec.config`): SPEC defaults, TOML file, environment, overrides, validation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from freshrec.config import Settings, load_settings

DAY = 86_400.0


@pytest.fixture(autouse=True)
def _no_freshrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FRESHREC_"):
            monkeypatch.delenv(name)


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "freshrec.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_spec_values() -> None:
    s = load_settings()
    assert s == Settings()
    # §1
    assert s.events.weights == {
        "view": 1.0,
        "click": 3.0,
        "add_to_cart": 5.0,
        "save": 5.0,
        "wishlist": 7.0,
        "share": 7.0,
        "purchase": 10.0,
    }
    assert s.events.max_batch == 10_000
    assert s.events.max_future_seconds == 300.0
    assert s.events.max_properties_bytes == 4 * 1024
    # §3
    v = s.views
    assert v.decay_half_life_seconds == 30 * DAY
    assert v.category_window_seconds == 604_800.0
    assert v.category_windows_kept == 4
    assert v.category_window_types == {"view": 1.0, "click": 3.0, "save": 5.0, "share": 7.0}
    assert v.activity_window_seconds == 3_600.0
    assert v.activity_horizon_seconds == 3 * 3_600.0
    assert v.trending_window_seconds == 2 * 3_600.0
    assert v.trending_slide_seconds == 15 * 60.0
    assert (v.trending_view_weight, v.trending_click_weight, v.trending_unique_user_weight) == (1.0, 2.0, 3.0)
    assert v.history_length == 200
    assert s.price_tiers.names == ["budget", "mid-range", "premium", "luxury"]
    assert s.price_tiers.bounds == [25.0, 100.0, 500.0]
    # §4
    st = s.strategies
    assert st.default == "hybrid"
    assert (st.personalized_category_weight, st.personalized_brand_weight) == (0.4, 0.3)
    assert st.personalized_conversion_weight == pytest.approx(0.3 * 100)
    assert (st.session_personalized_weight, st.session_recent_weight) == (0.4, 0.6)
    assert (st.trending_for_you_trending_weight, st.trending_for_you_affinity_weight) == (0.4, 0.6)
    # §0, §6, §7: embedded, wall clock in serve, durable
    assert s.state == "memory://"
    assert s.clock == "wall"
    assert s.storage.fsync is True
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)
    assert s.server.write_key is None and s.server.read_key is None


def test_defaults_are_not_shared_between_instances() -> None:
    a = load_settings()
    a.events.weights["view"] = 99.0
    a.price_tiers.names.append("x")
    b = load_settings()
    assert b.events.weights["view"] == 1.0
    assert b.price_tiers.names == ["budget", "mid-range", "premium", "luxury"]


def test_toml_file_values(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        """
clock = "event"

[events]
max_batch = 50
weights = { view = 2.0, purchase = 20.0 }

[views]
decay_half_life_seconds = 86400
trending_window_seconds = 3600
trending_slide_seconds = 600

[price_tiers]
names = ["cheap", "dear"]
bounds = [40.0]

[storage]
fsync = false
data_dir = "/var/lib/freshrec"

[server]
port = 9001
""",
    )
    s = load_settings(path)
    assert s.clock == "event"
    assert s.events.max_batch == 50
    assert s.events.weights == {"view": 2.0, "purchase": 20.0}
    assert s.events.max_future_seconds == 300.0  # untouched fields keep their defaults
    assert s.views.decay_half_life_seconds == DAY
    assert (s.views.trending_window_seconds, s.views.trending_slide_seconds) == (3_600.0, 600.0)
    assert s.views.category_windows_kept == 4
    assert s.price_tiers.names == ["cheap", "dear"] and s.price_tiers.bounds == [40.0]
    assert s.storage.fsync is False and s.storage.data_dir == Path("/var/lib/freshrec")
    assert s.server.port == 9001 and s.server.host == "127.0.0.1"


def test_environment_beats_the_file_and_overrides_beat_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = toml(tmp_path, "[events]\nmax_batch = 50\nmax_future_seconds = 60\n\n[server]\nport = 9001\n")
    assert load_settings(path).events.max_batch == 50

    monkeypatch.setenv("FRESHREC_EVENTS__MAX_BATCH", "5")
    monkeypatch.setenv("FRESHREC_CLOCK", "event")
    s = load_settings(path)
    assert s.events.max_batch == 5
    assert s.events.max_future_seconds == 60.0  # the rest of the file's section stays
    assert s.server.port == 9001
    assert s.clock == "event"

    s = load_settings(path, events={"max_batch": 7}, clock="wall")
    assert s.events.max_batch == 7
    assert s.events.max_future_seconds == 60.0  # overrides merge into sections too
    assert s.clock == "wall"

    # without a file, the environment alone
    assert load_settings().events.max_batch == 5


def test_environment_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESHREC_VIEWS__DECAY_HALF_LIFE_SECONDS", "86400")
    monkeypatch.setenv("FRESHREC_SERVER__PORT", "9000")
    monkeypatch.setenv("FRESHREC_STORAGE__FSYNC", "false")
    s = load_settings()
    assert s.views.decay_half_life_seconds == DAY
    assert s.server.port == 9000
    assert s.storage.fsync is False


def test_file_and_environment_are_validated_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window from the file and the slide from the environment make a valid pair (4,800 = 3 × 1,600).

    Only the merged settings must be valid: the environment's slide alone does not divide the *default*
    window (7,200 s), which must not matter.
    """
    path = toml(tmp_path, "[views]\ntrending_window_seconds = 4800\n")
    monkeypatch.setenv("FRESHREC_VIEWS__TRENDING_SLIDE_SECONDS", "1600")
    s = load_settings(path)
    assert (s.views.trending_window_seconds, s.views.trending_slide_seconds) == (4_800.0, 1_600.0)


def test_explicit_overrides_are_validated_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESHREC_PRICE_TIERS__BOUNDS", "[10, 20]")
    s = load_settings(price_tiers={"names": ["low", "middle", "high"]})
    assert s.price_tiers.names == ["low", "middle", "high"]
    assert s.price_tiers.bounds == [10.0, 20.0]


INVALID: list[Any] = [
    pytest.param({"views": {"category_window_seconds": -604_800}}, id="negative-window"),
    pytest.param({"views": {"activity_window_seconds": 0}}, id="zero-window"),
    pytest.param({"views": {"decay_half_life_seconds": -1}}, id="negative-half-life"),
    pytest.param({"views": {"category_windows_kept": 0}}, id="no-windows-kept"),
    pytest.param({"views": {"trending_slide_seconds": 1_000}}, id="hop-does-not-divide-window"),
    pytest.param(
        {"views": {"trending_window_seconds": 3_600, "trending_slide_seconds": 7_200}},
        id="hop-larger-than-window",
    ),
    pytest.param({"price_tiers": {"bounds": [100.0, 25.0, 500.0]}}, id="tier-bounds-decreasing"),
    pytest.param({"price_tiers": {"bounds": [25.0, 25.0, 500.0]}}, id="tier-bounds-equal"),
    pytest.param({"price_tiers": {"names": ["a", "b", "c"]}}, id="tier-names-bounds-mismatch"),
    pytest.param({"price_tiers": {"names": ["a", "b"], "bounds": [1.0, 2.0]}}, id="tier-too-few-names"),
    pytest.param({"events": {"max_batch": 0}}, id="zero-batch"),
    pytest.param({"events": {"weights": {}}}, id="no-event-types"),
    pytest.param({"clock": "sundial"}, id="unknown-clock"),
    pytest.param({"server": {"port": 70_000}}, id="port-out-of-range"),
    pytest.param({"no_such_setting": 1}, id="unknown-key"),
]


@pytest.mark.parametrize("overrides", INVALID)
def test_invalid_values_raise(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        load_settings(**overrides)


def test_invalid_values_in_a_file_raise_naming_the_field(tmp_path: Path) -> None:
    path = toml(tmp_path, "[views]\ncategory_window_seconds = -1\n")
    with pytest.raises(ValueError, match="category_window_seconds"):
        load_settings(path)
    path = toml(tmp_path, "[price_tiers]\nbounds = [500.0, 100.0, 25.0]\n")
    with pytest.raises(ValueError, match="increasing"):
        load_settings(path)
    path = toml(tmp_path, "[price_tiers]\nnames = ['a']\n")
    with pytest.raises(ValueError, match="one more name than bounds"):
        load_settings(path)
    path = toml(tmp_path, "[views]\ntrending_slide_seconds = 1000\n")
    with pytest.raises(ValueError, match="multiple of trending_slide_seconds"):
        load_settings(path)


def test_a_misspelt_key_inside_a_section_raises(tmp_path: Path) -> None:
    """Unknown top-level keys are rejected; a typo inside a section must not be silently ignored either."""
    path = toml(tmp_path, "[events]\nmax_bacth = 5\n")
    with pytest.raises(ValueError, match="max_bacth"):
        load_settings(path)


def test_invalid_environment_value_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESHREC_EVENTS__MAX_BATCH", "-3")
    with pytest.raises(ValueError, match="max_batch"):
        load_settings()


def test_a_file_that_is_not_toml_raises(tmp_path: Path) -> None:
    path = toml(tmp_path, "this is = = not toml\n")
    with pytest.raises(ValueError):
        load_settings(path)
