"""Freshness over HTTP: the request right after a 202 already sees the event (SPEC §1, §5).

Every check here is the *immediately* following request: no sleep, no retry, no polling.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.heavy

CATEGORIES = ("books", "garden", "toys", "music", "sports")
PRICES = (10.0, 60.0, 250.0)  # budget, mid-range, premium


def _catalog() -> list[dict[str, Any]]:
    """Two brands of its own per category (so brand affinity never leaks across categories), three tiers."""
    return [
        {
            "item_id": f"{category}-{brand}-{int(price)}",
            "title": f"{category} {brand} {price}",
            "category": category,
            "brand": f"{category}-{brand}",
            "price": price,
        }
        for category in CATEGORIES
        for brand in ("a", "b")
        for price in PRICES
    ]


CATALOG = {item["item_id"]: item for item in _catalog()}


def category_of(item_id: str) -> str:
    return str(CATALOG[item_id]["category"])


@pytest.fixture
def shop(server: Server) -> Server:
    server.put_items(list(CATALOG.values()))
    return server


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def recommend(server: Server, user_id: str, strategy: str, **params: Any) -> list[dict[str, Any]]:
    body = server.get_json(f"/v1/users/{user_id}/recommendations", strategy=strategy, **params)
    assert body["user_id"] == user_id
    assert body["strategy"] == strategy
    items: list[dict[str, Any]] = body["items"]
    return items


def recommended_ids(server: Server, user_id: str, strategy: str, **params: Any) -> list[str]:
    return [r["item_id"] for r in recommend(server, user_id, strategy, **params)]


def top_categories(server: Server, user_id: str) -> list[tuple[str, float]]:
    profile = server.get_json(f"/v1/users/{user_id}/profile")
    return [(row["category"], row["affinity_score"]) for row in profile["top_categories"]]


def event(user_id: str, item_id: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "item_id": item_id, "type": type_, **extra}


def test_a_purchase_shows_in_the_very_next_requests(shop: Server) -> None:
    user = new_user()
    assert top_categories(shop, user) == []
    cold = recommend(shop, user, "hybrid", k=5, explain="true")
    assert all(r["reasons"].get("cold_start") == "trending" for r in cold)

    bought = "books-a-60"
    accepted = shop.send_events(event(user, bought, "purchase", event_id=f"{user}-1"))
    assert accepted == {"accepted": 1, "duplicates": 0, "event_ids": [f"{user}-1"]}

    profile = shop.get_json(f"/v1/users/{user}/profile")
    assert profile["known"] is True
    assert profile["top_categories"][0]["category"] == "books"
    assert profile["top_categories"][0]["affinity_score"] == 10.0
    assert profile["top_categories"][0]["unique_items_interacted"] == 1
    assert profile["top_brands"][0]["brand"] == "books-a"
    assert profile["recent_categories"][0]["category"] == "books"
    assert [r["item_id"] for r in profile["recent_items"]] == [bought]

    books = {i for i, it in CATALOG.items() if it["category"] == "books"} - {bought}
    for strategy in ("personalized", "session", "hybrid"):
        ids = recommended_ids(shop, user, strategy, k=len(books))
        assert set(ids) == books, (strategy, ids)
        # the purchased item is filtered out by default, and comes back (first: same group, most popular)
        assert bought not in recommended_ids(shop, user, strategy, k=50), strategy
        with_bought = recommended_ids(shop, user, strategy, k=len(books) + 1, exclude_purchased="false")
        assert with_bought[0] == bought, (strategy, with_bought)
        assert set(with_bought) == books | {bought}

    explained = recommend(shop, user, "personalized", k=1, explain="true")[0]
    assert explained["item_id"] in {"books-a-10", "books-a-250"}
    assert explained["reasons"]["category_affinity"] == pytest.approx(0.4 * 10)
    assert explained["reasons"]["brand_affinity"] == pytest.approx(0.3 * 10)
    assert explained["score"] == pytest.approx(7.0)
    in_books = recommended_ids(shop, user, "personalized", k=50, category="books")
    assert set(in_books) == books
    in_toys = recommended_ids(shop, user, "personalized", k=50, category="toys")
    assert {category_of(i) for i in in_toys} <= {"toys"}


def test_each_event_moves_the_next_answer(shop: Server) -> None:
    """Single events of growing weight move the user's interest from category to category."""
    user = new_user()
    rounds = [
        # (item, type): each type outweighs every earlier one, so its category becomes the top one
        ("music-a-10", "view"),  # 1
        ("toys-b-60", "click"),  # 3
        ("garden-a-250", "add_to_cart"),  # 5
        ("sports-b-10", "wishlist"),  # 7
    ]
    previous: dict[str, list[str]] = {}
    for n, (item_id, type_) in enumerate(rounds):
        shop.send_events(event(user, item_id, type_, event_id=f"{user}-{n}"))
        category = category_of(item_id)
        assert top_categories(shop, user)[0][0] == category, (n, top_categories(shop, user))
        for strategy in ("personalized", "session", "hybrid"):
            ids = recommended_ids(shop, user, strategy, k=5)
            assert category_of(ids[0]) == category, (n, strategy, ids)
            assert ids != previous.get(strategy), (n, strategy, ids)
            previous[strategy] = ids

    # a burst in books (3 + 3 + 5 = 11 > 7) takes the lead in one request
    burst = [
        event(user, "books-b-250", "click", event_id=f"{user}-b1"),
        event(user, "books-b-10", "click", event_id=f"{user}-b2"),
        event(user, "books-b-60", "add_to_cart", event_id=f"{user}-b3"),
    ]
    assert shop.send_events(burst)["accepted"] == 3
    assert top_categories(shop, user)[0] == ("books", 11.0)
    for strategy in ("personalized", "session", "hybrid"):
        ids = recommended_ids(shop, user, strategy, k=3)
        assert {category_of(i) for i in ids} == {"books"}, (strategy, ids)

    # session weighs the last hours: 8 views in music lose on lifetime affinity (9 < 11) but win the session
    shop.send_events([event(user, "music-b-250", "view") for _ in range(8)])
    assert top_categories(shop, user)[:2] == [("books", 11.0), ("music", 9.0)]
    assert category_of(recommended_ids(shop, user, "personalized", k=1)[0]) == "books"
    session = recommended_ids(shop, user, "session", k=1)
    assert category_of(session[0]) == "music", session


def test_trending_follows_a_view_burst_at_once(shop: Server) -> None:
    shop.send_events([event(new_user(), "garden-a-10", "view") for _ in range(3)])
    first = shop.get_json("/v1/trending", k=5)
    assert first["items"][0]["item_id"] == "garden-a-10"
    assert first["window_start"] <= first["now"] < first["window_end"]

    # six different users look at one item: it tops trending in the next request
    shop.send_events([event(new_user(), "toys-b-250", "view", dwell_seconds=4.0) for _ in range(6)])
    top = shop.get_json("/v1/trending", k=5)["items"][0]
    assert top["item_id"] == "toys-b-250"
    assert top["recent_views"] == 6
    assert top["unique_users"] == 6
    assert top["trending_score"] == pytest.approx(6 * 1 + 6 * 3)
    assert recommended_ids(shop, new_user(), "trending", k=1) == ["toys-b-250"]
    assert recommended_ids(shop, new_user(), "hybrid", k=1) == ["toys-b-250"]  # cold start = trending

    # one more event is visible in the next answer too
    shop.send_events(event(new_user(), "toys-b-250", "click"))
    top = shop.get_json("/v1/trending", k=1)["items"][0]
    assert (top["item_id"], top["recent_clicks"], top["unique_users"]) == ("toys-b-250", 1, 7)
    assert shop.get_json("/v1/trending", k=5, category="garden")["items"][0]["item_id"] == "garden-a-10"


def test_catalog_changes_apply_to_the_next_request(shop: Server) -> None:
    user = new_user()
    shop.send_events(event(user, "music-a-60", "add_to_cart"))
    assert recommended_ids(shop, user, "personalized", k=1, exclude_purchased="false") == ["music-a-60"]

    response = shop.client.put("/v1/items/music-a-60", json={**CATALOG["music-a-60"], "in_stock": False})
    assert response.status_code == 200, response.text
    assert "music-a-60" not in recommended_ids(shop, user, "personalized", k=50)

    response = shop.client.put("/v1/items/music-a-60", json=CATALOG["music-a-60"])
    assert response.status_code == 200, response.text
    assert recommended_ids(shop, user, "personalized", k=1) == ["music-a-60"]

    assert shop.client.delete("/v1/items/music-a-60").status_code == 200
    assert "music-a-60" not in recommended_ids(shop, user, "personalized", k=50)
    assert shop.get("/v1/items/music-a-60").status_code == 404
