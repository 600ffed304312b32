"""``/dashboard``: the page needs no key (it holds no data); what it reads needs the read role."""

from __future__ import annotations

import asyncio

import httpx

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.experiments import ExperimentIn

KEYS = {"read_key": "r-secret", "write_key": "w-secret"}
READ = {"authorization": "Bearer r-secret"}


def test_the_page_is_open_and_its_data_needs_the_read_role() -> None:
    engine = Engine(load_settings(server=KEYS, embeddings={"model": "none"}, cf={"enabled": False}))
    engine.upsert_items([{"item_id": "a", "title": "Trail shoe", "category": "sports"}])
    engine.ingest([{"user_id": "u1", "item_id": "a", "type": "click"}])
    spec = ExperimentIn.model_validate(
        {
            "variants": [
                {"name": "control", "weight": 1, "strategy": "trending"},
                {"name": "fresh", "weight": 1, "strategy": "hybrid"},
            ]
        }
    )
    engine.apply_record(engine.experiments.put_record("exp", spec, engine.strategies, 0.0))

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            page = await client.get("/dashboard")
            assert page.status_code == 200 and "/dashboard/assets/dashboard.js" in page.text
            for asset in ("dashboard.js", "dashboard.css", "favicon.svg"):
                assert (await client.get(f"/dashboard/assets/{asset}")).status_code == 200
            assert (await client.get("/dashboard/assets/..%2Fpulse.py")).status_code == 404
            for path in ("/dashboard/pulse", "/dashboard/stream", "/dashboard/titles?id=a"):
                assert (await client.get(path)).status_code == 401, path
            pulse = (await client.get("/dashboard/pulse", headers=READ)).json()
            assert pulse["ingest"]["applied_events"] == 1
            assert pulse["state"]["items"] == 1
            score = engine.trending(k=1)["items"][0]["score"]  # checked against SQL elsewhere
            assert pulse["trending"] == [
                {"category": "sports", "items": [{"item_id": "a", "title": "Trail shoe", "score": score}]}
            ]
            assert [v["name"] for v in pulse["experiments"][0]["variants"]] == ["control", "fresh"]
            assert "hybrid" in pulse["strategies"]
            titles = await client.get("/dashboard/titles?id=a&id=nope", headers=READ)
            assert titles.json() == {"a": "Trail shoe", "nope": None}

    asyncio.run(main())
