"""``freshrec.client`` against real servers: ``freshrec serve`` processes, and for retries a small HTTP
server of the test's own that answers 429/503 before it answers as freshrec does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from conftest import Server, StartServer, free_port

from freshrec.client import AsyncClient, Client, FreshrecError, Recommendations, Rejected, RetryPolicy

pytestmark = pytest.mark.heavy

ITEMS = [
    {"item_id": "sku-1", "category": "sports", "brand": "Acme", "price": 89.0},
    {"item_id": "sku-2", "category": "sports", "brand": "Acme", "price": 19.5},
    {"item_id": "sku-3", "category": "books", "price": 12.0},
    {"item_id": "https://shop.example/a b", "category": "books", "price": 30.0},
]
FAST = RetryPolicy(retries=4, base=0.05, cap=0.2)


@pytest.fixture(scope="module")
def shop(module_start_server: StartServer) -> Server:
    server = module_start_server(clock="wall")
    server.put_items(ITEMS)
    return server


@pytest.fixture(scope="module")
def keyed(module_start_server: StartServer) -> Server:
    return module_start_server(
        env={"FRESHREC_SERVER__WRITE_KEY": "w-key", "FRESHREC_SERVER__READ_KEY": "r-key"}
    )


def test_events_recommendations_and_reads(shop: Server) -> None:
    seen: list[httpx.URL] = []
    with Client(shop.url, event_hooks={"request": [lambda r: seen.append(r.url)]}) as client:
        accepted = client.send_events(
            [
                {"user_id": "u-1", "item_id": "sku-1", "type": "view"},
                {"user_id": "u-1", "item_id": "sku-2", "type": "purchase"},
            ]
        )
        assert accepted.accepted == 2 and accepted.duplicates == 0 and len(set(accepted.event_ids)) == 2
        again = client.send_event(event_id=accepted.event_ids[0], user_id="u-1", item_id="sku-1", type="view")
        assert again.duplicates == 1
        # an experiment whose two variants both answer with personalized
        variants = [{"name": n, "weight": 50, "strategy": "personalized"} for n in ("a", "b")]
        httpx.put(f"{shop.url}/v1/experiments/exp-7", json={"variants": variants}).raise_for_status()
        recs = client.recommendations("u-1", k=3, strategy="personalized", explain=True, experiment="exp-7")
        assert isinstance(recs, Recommendations) and recs.user_id == "u-1" and recs.strategy == "personalized"
        assert recs.item_ids[0] == "sku-1"  # sports, Acme; sku-2 was bought
        assert "sku-2" not in recs.item_ids
        assert recs.items[0].reasons is not None and "category_affinity" in recs.items[0].reasons
        assert seen[-1].params["experiment"] == "exp-7" and seen[-1].params["explain"] == "true"
        assert client.recommendations("u-1", k=3, strategy="personalized").items[0].reasons is None
        related = client.related("sku-1", strategy="also_bought", k=2)
        assert related.item_id == "sku-1"
        assert client.profile("u-1")["top_categories"][0]["category"] == "sports"
        rows = client.view("user_category_profile", user_id="u-1")
        assert rows.keyed_by == "user_id" and rows.total == 1 and rows.rows[0]["category"] == "sports"
        assert client.get_item("https://shop.example/a b") is not None  # an id with '/', ':' and ' '
        assert client.get_item("nope") is None
        assert client.upsert_items([{"item_id": "sku-9", "category": "toys"}]) == ["sku-9"]
        assert client.delete_item("sku-9") and not client.delete_item("sku-9")
        assert client.health()["status"] == "ok"


def test_a_rejected_request_raises_with_every_problem(shop: Server) -> None:
    with Client(shop.url) as client, pytest.raises(FreshrecError) as caught:
        client.send_events(
            [
                {"user_id": "u-2", "item_id": "sku-1", "type": "view"},
                {"user_id": "u-2", "item_id": "x", "type": "like"},
            ]
        )
    assert caught.value.status == 422
    assert [(p.index, p.field) for p in caught.value.details] == [(1, "type")]
    assert "like" in caught.value.details[0].message
    assert shop.get_json("/v1/views/user_history", user_id="u-2")["rows"] == []  # nothing stored


def test_api_keys(keyed: Server) -> None:
    with Client(keyed.url) as anonymous, pytest.raises(FreshrecError) as caught:
        anonymous.recommendations("u-1")
    assert caught.value.status == 401
    with Client(keyed.url, api_key="r-key") as reader:
        assert reader.recommendations("u-1", k=2).items == []
        with pytest.raises(FreshrecError) as forbidden:
            reader.send_event(user_id="u-1", item_id="a", type="view")
        assert forbidden.value.status == 403
    with Client(keyed.url, api_key="w-key") as writer:
        assert writer.send_event(user_id="u-1", item_id="a", type="view").accepted == 1


def test_buffered_sender_flushes_by_size_and_by_time_and_reports_rejects(shop: Server) -> None:
    rejected: list[Rejected] = []
    with Client(shop.url) as client:
        sender = client.sender(max_events=4, max_seconds=0.3, on_rejected=rejected.append)
        for n in range(4):  # a full batch: sent without waiting for the time limit
            sender.add({"user_id": "u-buf", "item_id": "sku-3", "type": "view", "event_id": f"buf-{n}"})
        sender.add({"user_id": "u-buf", "item_id": "sku-3", "type": "like", "event_id": "buf-bad"})
        sender.add({"user_id": "u-buf", "item_id": "sku-1", "type": "click", "event_id": "buf-late"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sender.sent < 5:  # the last two go after ~0.3 s
            time.sleep(0.02)
        assert sender.sent == 5
        assert [r.events[0]["event_id"] for r in rejected] == ["buf-bad"]
        assert rejected[0].problems[0].field == "type"
        sender.close()
    history = shop.get_json("/v1/views/user_history", user_id="u-buf")["rows"]
    assert sorted(r["event_id"] for r in history) == ["buf-0", "buf-1", "buf-2", "buf-3", "buf-late"]


def test_async_client_and_sender(shop: Server) -> None:
    async def scenario() -> tuple[Recommendations, int, list[Rejected]]:
        async with AsyncClient(shop.url) as client:
            await client.send_event(user_id="u-async", item_id="sku-3", type="purchase")
            async with client.sender(max_events=2, max_seconds=0.2) as sender:
                sender.add({"user_id": "u-async", "item_id": "sku-1", "type": "view"})
                sender.add({"user_id": "u-async", "item_id": "sku-1", "type": "nope"})
                sender.add({"user_id": "u-async", "item_id": "sku-2", "type": "view"})
            recs = await client.recommendations("u-async", k=5, strategy="personalized")
            return recs, sender.sent, sender.rejected

    recs, sent, rejected = asyncio.run(scenario())
    assert sent == 2 and [r.events[0]["type"] for r in rejected] == ["nope"]
    # sku-2: 0.4·2 (sports) + 0.3·2 (Acme) + 30·(1 budget purchase / 1 budget view) = 31.4; the books item
    # (mid-range): 0.4·10 = 4; sku-1: 1.4; sku-3 was bought
    assert [(r.item_id, round(r.score, 6)) for r in recs.items] == [
        ("sku-2", 31.4),
        ("https://shop.example/a b", 4.0),
        ("sku-1", 1.4),
    ]


# ---------------------------------------------------------------------------------------------------------
# Retries: a real HTTP server that is overloaded for its first answers


class _Flaky(ThreadingHTTPServer):
    def __init__(self, port: int, failures: list[tuple[int, str | None]]) -> None:
        super().__init__(("127.0.0.1", port), _FlakyHandler)
        self.failures = list(failures)
        self.times: list[float] = []


class _FlakyHandler(BaseHTTPRequestHandler):
    server: _Flaky

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        events: list[dict[str, Any]] = orjson.loads(self.rfile.read(length))
        self.server.times.append(time.monotonic())
        if self.server.failures:
            status, retry_after = self.server.failures.pop(0)
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            body = orjson.dumps({"error": "busy", "details": []})
        else:
            self.send_response(202)
            body = orjson.dumps(
                {"accepted": len(events), "duplicates": 0, "event_ids": [e["event_id"] for e in events]}
            )
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(server: _Flaky) -> Iterator[_Flaky]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_retries_429_and_503_honouring_retry_after() -> None:
    port = free_port()
    for server in _serve(_Flaky(port, [(429, "0.4"), (503, None)])):
        with Client(f"http://127.0.0.1:{port}", retry=FAST) as client:
            accepted = client.send_event(user_id="u", item_id="i", type="view")
        assert accepted.accepted == 1
        assert len(server.times) == 3
        assert server.times[1] - server.times[0] >= 0.4  # Retry-After
        assert server.times[2] - server.times[1] < 0.4  # backoff: at most cap = 0.2 s (+ scheduling)


def test_gives_up_after_the_retries() -> None:
    port = free_port()
    for server in _serve(_Flaky(port, [(503, "0")] * 10)):
        retry = RetryPolicy(retries=2, base=0.01)
        with (
            Client(f"http://127.0.0.1:{port}", retry=retry) as client,
            pytest.raises(FreshrecError) as caught,
        ):
            client.send_event(user_id="u", item_id="i", type="view")
        assert caught.value.status == 503 and len(server.times) == 3


def test_retries_connection_errors_until_the_server_is_up() -> None:
    port = free_port()
    started: list[_Flaky] = []

    def start_later() -> None:
        time.sleep(0.3)
        started.append(_Flaky(port, []))
        threading.Thread(target=started[0].serve_forever, daemon=True).start()

    late = threading.Thread(target=start_later)
    late.start()
    try:
        with Client(f"http://127.0.0.1:{port}", retry=RetryPolicy(retries=8, base=0.1, cap=0.3)) as client:
            assert client.send_event(user_id="u", item_id="i", type="view").accepted == 1
    finally:
        late.join()
        for server in started:
            server.shutdown()
            server.server_close()
    nobody = f"http://127.0.0.1:{free_port()}"
    with Client(nobody, retry=RetryPolicy(retries=1, base=0.01)) as client, pytest.raises(FreshrecError):
        client.health()
