"""On the real DataSQRL data: ``SimilarContent(userid)`` equals brute-force cosine over the same embeddings.

Pages are embedded by the engine (all-MiniLM-L6-v2, title and text); the reference recomputes each user's
interest (the mean of the vectors of the pages they clicked, each click counting, as the example's
``CENTER(embedding)``) and ranks every page by cosine in NumPy.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.datasets.files import read_records
from freshrec.engine import Engine
from shared_data import DATASQRL, needs, path_of

DATA = path_of(DATASQRL)


@functools.cache
def loaded() -> tuple[Engine, list[dict[str, Any]]]:
    engine = Engine(load_settings(clock="event"))
    items = [record for _, record in read_records(DATA / "content.json.gz")]
    for start in range(0, len(items), 500):
        engine.upsert_items(items[start : start + 500])
    clicks = [record for _, record in read_records(DATA / "clickstream.json.gz")]
    for start in range(0, len(clicks), 1000):
        engine.ingest(clicks[start : start + 1000])
    return engine, clicks


def brute_force(engine: Engine, clicks: list[dict[str, Any]], user: str, k: int) -> list[tuple[str, float]]:
    assert engine.content.vectors is not None
    ids = sorted(engine.catalog.items)
    vectors = {i: v for i in ids if (v := engine.content.vectors.vector(i)) is not None}
    known = [i for i in ids if i in vectors]
    matrix = np.stack([vectors[i] for i in known]).astype(np.float64)
    clicked = [c["item_id"] for c in clicks if c["user_id"] == user and c["item_id"] in vectors]
    centroid = np.mean([vectors[i] for i in clicked], axis=0).astype(np.float64)
    sims = matrix @ (centroid / np.linalg.norm(centroid))
    order = sorted(range(len(known)), key=lambda n: (-round(float(sims[n]), 6), known[n]))[:k]
    return [(known[n], float(sims[n])) for n in order]


@needs(DATASQRL)
def test_similar_content_equals_brute_force_for_at_least_99_percent_of_users() -> None:
    engine, clicks = loaded()
    users = sorted({c["user_id"] for c in clicks})
    matching = 0
    for user in users:
        got = engine.similar_content_for_user(user, 10)
        want = brute_force(engine, clicks, user, 10)
        assert all(abs(g[1] - w[1]) < 1e-4 for g, w in zip(got, want, strict=False))
        matching += [i for i, _ in got] == [i for i, _ in want]
    assert matching / len(users) >= 0.99, f"{matching} of {len(users)} users match"


@needs(DATASQRL)
def test_a_user_with_one_click_gets_that_page_first() -> None:
    engine, _ = loaded()
    page = next(iter(sorted(engine.catalog.items)))
    engine.ingest(
        [{"user_id": "only-one-click", "item_id": page, "type": "click", "timestamp": engine.now()}]
    )
    first, similarity = engine.similar_content_for_user("only-one-click", 10)[0]
    assert first == page
    assert abs(similarity - 1.0) < 1e-5


@needs(DATASQRL)
def test_an_upserted_page_is_findable_as_soon_as_it_is_acknowledged() -> None:
    engine, _ = loaded()
    app = create_app(engine)
    base = next(iter(sorted(engine.catalog.items)))
    source = engine.catalog.items[base]
    url = "https://example.org/a-near-copy"
    copy = {"url": url, "title": source.title, "text": source.text}

    async def scenario() -> tuple[int, list[str], Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # ids in paths are percent-encoded, slashes included
            put = await client.put(f"/v1/items/{quote(url, safe='')}", json=copy)
            related = await client.get(
                f"/v1/items/{quote(base, safe='')}/recommendations",
                params={"strategy": "similar_content", "k": 3},
            )
            mutation = await client.post(
                "/graphql",
                json={
                    "query": 'mutation { Content(event: {url: "https://example.org/fresh", title: "Stream '
                    'processing", text: "Real-time stream processing of events."}) { url } }'
                },
            )
            return put.status_code, [i["item_id"] for i in related.json()["items"]], mutation.json()

    status, related, mutation = asyncio.run(scenario())
    assert status == 200
    assert related[0] == url
    assert "errors" not in mutation, mutation
    assert engine.recommend_for_item(url, "similar_content", k=1)[0].item_id == base
